#!/usr/bin/env bash
# bench-peers.sh runs the benchmarks that compare plantlake with other engines (make bench-peers,
# outside make bench: the peers are large downloads and slow). Each writes its table to
# bench/results/<component>.md.
#   - deserialize against Spark local[1] doing the original design's Job 2 with delta-spark, on the
#     same raw table (services/deserialize/bench --spark-python). pyspark and delta-spark are
#     installed from PyPI into $PLANTLAKE_CACHE/spark-venv, pinned as in scripts/spark-check.sh
#     (which shares the venv); delta-spark's jars come from Maven Central on first use.
#   - merge against delta-rs and Spark MERGE INTO on local[1] (services/merge/bench --spark-python),
#     into bench/results/merge-peers.md.
#   - with KDI=path-to-kafka-delta-ingest: kafka-delta-ingest beside ingest (issue 17, item 5).
# Usage: scripts/bench-peers.sh            (KDI=... in the environment for the ingest peer)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(pwd)/bench/results
mkdir -p "$out"

# The same pins as scripts/spark-check.sh (delta-spark 4.0.x needs pyspark 4.0.x; deltalake and
# pyarrow as devstack installs them), so that both scripts use one venv.
PYSPARK_VERSION=4.0.1
DELTA_SPARK_VERSION=4.0.0
pinned() { sed -n "s/^[[:space:]]*$1 = \"\\(.*\\)\"/\\1/p" devstack/install.go; }
DELTALAKE_VERSION=$(pinned DeltalakeVersion)
PYARROW_VERSION=$(pinned PyarrowVersion)
if [[ -z "$DELTALAKE_VERSION" || -z "$PYARROW_VERSION" ]]; then
  echo "bench-peers: cannot read the deltalake/pyarrow versions from devstack/install.go" >&2
  exit 1
fi
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

echo "=== bench-peers deserialize vs Spark local[1] ($want)"
(cd services/deserialize && go run ./bench -spark-python "$venv/bin/python" -out "$out/deserialize.md")
cat "$out/deserialize.md"

# merge (issue 13): plantlake, delta-rs and Spark MERGE INTO on local[1], side by side on the same
# gold of 1 M and 10 M rows, first_wins and latest_wins (services/merge/bench --spark-python).
echo "=== bench-peers merge vs delta-rs and Spark local[1] ($want)"
(cd services/merge && go run ./bench -spark-python "$venv/bin/python" -out "$out/merge-peers.md")
cat "$out/merge-peers.md"

echo "=== bench-peers ingest vs kafka-delta-ingest"
if [[ -z "${KDI:-}" ]]; then
  cat <<'MSG'
bench-peers: KDI is not set, so kafka-delta-ingest is not measured. To build its binary (it is not in
the Rust crate registry; never copy its code into plantlake):
  1. fetch its public repository (github.com/delta-io/kafka-delta-ingest) at a commit you record;
  2. it has no Cargo.lock: run `cargo generate-lockfile` and keep the lock file you resolved;
  3. `cargo build --release --features s3` (it refuses to build without `s3` or `azure`; Debian's
     librdkafka is too old to link dynamically, so the bundled one is built: about 21 minutes on
     2 cores);
  4. make bench-peers KDI=/path/to/target/release/kafka-delta-ingest
MSG
elif [[ ! -x "$KDI" ]]; then
  echo "bench-peers: KDI=$KDI is not an executable file" >&2
  exit 1
else
  echo "bench-peers: the kafka-delta-ingest run beside ingest is not wired yet (issue 17, item 5); $KDI not measured" >&2
  exit 1
fi
