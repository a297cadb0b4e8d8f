"""Reads a plantlake raw table with Spark (delta-spark) and with delta-rs and
checks that both see the same thing: the same row count at every version, and
at the latest version the same Kafka coordinates, payload bytes and history.

Usage: python spark_check.py TABLE_PATH
Exits 1 (printing what differs) when the readers disagree."""

import os
import sys

import pyarrow.compute as pc
from deltalake import DeltaTable
from delta import configure_spark_with_delta_pip
from pyspark.sql import SparkSession, functions as F


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

    dt = DeltaTable(path)
    latest = dt.version()
    print(f"table {path}: delta-rs sees version {latest}")
    for v in range(latest + 1):
        rs = DeltaTable(path, version=v).to_pyarrow_table(columns=["kafka_offset"]).num_rows
        sp = spark.read.format("delta").option("versionAsOf", v).load(path).count()
        if rs != sp:
            problems.append(f"version {v}: delta-rs {rs} rows, Spark {sp}")
    print(f"row counts at versions 0..{latest}: compared")

    df = spark.read.format("delta").load(path)
    s = df.agg(
        F.count(F.lit(1)).alias("rows"),
        F.countDistinct("kafka_topic", "kafka_partition", "kafka_offset").alias("coordinates"),
        F.sum(F.length("raw_payload")).alias("payload_bytes"),
        F.sum(F.size("headers")).alias("headers"),
        F.count("bridge_ts").alias("with_bridge_ts"),
    ).collect()[0].asDict()

    t = dt.to_pyarrow_table(columns=["kafka_topic", "kafka_partition", "kafka_offset", "raw_payload", "headers", "bridge_ts"])
    keys = set(zip(t["kafka_topic"].to_pylist(), t["kafka_partition"].to_pylist(), t["kafka_offset"].to_pylist()))
    r = {
        "rows": t.num_rows,
        "coordinates": len(keys),
        "payload_bytes": pc.sum(pc.binary_length(t["raw_payload"])).as_py() or 0,
        "headers": pc.sum(pc.list_value_length(t["headers"])).as_py() or 0,
        "with_bridge_ts": t.num_rows - t["bridge_ts"].null_count,
    }
    for k in r:
        sv = s[k] if s[k] is not None else 0
        if sv != r[k]:
            problems.append(f"{k}: delta-rs {r[k]}, Spark {sv}")
    print("latest version, Spark:", s)

    history = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").select("version", "operation").collect()
    if len(history) != latest + 1:
        problems.append(f"history: Spark lists {len(history)} versions, want {latest + 1}")
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
