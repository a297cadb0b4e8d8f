"""Spark's MERGE INTO of a bronze batch into a gold table, for
services/merge/bench (make bench-peers): delta-spark on local[1].

usage: spark_merge.py GOLD BRONZE STRATEGY

Reads bronze (the benchmark's bronze holds the one batch), shapes it to
gold's columns (bronze_version and merged_at added, as merge and drmerge.py
do), and runs

    MERGE INTO gold t USING batch s
      ON t.event_date = s.event_date AND t.sensor_id = s.sensor_id
         AND t.measurement = s.measurement AND t.ts = s.ts
      [WHEN MATCHED THEN UPDATE SET *]          -- latest_wins
      WHEN NOT MATCHED THEN INSERT *

The event_date term is Spark's best case: without it Spark scans every
partition of gold (a key's ts fixes its event_date, so the result is the
same). Prints, as its last line, a JSON report: the job time (session ready
to the merge committed, bronze's read included), the CPU seconds of the JVM
and this driver and their peak RSS (VmHWM) in KiB, read when the merge
ends, and the merge's row counts from Spark's own operation metrics.
"""

import json
import os
import resource
import sys
import time

from delta import configure_spark_with_delta_pip
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

COLS = ["sensor_id", "measurement", "value", "unit", "ts", "plant", "line", "device",
        "mqtt_topic", "kafka_topic", "kafka_partition", "kafka_offset", "raw_version",
        "bridge_ts", "event_date"]


def proc_stat(pid):
    """CPU seconds and VmHWM (KiB) of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return cpu, hwm


def main(gold_path, bronze_path, strategy):
    builder = (SparkSession.builder.master("local[1]").appName("merge-bench")
               .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
               .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
               .config("spark.sql.shuffle.partitions", "1")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.databricks.delta.snapshotPartitions", "1")
               .config("spark.sql.session.timeZone", "UTC"))
    spark = configure_spark_with_delta_pip(builder).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    start = time.monotonic()

    bronze_table = DeltaTable.forPath(spark, bronze_path)
    bronze_version = bronze_table.history(1).select("version").first()[0]
    src = (bronze_table.toDF().select(*COLS)
           .withColumn("bronze_version", F.lit(bronze_version).cast("long"))
           .withColumn("merged_at", F.current_timestamp()))
    m = (DeltaTable.forPath(spark, gold_path).alias("t").merge(
        src.alias("s"),
        "t.event_date = s.event_date AND t.sensor_id = s.sensor_id AND "
        "t.measurement = s.measurement AND t.ts = s.ts"))
    if strategy == "latest_wins":
        m = m.whenMatchedUpdateAll()
    elif strategy != "first_wins":
        sys.exit(f"unknown strategy {strategy}")
    m.whenNotMatchedInsertAll().execute()
    job = time.monotonic() - start
    jvm_pid = spark.sparkContext._jvm.ProcessHandle.current().pid()
    jvm_cpu, jvm_hwm = proc_stat(jvm_pid)
    me = resource.getrusage(resource.RUSAGE_SELF)

    metrics = DeltaTable.forPath(spark, gold_path).history(1).select("operationMetrics").first()[0]
    version = spark.version
    spark.stop()
    print(json.dumps({
        "job_seconds": job,
        "cpu_seconds": jvm_cpu + me.ru_utime + me.ru_stime,
        "peak_rss_kib": jvm_hwm + me.ru_maxrss,
        "inserted": int(metrics.get("numTargetRowsInserted", "0")),
        "updated": int(metrics.get("numTargetRowsUpdated", "0")),
        "files_removed": int(metrics.get("numTargetFilesRemoved", "0")),
        "spark": version,
    }), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
