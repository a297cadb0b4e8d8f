#!/usr/bin/env bash
# bench.sh runs every component's benchmark report: each prints its Markdown table and writes it to
# bench/results/<component>.md. Benchmarks start their own brokers; run them on an idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(pwd)/bench/results
mkdir -p "$out"


echo "=== bench delta"; (cd delta && go test -p 1 -count=1 -run '^TestBenchReport$' -bench-report "$out/delta.md" -timeout 20m .)
cat "$out/delta.md"

echo "=== bench delta-parquet"; (cd delta && go test -run '^$' -bench . -benchmem -count 3 -cpu 1 -p 1 ./datafile/ ./reader/ -args -bench-md="$out/delta-parquet.md")
cat "$out/delta-parquet.md"

echo "=== bench bridge"; (cd services/bridge && go run ./bench -out "$out/bridge.md")
cat "$out/bridge.md"

echo "=== bench catalog"; (cd services/catalog && go test -p 1 -count=1 -run '^$' -bench BenchmarkCatalogReport -benchtime 1x -timeout 30m ./internal/service/)
cat "$out/catalog.md"

echo "=== bench ingest"; (cd services/ingest && go run ./bench)
cat "$out/ingest.md"

echo "=== bench cloud"; (cd delta && go test -p 1 -count=1 -run '^TestBenchReport$' -timeout 20m ./storage/cloudtest/ -bench-report "$out/cloud.md")
cat "$out/cloud.md"

# plantlake only; make bench-peers runs it beside Spark into deserialize.md.
echo "=== bench deserialize"; (cd services/deserialize && go run ./bench -out "$out/deserialize-plantlake.md")
cat "$out/deserialize-plantlake.md"

# plantlake and delta-rs; make bench-peers runs it with Spark too into merge-peers.md.
echo "=== bench merge"; (cd services/merge && go run ./bench -out "$out/merge.md")
cat "$out/merge.md"

# The whole pipeline on this machine (MQTT ceiling, bridge alone, sustained rate held 5 minutes,
# freshness at 10,000/s); E2E_FLAGS=--quick for a short run. Prints its table.
echo "=== bench e2e"; (cd simulator && go run ./cmd/plantlake-bench -out "$out/e2e.md" ${E2E_FLAGS:-})
