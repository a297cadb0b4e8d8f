#!/usr/bin/env bash
# up.sh starts the local plantlake stack: Mosquitto, Kafka and Jaeger (through devstack's
# plantlake-dev), then every service, each in the background with a pid file and a log under the
# stack folder, exporting its traces to that Jaeger, and last the sensor simulator at a gentle rate.
# Data stays there between runs. Usage: scripts/up.sh [stack-dir]
# SIM_RATE (readings/s, default 10; 0: no simulator) and TRACE_SAMPLE_RATIO (the bridge's share of
# traced readings, default 0.05) tune it; OTEL_EXPORTER_OTLP_ENDPOINT set beforehand sends the
# traces elsewhere.
# WAREHOUSE=<uri> puts the tables elsewhere: a folder, s3://bucket/prefix or abfss://... (credentials
# and endpoints from the environment, as delta/storage/s3store and azstore read them).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dir=$(mkdir -p "${1:-.plantlake}" && cd "${1:-.plantlake}" && pwd)
mkdir -p "$dir/bin" "$dir/logs" "$dir/run"
warehouse=${WAREHOUSE:-$dir/warehouse}
case "$warehouse" in *://*) ;; *) mkdir -p "$warehouse" ;; esac

go run ./devstack/cmd/plantlake-dev up --dir "$dir"

# shellcheck source=scripts/pidfile.sh
. "$root/scripts/pidfile.sh"

# Jaeger, built from its Go module on first use (a cold build takes minutes; cached after).
if ours "$dir/jaeger/jaeger.pid" "$dir/jaeger/jaeger.yaml"; then
  echo "jaeger already running (pid $(cat "$dir/jaeger/jaeger.pid"))"
else
  go run ./devstack/cmd/plantlake-dev jaeger --dir "$dir"
