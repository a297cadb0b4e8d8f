#!/usr/bin/env bash
# spark-check.sh reads a raw table with Spark (pyspark + delta-spark, the README's recipe) and with
# delta-rs, and fails when they disagree on any row's key, payload or headers. Not part of make test
# (Spark is checked outside CI for now): it downloads pyspark (~400 MB) into
# $PLANTLAKE_CACHE/spark-venv and delta-spark's jars from Maven Central on first use.
# Usage: scripts/spark-check.sh [TABLE_PATH]   (default: the raw table of make up).
#
# Every library is pinned: deltalake and pyarrow to the versions devstack installs for the tests
# (devstack/install.go), pyspark and delta-spark below (delta-spark 4.0.x needs pyspark 4.0.x). A
# venv holding other versions is brought to these.
set -euo pipefail
cd "$(dirname "$0")/.."
PYSPARK_VERSION=4.0.1
DELTA_SPARK_VERSION=4.0.0
pinned() { sed -n "s/^[[:space:]]*$1 = \"\\(.*\\)\"/\\1/p" devstack/install.go; }
DELTALAKE_VERSION=$(pinned DeltalakeVersion)
PYARROW_VERSION=$(pinned PyarrowVersion)
if [[ -z "$DELTALAKE_VERSION" || -z "$PYARROW_VERSION" ]]; then
  echo "spark-check: cannot read the deltalake/pyarrow versions from devstack/install.go" >&2
  exit 1
fi
table="${1:-$(pwd)/.plantlake/warehouse/raw/plant_sensor_readings}"
cache="${PLANTLAKE_CACHE:-$HOME/.cache/plantlake}"
venv="$cache/spark-venv"
want="pyspark==$PYSPARK_VERSION delta-spark==$DELTA_SPARK_VERSION deltalake==$DELTALAKE_VERSION pyarrow==$PYARROW_VERSION"
have() {
  "$venv/bin/python" - "$@" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if all(version(n) == v for n, v in (p.split("==") for p in sys.argv[1:])) else 1)
PY
}
# shellcheck disable=SC2086 # want is a list of requirements
if [[ ! -x "$venv/bin/python" ]] || ! have $want; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q $want
fi
echo "spark-check: $want"
exec "$venv/bin/python" scripts/spark_check.py "$table"
