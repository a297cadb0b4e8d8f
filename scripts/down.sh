#!/usr/bin/env bash
# down.sh stops what up.sh started: the simulator, the services (SIGTERM, so each finishes or
# abandons its batch cleanly), Jaeger (its traces are in memory: gone), then the brokers. Data stays.
# Usage: scripts/down.sh [stack-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.plantlake}
if [ -d "$dir" ]; then
  dir=$(cd "$dir" && pwd) # up.sh starts the binaries by absolute path
fi
# shellcheck source=scripts/pidfile.sh
. scripts/pidfile.sh
for name in sim merge deserialize ingest bridge catalog jaeger; do
  pidfile="$dir/run/$name.pid"
  marker="$dir/bin/$name"
  case "$name" in
  sim) marker="$dir/bin/plantlake-sim" ;;
  jaeger) pidfile="$dir/jaeger/jaeger.pid" marker="$dir/jaeger/jaeger.yaml" ;;
  esac
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if ours "$pidfile" "$marker"; then
    kill -TERM "$pid"
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "$name: still running after 15s, killing"
      kill -KILL "$pid" || true
    fi
    echo "$name: stopped"
  fi
  rm -f "$pidfile"
done
if [ -d "$dir" ]; then # nothing to stop before the first make up
  go run ./devstack/cmd/plantlake-dev down --dir "$dir"
fi
