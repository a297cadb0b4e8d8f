"""An independent merge of bronze into a reference gold with delta-rs, then
a key-by-key comparison with plantlake's gold.

usage: refmerge.py BRONZE GOLD REF KEYS STRATEGY COLUMNS

Bronze is merged version by version, as merge follows it (the test writes
each version's rows with raw_version = the version): the rows a version added are deduplicated (newest by raw_version, kafka_topic, kafka_partition,
kafka_offset) and merged with DeltaTable.merge: when_not_matched_insert_all,
plus, for latest_wins, when_matched_update_all where the bronze row is newer.
Prints JSON: row counts, keys gold holds twice, and the keys whose COLUMNS
differ or that only one side has.
"""
import json
import sys

import pyarrow as pa
from deltalake import DeltaTable

bronze_path, gold_path, ref_path, keys, strategy, columns = sys.argv[1:7]
keys = keys.split(",")
columns = columns.split(",")
GOLD_COLS = ["sensor_id", "measurement", "value", "unit", "ts", "plant", "line", "device",
             "mqtt_topic", "kafka_topic", "kafka_partition", "kafka_offset", "raw_version",
             "bridge_ts", "event_date"]
ORDER = ["raw_version", "kafka_topic", "kafka_partition", "kafka_offset"]


def ident(r):
    return tuple(r[c] for c in ORDER)


def newer(a, b):
    return ident(a) > ident(b)


tbl = DeltaTable(bronze_path).to_pyarrow_table(columns=GOLD_COLS)
by_version = {}
for r in tbl.to_pylist():
    # The test writes each bronze version's rows with raw_version = that version.
    by_version.setdefault(r["raw_version"], []).append(r)
ref = None
for v in sorted(by_version):
    added = by_version[v]
    batch = {}
    for r in added:
        k = tuple(r[c] for c in keys)
        if k not in batch or newer(r, batch[k]):
            batch[k] = r
    src = pa.Table.from_pylist(list(batch.values()), schema=tbl.schema)
    src = src.append_column("bronze_version", pa.array([v] * src.num_rows, pa.int64()))
    if ref is None:
        ref = DeltaTable.create(ref_path, schema=src.schema, partition_by=["event_date"])
    pred = " AND ".join(f"t.{c} = s.{c}" for c in keys)
    m = ref.merge(source=src, predicate=pred, source_alias="s", target_alias="t")
    if strategy == "latest_wins":
        newer_sql = ("s.raw_version > t.raw_version OR (s.raw_version = t.raw_version AND "
                     "(s.kafka_topic > t.kafka_topic OR (s.kafka_topic = t.kafka_topic AND "
                     "(s.kafka_partition > t.kafka_partition OR (s.kafka_partition = t.kafka_partition AND "
                     "s.kafka_offset > t.kafka_offset)))))")
        m = m.when_matched_update_all(predicate=newer_sql)
    m.when_not_matched_insert_all().execute()
    ref = DeltaTable(ref_path)


def norm(x):
    if hasattr(x, "isoformat"):
        return x.isoformat()
    return x


def table_rows(path):
    out = {}
    twice = []
    for r in DeltaTable(path).to_pyarrow_table().to_pylist():
        k = json.dumps([norm(r[c]) for c in keys])
        if k in out:
            twice.append(k)
        out[k] = {c: norm(r[c]) for c in columns}
    return out, twice


gold, gold_twice = table_rows(gold_path)
want, ref_twice = table_rows(ref_path)
diff = [k for k in want if k in gold and gold[k] != want[k]]
print(json.dumps({
    "gold_rows": len(gold), "ref_rows": len(want),
    "gold_twice": gold_twice[:10], "ref_twice": ref_twice[:10],
    "missing": [k for k in want if k not in gold][:10],
    "extra": [k for k in gold if k not in want][:10],
    "diff": [[k, gold[k], want[k]] for k in diff[:10]],
}))