fi
export OTEL_EXPORTER_OTLP_ENDPOINT=${OTEL_EXPORTER_OTLP_ENDPOINT:-http://127.0.0.1:4317}
sim_rate=${SIM_RATE:-10}
sample_ratio=${TRACE_SAMPLE_RATIO:-0.05}

# The catalog also serves a Unix socket, and the hops, on this machine, commit through it (no TCP
# on the commit path); a path too long for a socket (over ~100 bytes) keeps them on TCP 7001.
sock="$dir/run/catalog.sock"
catalog_socket="--unix-socket=$sock"
catalog_addr="--catalog-addr=unix://$sock"
if [ "${#sock}" -gt 100 ]; then
  catalog_socket=""
  catalog_addr="--catalog-addr=127.0.0.1:7001"
  sock="(none: $dir is too long a path for a socket)"
fi

# name grpc-port metrics-port extra flags...
services=(
  "catalog 7001 9101 --warehouse=$warehouse $catalog_socket"
  "bridge 7002 9102 --mqtt-client-id=plantlake-bridge-1 --trace-sample-ratio=$sample_ratio"
  "ingest 7003 9103 $catalog_addr"
  "deserialize 7004 9104 $catalog_addr"
  "merge 7005 9105 $catalog_addr"
)
started=()
pending=()
failed=()
for entry in "${services[@]}"; do
  read -r name grpc metrics extra <<<"$entry"
  [ -d "services/$name/cmd/$name" ] || continue
  pidfile="$dir/run/$name.pid"
  if ours "$pidfile" "$dir/bin/$name"; then
    echo "$name: already running (pid $(cat "$pidfile"))"
    started+=("$name $grpc $metrics")
    continue
  fi
  (cd "services/$name" && go build -o "$dir/bin/$name" "./cmd/$name")
  log="$dir/logs/$name.log"
  offset=$(stat -c %s "$log" 2>/dev/null || echo 0)
  # shellcheck disable=SC2086 # extra holds flags
  nohup "$dir/bin/$name" --grpc-addr="127.0.0.1:$grpc" --metrics-addr="127.0.0.1:$metrics" $extra \
    >>"$log" 2>&1 &
  pid=$!
  echo "$pid" >"$pidfile"
  # The catalog must serve before the services that commit through it start; the others are
  # checked once all are started.
  if [ "$name" = catalog ]; then
    serving "$pid" "$log" "$offset" || failed+=("$name $pid $log $offset")
  else
    pending+=("$name $pid $log $offset")
  fi
  started+=("$name $grpc $metrics")
done
for p in "${pending[@]}"; do
  read -r name pid log offset <<<"$p"
  serving "$pid" "$log" "$offset" || failed+=("$p")
done

(cd tools && GOWORK=off go build -o "$dir/bin/grpcurl" github.com/fullstorydev/grpcurl/cmd/grpcurl)

# The simulator: 2 lines x 3 machines x 5 measurements at sim_rate readings/s until make down.
sim="not started (SIM_RATE=0)"
if [ "$sim_rate" != 0 ]; then
  if ours "$dir/run/sim.pid" "$dir/bin/plantlake-sim"; then
    echo "simulator: already running (pid $(cat "$dir/run/sim.pid"))"
  else
    go build -o "$dir/bin/plantlake-sim" ./simulator/cmd/plantlake-sim
    nohup "$dir/bin/plantlake-sim" --mqtt-broker=tcp://127.0.0.1:1883 --rate="$sim_rate" \
      >>"$dir/logs/sim.log" 2>&1 &
    echo $! >"$dir/run/sim.pid"
  fi
  sim="$sim_rate readings/s to tcp://127.0.0.1:1883 until make down   log $dir/logs/sim.log"
fi

headline="plantlake is up"
[ "${#failed[@]}" -eq 0 ] || headline="plantlake is PARTLY up (see the end)"
cat <<INFO

$headline (data, logs and pid files in $dir)
  Mosquitto      tcp://127.0.0.1:1883
  Kafka          127.0.0.1:9092
  Jaeger         query API http://127.0.0.1:16686/api/services   OTLP gRPC 127.0.0.1:4317, HTTP 127.0.0.1:4318
                 (the binary built from Jaeger's Go module has no web UI; for the UI run the image:
                  docker run --rm -p 16686:16686 -p 4317:4317 -p 4318:4318 jaegertracing/jaeger:2.12.0
                  after make down's Jaeger is stopped, or point OTEL_EXPORTER_OTLP_ENDPOINT at it)
  simulator      $sim
INFO
for s in "${started[@]}"; do
  read -r name grpc metrics <<<"$s"
  printf '  %-14s gRPC 127.0.0.1:%s   metrics http://127.0.0.1:%s/metrics   log %s\n' "$name" "$grpc" "$metrics" "$dir/logs/$name.log"
done
cat <<INFO
  catalog socket $sock   (the hops commit through it; $dir/bin/grpcurl -plaintext -unix $sock list)
  warehouse      $warehouse

Try:
  $dir/bin/grpcurl -plaintext 127.0.0.1:7001 list
  $dir/bin/grpcurl -plaintext 127.0.0.1:7001 plantlake.catalog.v1.CatalogService/ListTables
  $dir/bin/grpcurl -plaintext 127.0.0.1:7002 plantlake.pipeline.v1.PipelineService/GetStatus
  mosquitto_pub -p 1883 -q 1 -t plant/line3/press01/temperature \\
    -m '{"sensor_id":"press01","measurement":"temperature","value":87.3,"unit":"C","ts":'\$(date +%s)'}'
    (a ts more than 7 days old or 1 hour ahead goes to bronze.plant_sensor_dead_letters: rule ts_window)
  $dir/bin/grpcurl -plaintext -d '{"table":"raw.plant_sensor_readings","limit":5}' \\
    127.0.0.1:7001 plantlake.catalog.v1.CatalogService/Scan
  $dir/bin/grpcurl -plaintext -d '{"table":"bronze.plant_sensor_readings","limit":5}' \\
    127.0.0.1:7001 plantlake.catalog.v1.CatalogService/Scan
  $dir/bin/grpcurl -plaintext -d '{"table":"gold.plant_sensor_readings","limit":5}' \\
    127.0.0.1:7001 plantlake.catalog.v1.CatalogService/Scan
  $dir/bin/grpcurl -plaintext 127.0.0.1:7004 plantlake.pipeline.v1.PipelineService/GetStatus
  make py    # a Python with deltalake: DeltaTable("$warehouse/bronze/plant_sensor_readings")
  make status   # one line per hop; gold has rows within about a minute
  \$(go run ./devstack/cmd/plantlake-dev python-path) -c 'from deltalake import DeltaTable; \\
    t = DeltaTable("$warehouse/gold/plant_sensor_readings").to_pyarrow_table(); print(t.num_rows, "rows"); print(t.slice(t.num_rows - 3))'
  curl -s 'http://127.0.0.1:16686/api/traces?service=merge&operation=merge.record&limit=1'   # a reading's trace: bridge,
    # ingest, deserialize and merge spans, each linked to its batch's commit (the catalog's span is there);
    # services send spans every 5 s, so the newest trace may lack a hop for a few seconds
Stop with: make down
INFO
if [ "${#failed[@]}" -gt 0 ]; then
  for f in "${failed[@]}"; do
    read -r name pid log offset <<<"$f"
    echo >&2
    if kill -0 "$pid" 2>/dev/null; then
      echo "$name (pid $pid) runs but did not serve within a minute; the end of $log:" >&2
    else
      echo "$name exited at start (pid $pid); the end of $log:" >&2
    fi
    tail -c +"$((offset + 1))" "$log" | tail -n 5 | sed 's/^/  /' >&2
  done
  echo >&2
  echo "plantlake is NOT fully up: fix the above (a port another process holds?), then make up again" >&2
  exit 1
fi
