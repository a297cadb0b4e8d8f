"""The original design's Job 2 on Spark, for services/deserialize/bench: reads
the raw Delta table, parses raw_payload with from_json and the seed's schema,
applies the same checks (the five fields present, a finite value, ts within 7
days before and 1 hour after ingest_ts, the unit allowed for the
measurement), and writes bronze and dead letters as Delta tables, on
local[1]. The classified rows are cached so that the two writes read and
parse raw once (Spark's best case).

Usage: python spark_job2.py RAW_TABLE BRONZE_OUT DEAD_LETTERS_OUT
Prints, as its last line, a JSON report: rows written to each table, the job
time (session ready to the last write committed), the CPU seconds of the JVM
and this driver, and their peak RSS (VmHWM) in KiB, all read when the job ends (before the
counts that check the writes)."""

import json
import os
import resource
import sys
import time

from delta import configure_spark_with_delta_pip
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StringType, StructField, StructType

# The seed's payload schema.
SCHEMA = StructType([
    StructField("sensor_id", StringType()),
    StructField("measurement", StringType()),
    StructField("value", DoubleType()),
    StructField("unit", StringType()),
    StructField("ts", DoubleType()),
])
REQUIRED = ["sensor_id", "measurement", "value", "unit", "ts"]
# rules.default.yaml's unit_allowed; an unknown measurement is allowed.
UNITS = {
    "temperature": ["C", "F", "K"],
    "pressure": ["bar", "mbar", "kPa", "Pa", "psi"],
    "humidity": ["%", "%RH"],
    "vibration": ["mm/s", "g"],
    "flow": ["l/min", "m3/h"],
    "current": ["A", "mA"],
    "voltage": ["V", "mV"],
    "power": ["W", "kW"],
    "speed": ["rpm"],
}
MAX_AGE_S = 7 * 86400
MAX_FUTURE_S = 3600


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


def main(raw_path, bronze_path, dead_path):
    builder = (SparkSession.builder.master("local[1]").appName("job2-bench")
               .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
               .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
               .config("spark.sql.shuffle.partitions", "1")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               # The Delta log is read with one task, not 50: these tables have a few commits.
               .config("spark.databricks.delta.snapshotPartitions", "1")
               .config("spark.sql.session.timeZone", "UTC"))
    spark = configure_spark_with_delta_pip(builder).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    start = time.monotonic()

    raw = spark.read.format("delta").load(raw_path)
    p = raw.withColumn("j", F.from_json(F.col("raw_payload").cast("string"), SCHEMA))
    ingest_s = F.unix_micros("ingest_ts") / 1e6
    units = F.create_map(*[x for m, us in UNITS.items() for x in (F.lit(m), F.array(*[F.lit(u) for u in us]))])
    allowed = units[F.col("j.measurement")]
    missing = None
    for name in reversed(REQUIRED):
        missing = F.when(F.col("j." + name).isNull(), F.lit(name)).otherwise(missing) if missing is not None \
            else F.when(F.col("j." + name).isNull(), F.lit(name))
    value = F.col("j.value")
    ts = F.col("j.ts")
    code = (F.when(F.col("raw_payload").isNull() | (F.length("raw_payload") == 0), F.lit("parse.empty"))
            .when(F.col("j").isNull() | F.col("j.sensor_id").isNull() & F.col("j.measurement").isNull()
                  & value.isNull() & F.col("j.unit").isNull() & ts.isNull(), F.lit("parse.invalid_json"))
            .when(missing.isNotNull(), F.lit("parse.missing_field"))
            .when(F.isnan(value) | (F.abs(value) == float("inf")), F.lit("parse.value_not_finite"))
            .when((ts < ingest_s - MAX_AGE_S) | (ts > ingest_s + MAX_FUTURE_S), F.lit("ts_window"))
            .when(allowed.isNotNull() & ~F.array_contains(allowed, F.col("j.unit")), F.lit("unit_allowed")))
    detail = (F.when(code == "parse.missing_field", F.concat(F.lit("missing field "), missing))
              .otherwise(code))
    stage = F.when(code.startswith("parse."), F.lit("parse")).otherwise(F.lit("validate"))
    classified = p.withColumn("error_code", code).withColumn("error_detail", detail).withColumn("stage", stage).cache()

    topic = F.split(F.col("kafka_key"), "/")
    event_ts = F.timestamp_micros((ts * 1e6).cast("long"))
    bronze = (classified.where(F.col("error_code").isNull()).select(
        F.lit("plant").alias("plant"), topic[1].alias("line"), topic[2].alias("device"),
        F.col("j.sensor_id").alias("sensor_id"), F.col("j.measurement").alias("measurement"),
        value.alias("value"), F.col("j.unit").alias("unit"), event_ts.alias("event_ts"),
        "kafka_topic", "kafka_partition", "kafka_offset", "ingest_ts",
        F.to_date(event_ts).alias("event_date")))
    dead = (classified.where(F.col("error_code").isNotNull()).select(
        "kafka_topic", "kafka_partition", "kafka_offset", "kafka_key", "headers", "raw_payload",
        "error_code", "error_detail", "stage", F.col("ingest_ts").alias("failed_at"),
        F.to_date("ingest_ts").alias("failed_date")))
    dead.write.format("delta").mode("append").partitionBy("failed_date").save(dead_path)
    bronze.write.format("delta").mode("append").partitionBy("event_date").save(bronze_path)
    job = time.monotonic() - start
    jvm_pid = spark.sparkContext._jvm.ProcessHandle.current().pid()
    jvm_cpu, jvm_hwm = proc_stat(jvm_pid)
    me = resource.getrusage(resource.RUSAGE_SELF)

    n_bronze = spark.read.format("delta").load(bronze_path).count()
    n_dead = spark.read.format("delta").load(dead_path).count()
    version = spark.version
    spark.stop()
    print(json.dumps({
        "bronze": n_bronze, "dead_letters": n_dead, "job_seconds": job,
        "cpu_seconds": jvm_cpu + me.ru_utime + me.ru_stime,
        "peak_rss_kib": jvm_hwm + me.ru_maxrss, "spark": version,
    }), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
