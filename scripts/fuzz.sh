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
    # Go's fuzzer can end a run with a bare "context deadline exceeded" when -fuzztime runs out
    # while a worker is busy, without any failing input (no new file under testdata/fuzz): that
    # run is repeated once. A real failure writes its input there and fails at once.
    for attempt in 1 2; do
      before=$({ find "$dir/testdata/fuzz/$target" -type f 2>/dev/null || true; } | wc -l)
      set +e
      out=$(cd "$dir" && go test -timeout=3m -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" -fuzzminimizetime=2s -parallel=2 . 2>&1)
      rc=$?
      set -e
      echo "$out"
      after=$({ find "$dir/testdata/fuzz/$target" -type f 2>/dev/null || true; } | wc -l)
      if [ "$rc" -eq 0 ]; then
        break
      fi
      if [ "$attempt" -eq 1 ] && [ "$before" -eq "$after" ] && grep -q 'context deadline exceeded' <<<"$out" &&
        ! grep -qE 'Failing input written|panic:' <<<"$out"; then
        echo "fuzz: $target ended on the fuzzer's deadline without a failing input; running it again"
        continue
      fi
      exit "$rc"
    done
    count=$((count + 1))
  done < <(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/')
done < <(git ls-files '*_test.go' ; git ls-files --others --exclude-standard '*_test.go')
echo "fuzz: $count targets ran"
