#!/usr/bin/env bash
# spark-check.sh reads a raw table with Spark (pyspark 4.0 + delta-spark 4.0, the README's recipe)
# and with delta-rs, and fails when they disagree. Not part of make test (Spark is checked outside
# CI for now): it downloads pyspark (~400 MB) into $PLANTLAKE_CACHE/spark-venv and delta-spark's jars
# from Maven Central on first use. Usage: scripts/spark-check.sh [TABLE_PATH]
# (default: the raw table of make up).
set -euo pipefail
cd "$(dirname "$0")/.."
table="${1:-$(pwd)/.plantlake/warehouse/raw/plant_sensor_readings}"
cache="${PLANTLAKE_CACHE:-$HOME/.cache/plantlake}"
venv="$cache/spark-venv"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import pyspark, delta, deltalake' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "pyspark==4.0.1" "delta-spark==4.0.0" "deltalake==1.6.6" "pyarrow==26.0.1"
fi
exec "$venv/bin/python" scripts/spark_check.py "$table"
