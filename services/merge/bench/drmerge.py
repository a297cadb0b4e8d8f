"""delta-rs's merge of a bronze batch into a gold table, timed.

usage: drmerge.py GOLD BRONZE STRATEGY

Reads bronze (the whole table: the benchmark's bronze holds the one batch),
shapes it to gold's columns, merges it on (sensor_id, measurement, ts) with
when_not_matched_insert_all, plus when_matched_update_all for latest_wins,
and prints the seconds taken, bronze's read included.
"""
import datetime
import sys
import time

import pyarrow as pa
from deltalake import DeltaTable

gold_path, bronze_path, strategy = sys.argv[1:4]
COLS = ["sensor_id", "measurement", "value", "unit", "ts", "plant", "line", "device",
        "mqtt_topic", "kafka_topic", "kafka_partition", "kafka_offset", "raw_version",
        "bridge_ts", "event_date"]
start = time.perf_counter()
bronze = DeltaTable(bronze_path)
src = bronze.to_pyarrow_table(columns=COLS)
src = src.append_column("bronze_version", pa.array([bronze.version()] * src.num_rows, pa.int64()))
now = datetime.datetime.now(datetime.timezone.utc)
src = src.append_column("merged_at", pa.array([now] * src.num_rows, pa.timestamp("us", tz="UTC")))
m = DeltaTable(gold_path).merge(
    source=src,
    predicate="t.sensor_id = s.sensor_id AND t.measurement = s.measurement AND t.ts = s.ts",
    source_alias="s", target_alias="t")
if strategy == "latest_wins":
    m = m.when_matched_update_all()
m.when_not_matched_insert_all().execute()
print(time.perf_counter() - start)
