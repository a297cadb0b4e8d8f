#!/usr/bin/env bash
# down.sh stops what up.sh started: the simulator, the services (SIGTERM, so each finishes or
# abandons its batch cleanly), Jaeger (its traces are in memory: gone), then the brokers. Data stays.
# Usage: scripts/down.sh [stack-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.plantlake}
for name in sim merge deserialize ingest bridge catalog jaeger; do
  pidfile="$dir/run/$name.pid"
  [ "$name" = jaeger ] && pidfile="$dir/jaeger/jaeger.pid"
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
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
[ -d "$dir" ] && go run ./devstack/cmd/plantlake-dev down --dir "$dir"
