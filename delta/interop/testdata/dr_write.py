"""Writes a raw-shaped Delta table with delta-rs, one operation per version, and prints the
version and rows after each as JSON lines: {"op": ..., "version": v, "rows": [...]}.

usage: dr_write.py TABLE phase   (phase "ops": create, appends, overwrite, delete, compact,
checkpoint; phase "vacuum": vacuum with zero retention)
"""
import datetime
import json
import os
import sys

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

import deltarows

HEADER = pa.struct([("key", pa.string()), ("value", pa.binary())])
SCHEMA = pa.schema([
    ("kafka_topic", pa.string()),
    ("kafka_partition", pa.int32()),
    ("kafka_offset", pa.int64()),
    ("kafka_timestamp", pa.timestamp("us", tz="UTC")),
    ("kafka_key", pa.string()),
    ("headers", pa.list_(pa.field("element", HEADER))),
    ("bridge_ts", pa.timestamp("us", tz="UTC")),
    ("raw_payload", pa.binary()),
    ("ingest_ts", pa.timestamp("us", tz="UTC")),
    ("ingest_date", pa.date32()),
])


def batch(first, n, day):
    base = datetime.datetime(2024, 5, day, 12, 0, 0, 123456, tzinfo=datetime.timezone.utc)
    rows = []
    for o in range(first, first + n):
        ts = base + datetime.timedelta(microseconds=o * 1001)
        rows.append({
            "kafka_topic": "plant_sensor_readings_raw",
            "kafka_partition": o % 6,
            "kafka_offset": o,
            "kafka_timestamp": ts,
            "kafka_key": None if o % 50 == 0 else f"plant/line{o % 7}/press{o % 97}/temperature",
            "headers": [{"key": "mqtt_topic", "value": b"plant/x"}, {"key": "bridge_ts_ms", "value": str(o).encode()}],
            "bridge_ts": None if o % 10 == 0 else ts - datetime.timedelta(milliseconds=2),
            "raw_payload": ('{"sensor_id":"press%02d","value":%d}' % (o % 97, o)).encode(),
            "ingest_ts": ts + datetime.timedelta(milliseconds=5),
            "ingest_date": datetime.date(2024, 5, day),
        })
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def emit(op, path):
    dt = DeltaTable(path)
    print(json.dumps({"op": op, "version": dt.version(), "rows": deltarows.rows(dt.to_pyarrow_table())}), flush=True)


def main():
    path, phase = sys.argv[1], sys.argv[2]
    if phase == "ops":
        write_deltalake(path, batch(0, 100, 6), partition_by=["ingest_date"], mode="append")
        emit("create", path)
        write_deltalake(path, batch(100, 80, 7), partition_by=["ingest_date"], mode="append")
        emit("append", path)
        write_deltalake(path, batch(180, 50, 6), partition_by=["ingest_date"], mode="append")
        emit("append", path)
        write_deltalake(path, batch(1000, 120, 8), partition_by=["ingest_date"], mode="overwrite")
        emit("overwrite", path)
        write_deltalake(path, batch(2000, 60, 9), partition_by=["ingest_date"], mode="append")
        emit("append", path)
        DeltaTable(path).delete("kafka_offset < 1010 OR kafka_offset >= 2050")
        emit("delete", path)
        write_deltalake(path, batch(2100, 30, 9), partition_by=["ingest_date"], mode="append")
        emit("append", path)
        DeltaTable(path).optimize.compact()
        emit("optimize", path)
        DeltaTable(path).create_checkpoint()
        write_deltalake(path, batch(3000, 10, 9), partition_by=["ingest_date"], mode="append")
        emit("append after checkpoint", path)
    elif phase == "partitions":
        # Partition values that need escaping, a null one, and a timestamp partition column.
        t = pa.table({
            "id": pa.array(range(8), pa.int64()),
            "p": pa.array(["a/b", "x=y", "100%", "sp ace", "ünï", "q?#[]{}^", "colon:1", None]),
            "ts": pa.array([datetime.datetime(2021, 9, 8, 11, 11, 11, 123456, tzinfo=datetime.timezone.utc), None] * 4,
                           pa.timestamp("us", tz="UTC")),
            "d": pa.array([datetime.date(2024, 1, 1 + i) for i in range(8)], pa.date32()),
        })
        write_deltalake(path, t, partition_by=["p", "ts"], mode="append")
        emit("partitions", path)
    elif phase == "vacuum":
        DeltaTable(path).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
        emit("vacuum", path)
    else:
        sys.exit("unknown phase " + phase)


if __name__ == "__main__":
    main()
    # Leave without interpreter teardown: delta-rs and Arrow native thread pools torn down at
    # exit can abort the process ("terminate called without an active exception",
    # delta-io/delta-rs#2184) after all the output was written.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
