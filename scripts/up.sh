#!/usr/bin/env bash
# up.sh starts the local plantlake stack: Mosquitto and Kafka (through devstack's plantlake-dev),
# then every service that exists so far, each in the background with a pid file and a log under
# the stack folder. Data stays there between runs. Usage: scripts/up.sh [stack-dir]
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

# name grpc-port metrics-port extra flags...
services=(
  "catalog 7001 9101 --warehouse=$warehouse"
  "bridge 7002 9102 --mqtt-client-id=plantlake-bridge-1"
  "ingest 7003 9103"
  "deserialize 7004 9104"
  "merge 7005 9105"
)
started=()
for entry in "${services[@]}"; do
  read -r name grpc metrics extra <<<"$entry"
  [ -d "services/$name/cmd/$name" ] || continue
  pidfile="$dir/run/$name.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "$name: already running (pid $(cat "$pidfile"))"
    started+=("$name $grpc $metrics")
    continue
  fi
  (cd "services/$name" && go build -o "$dir/bin/$name" "./cmd/$name")
  # shellcheck disable=SC2086 # extra holds flags
  nohup "$dir/bin/$name" --grpc-addr="127.0.0.1:$grpc" --metrics-addr="127.0.0.1:$metrics" $extra \
    >>"$dir/logs/$name.log" 2>&1 &
  echo $! >"$pidfile"
  started+=("$name $grpc $metrics")
  # The catalog must answer before the services that commit through it start.
  if [ "$name" = catalog ]; then
    for _ in $(seq 1 100); do
      (echo >"/dev/tcp/127.0.0.1/$grpc") 2>/dev/null && break
      sleep 0.1
    done
  fi
done

(cd tools && GOWORK=off go build -o "$dir/bin/grpcurl" github.com/fullstorydev/grpcurl/cmd/grpcurl)

cat <<INFO

plantlake is up (data, logs and pid files in $dir)
  Mosquitto      tcp://127.0.0.1:1883
  Kafka          127.0.0.1:9092
INFO
for s in "${started[@]}"; do
  read -r name grpc metrics <<<"$s"
  printf '  %-14s gRPC 127.0.0.1:%s   metrics http://127.0.0.1:%s/metrics   log %s\n' "$name" "$grpc" "$metrics" "$dir/logs/$name.log"
done
cat <<INFO
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
Stop with: make down
INFO
