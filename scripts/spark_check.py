"""Reads a plantlake raw table with Spark (delta-spark) and with delta-rs and
checks that both see the same thing at one table version: the same row count
at every version up to it and, at it, the same rows byte for byte (a SHA-256
of every row's Kafka key, payload and headers, matched by Kafka coordinates)
and the same history.

Both readers read the version delta-rs finds newest when the check starts, so
commits that land during the check (a live table) change nothing.

Usage: python spark_check.py TABLE_PATH
Exits 1 (printing what differs) when the readers disagree."""

import hashlib
import os
import sys

from deltalake import DeltaTable
from delta import configure_spark_with_delta_pip
from pyspark.sql import SparkSession

COORDINATES = ["kafka_topic", "kafka_partition", "kafka_offset"]
CONTENT = ["kafka_key", "raw_payload", "headers"]
SHOWN = 10  # differences printed per kind


def field(h, value):
    """Feeds one value to h unambiguously: a tag, then a length and bytes."""
    if value is None:
        h.update(b"N")
        return
    if isinstance(value, str):
        value = value.encode("utf-8")
    value = bytes(value)
    h.update(b"B" + len(value).to_bytes(8, "big") + value)


def row_digest(key, payload, headers):
    """SHA-256 of a row's key, payload and headers (in order), the same
    whichever reader returned them."""
    h = hashlib.sha256()
    field(h, key)
    field(h, payload)
    if headers is None:
        h.update(b"N")
    else:
        h.update(b"L" + len(headers).to_bytes(8, "big"))
        for hd in headers:
            if hd is None:
                h.update(b"N")
                continue
            k, v = (hd["key"], hd["value"]) if isinstance(hd, dict) else (hd.key, hd.value)
            field(h, k)
            field(h, v)
    return h.hexdigest()


def add(rows, coord, digest, reader, problems):
    if coord in rows:
        problems.append(f"{reader}: coordinates {coord} appear twice")
    rows[coord] = digest


def delta_rs_rows(path, version, problems):
    t = DeltaTable(path, version=version).to_pyarrow_table(columns=COORDINATES + CONTENT)
    cols = {c: t.column(c).to_pylist() for c in COORDINATES + CONTENT}
    rows = {}
    for i in range(t.num_rows):
        coord = tuple(cols[c][i] for c in COORDINATES)
        add(rows, coord, row_digest(cols["kafka_key"][i], cols["raw_payload"][i], cols["headers"][i]), "delta-rs", problems)
    return rows


def spark_rows(spark, path, version, problems):
    df = spark.read.format("delta").option("versionAsOf", version).load(path).select(*(COORDINATES + CONTENT))
    rows = {}
    for r in df.toLocalIterator():
        coord = tuple(r[c] for c in COORDINATES)
        add(rows, coord, row_digest(r["kafka_key"], r["raw_payload"], r["headers"]), "Spark", problems)
    return rows


def compare_rows(rs, sp, problems):
    only_rs = sorted(set(rs) - set(sp))
    only_sp = sorted(set(sp) - set(rs))
    differ = sorted(c for c in set(rs) & set(sp) if rs[c] != sp[c])
    for what, coords in (("only delta-rs reads", only_rs), ("only Spark reads", only_sp),
                         ("key, payload or headers differ", differ)):
        if coords:
            shown = ", ".join(map(str, coords[:SHOWN]))
            problems.append(f"{len(coords)} rows {what}: {shown}{' …' if len(coords) > SHOWN else ''}")


def main(path):
    spark = configure_spark_with_delta_pip(
        SparkSession.builder.appName("plantlake-spark-check")
        .master("local[2]")
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
    ).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    problems = []

    version = DeltaTable(path).version()
    print(f"table {path}: comparing at version {version} (newer commits are ignored)")
    for v in range(version + 1):
        rs = DeltaTable(path, version=v).to_pyarrow_table(columns=["kafka_offset"]).num_rows
        sp = spark.read.format("delta").option("versionAsOf", v).load(path).count()
        if rs != sp:
            problems.append(f"version {v}: delta-rs {rs} rows, Spark {sp}")
    print(f"row counts at versions 0..{version}: compared")

    rs = delta_rs_rows(path, version, problems)
    sp = spark_rows(spark, path, version, problems)
    compare_rows(rs, sp, problems)
    print(f"version {version}: delta-rs {len(rs)} rows, Spark {len(sp)} rows; key, payload and headers hashed per row")

    history = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").select("version", "operation").collect()
    history = [h for h in history if h.version <= version]
    if sorted(h.version for h in history) != list(range(version + 1)):
        problems.append(f"history: Spark lists versions {sorted(h.version for h in history)}, want 0..{version}")
    print(f"history: {len(history)} versions, operations {sorted({h.operation for h in history})}")

    spark.stop()
    if problems:
        print("DISAGREE:\n  " + "\n  ".join(problems))
        return 1
    print("Spark and delta-rs agree")
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1])
    sys.stdout.flush()
    # delta-rs can abort the interpreter at exit after the work is done
    # (delta-rs#2184); end with the script's own status.
    os._exit(code)
