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
if [[ -z "${KDI:-}" || ! -x "${KDI:-}" ]]; then
  if [[ -n "${KDI:-}" ]]; then
    echo "bench-peers: KDI=$KDI is not an executable file" >&2
  fi
  cat <<'MSG'
bench-peers: kafka-delta-ingest is not measured (KDI=path-to-its-binary is not set). To build it (it is
not in the Rust crate registry; never copy its code into plantlake):
  1. fetch its public repository, github.com/delta-io/kafka-delta-ingest (the commit the pinned lock
     was resolved for is in bench/peers/kdi/COMMIT);
  2. scripts/build-kdi.sh SOURCE   (SOURCE: its source folder or bare git dir) copies the pinned
     bench/peers/kdi/Cargo.lock in (the repository has none) and runs
     `nice -n 19 cargo build --release --locked --features s3` (it refuses to build without s3 or
     azure; Debian's librdkafka is too old to link dynamically, so the bundled one is built: about
     21 minutes on 2 cores); it prints the binary's path;
  3. make bench-peers KDI=/path/to/target/release/kafka-delta-ingest
MSG
  if [[ -n "${KDI:-}" ]]; then exit 1; fi
else
  kdi_commit=""
  if [[ -f "$KDI.commit" ]]; then kdi_commit=$(cat "$KDI.commit"); fi
  (cd bench/peers && go run . -kdi "$(realpath "$KDI")" -kdi-commit "$kdi_commit" -out "$out/peers.md")
fi
