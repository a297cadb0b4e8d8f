#!/usr/bin/env bash
# fuzz.sh runs every Go fuzz target of the workspace for a short time (default 10s each), so that
# `make test` catches decoders that panic on inputs their seed corpus does not hold.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${1:-10s}"
count=0
while IFS= read -r file; do
  dir=$(dirname "$file")
  while IFS= read -r target; do
    echo "=== fuzz $dir $target ($fuzztime)"
    (cd "$dir" && go test -timeout=3m -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" -fuzzminimizetime=2s -parallel=2 .)
    count=$((count + 1))
  done < <(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/')
done < <(git ls-files '*_test.go' ; git ls-files --others --exclude-standard '*_test.go')
echo "fuzz: $count targets ran"
