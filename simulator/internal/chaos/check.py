# The chaos run's check: compares the tables a run wrote with the
# simulator's ledger and prints the counts as one JSON object.
# Usage: python3 check.py LEDGER WAREHOUSE
import base64, collections, json, os, sys

import deltalake
import pyarrow.compute as pc

ledger_path, warehouse = sys.argv[1], sys.argv[2]
out = collections.OrderedDict()
examples = []

def example(kind, what):
    if sum(1 for e in examples if e.startswith(kind)) < 5:
        examples.append(kind + ": " + what)

# The ledger: what was published, and what each message should become.
published = collections.Counter()  # (topic, payload) -> messages
dead_expected = {}  # (topic, payload) -> error_code
gold_expected = {}  # (sensor_id, measurement, ts_us) -> (value, unit)
entries = unacked = 0
with open(ledger_path, "rb") as f:
    for line in f:
        e = json.loads(line)
        entries += 1
        if not e.get("acked"):
            unacked += 1
        key = (e["topic"], base64.b64decode(e.get("payload") or ""))
        published[key] += 1
        kind = e["kind"]
        if kind in ("too_late", "broken"):
            dead_expected[key] = e["error_code"]
        elif kind in ("reading", "late"):
            gold_expected[(e["sensor_id"], e["measurement"], e["ts_us"])] = (e["value"], e["unit"])
out["ledger_entries"] = entries
out["unacked"] = unacked
out["expected_gold"] = len(gold_expected)
out["expected_dead_letters"] = sum(published[k] for k in dead_expected)

def read(name, columns):
    path = os.path.join(warehouse, *name.split("."))
    return deltalake.DeltaTable(path).to_pyarrow_table(columns=columns)

# raw: every published message at least once, each (topic, partition,
# offset) once, nothing that was not published.
raw = read("raw.plant_sensor_readings", ["kafka_topic", "kafka_partition", "kafka_offset", "kafka_key", "raw_payload"])
raw_by_offset = {}
raw_count = collections.Counter()
for t, p, o, k, v in zip(*(raw.column(c).to_pylist() for c in raw.column_names)):
    raw_by_offset[(t, p, o)] = (k, v or b"")
    raw_count[(k, v or b"")] += 1
del raw
out["raw_rows"] = sum(raw_count.values())
out["raw_distinct_offsets"] = len(raw_by_offset)
missing = 0
for k, n in published.items():
    if raw_count[k] < n:
        missing += n - raw_count[k]
        example("raw missing", "%s %r" % (k[0], k[1][:80]))
out["raw_missing"] = missing
unexpected = 0
for k, n in raw_count.items():
    if k not in published:
        unexpected += n
        example("raw unexpected", "%s %r" % (k[0], k[1][:80]))
out["raw_unexpected"] = unexpected
out["raw_redelivered"] = out["raw_rows"] - entries + missing - unexpected

# bronze and dead letters: each raw row goes exactly one way, once.
def offsets(table):
    return list(zip(*(table.column(c).to_pylist() for c in ("kafka_topic", "kafka_partition", "kafka_offset"))))

bronze = offsets(read("bronze.plant_sensor_readings", ["kafka_topic", "kafka_partition", "kafka_offset"]))
bronze_set = set(bronze)
out["bronze_rows"] = len(bronze)
out["bronze_duplicate_offsets"] = len(bronze) - len(bronze_set)
wrong = 0
for off in bronze_set:
    r = raw_by_offset.get(off)
    if r is None or r in dead_expected:
        wrong += 1
        example("bronze unexpected", "%s %r" % (off, r))
out["bronze_unexpected"] = wrong

dl = read("bronze.plant_sensor_dead_letters", ["kafka_topic", "kafka_partition", "kafka_offset", "raw_payload", "error_code"])
dl_offsets = offsets(dl)
dl_set = set(dl_offsets)
out["dead_letters"] = len(dl_offsets)
out["dead_letter_duplicate_offsets"] = len(dl_offsets) - len(dl_set)
extra = code_mismatch = bytes_mismatch = 0
for off, payload, code in zip(dl_offsets, dl.column("raw_payload").to_pylist(), dl.column("error_code").to_pylist()):
    r = raw_by_offset.get(off)
    if r is None or r not in dead_expected:
        extra += 1
        example("dead letter unexpected", "%s %r" % (off, r))
        continue
    if (payload or b"") != r[1]:
        bytes_mismatch += 1
        example("dead letter bytes", "%s %r != %r" % (off, (payload or b"")[:80], r[1][:80]))
    if code != dead_expected[r]:
        code_mismatch += 1
        example("dead letter code", "%s %s, want %s" % (off, code, dead_expected[r]))
out["dead_letters_unexpected"] = extra
out["dead_letter_code_mismatches"] = code_mismatch
out["dead_letter_bytes_mismatches"] = bytes_mismatch
del dl

missing_bronze = missing_dl = 0
for off, r in raw_by_offset.items():
    if r in dead_expected:
        if off not in dl_set:
            missing_dl += 1
            example("dead letter missing", "%s %r" % (off, r[1][:80]))
    elif r in published and off not in bronze_set:
        missing_bronze += 1
        example("bronze missing", "%s %r" % (off, r[1][:80]))
out["bronze_missing"] = missing_bronze
out["dead_letters_missing"] = missing_dl

# gold: exactly the expected keys, each once, with the expected values.
gold = read("gold.plant_sensor_readings", ["sensor_id", "measurement", "ts", "value", "unit"])
ts = pc.cast(gold.column("ts"), "int64").to_pylist()
got = {}
dup_keys = 0
for s, m, t, v, u in zip(gold.column("sensor_id").to_pylist(), gold.column("measurement").to_pylist(), ts,
                         gold.column("value").to_pylist(), gold.column("unit").to_pylist()):
    k = (s, m, t)
    if k in got:
        dup_keys += 1
        example("gold duplicate key", repr(k))
    got[k] = (v, u)
out["gold_rows"] = gold.num_rows
out["gold_duplicate_keys"] = dup_keys
gm = ge = vm = 0
for k, want in gold_expected.items():
    have = got.get(k)
    if have is None:
        gm += 1
        example("gold missing", repr(k))
    elif have != want:
        vm += 1
        example("gold value", "%r: %r, want %r" % (k, have, want))
for k in got:
    if k not in gold_expected:
        ge += 1
        example("gold extra", repr(k))
out["gold_missing"] = gm
out["gold_extra"] = ge
out["gold_value_mismatches"] = vm
out["examples"] = examples
sys.stdout.write(json.dumps(out) + "\n")
sys.stdout.flush()
os._exit(0)  # delta-rs can abort at interpreter exit (delta-rs#2184)
