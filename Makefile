# plantlake — make up | down | test | lint | proto | bench
#
# Every target runs on a fresh Debian machine: `make test` and `make up` install what is missing
# (Mosquitto from Debian, Kafka from its Maven Central jars, a Python venv with deltalake) through
# devstack/cmd/plantlake-dev. Builds and tests stay within the machine's 2 cores.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

# Modules of go.work, in test order: libraries first, then the services.
MODULES := proto servicekit delta devstack pipeline services/catalog services/bridge services/ingest services/deserialize services/merge simulator deploy/compose bench/peers
# Where `make up` keeps its data, pid files and logs (kept between runs).
STACK_DIR ?= $(CURDIR)/.plantlake
# Per-package timeout of `go test`; the long integration suites stay well inside it.
TEST_TIMEOUT ?= 20m
GO_TEST_FLAGS ?= -p 1 -count=1 -timeout $(TEST_TIMEOUT)
export GOFLAGS := -buildvcs=false

.PHONY: all up down py test install test-go proto proto-check lint bench fuzz spark-check status sim compose-test

all: lint test

## install: install Mosquitto, Kafka jars and the Python venv if missing (idempotent)
install:
	go run ./devstack/cmd/plantlake-dev install

## up: start Mosquitto, Kafka, Jaeger, every service and the simulator in the background (WAREHOUSE=s3://... or
## abfss://... for an object store; SIM_RATE=readings/s, 0: no simulator; TRACE_SAMPLE_RATIO=the bridge's share traced)
up:
	WAREHOUSE="$(WAREHOUSE)" scripts/up.sh "$(STACK_DIR)"

## status: one line per pipeline service (state, position, lag, rates, data age) and gold's freshness
status:
	@go run ./simulator/cmd/plantlake-sim status $(STATUS_FLAGS)

## sim: publish simulated readings to make up's Mosquitto (SIM_FLAGS, e.g. "--rate 100 --duration 1m")
SIM_FLAGS ?= --rate 10 --duration 1m
sim:
	go run ./simulator/cmd/plantlake-sim $(SIM_FLAGS)

## py: a Python shell with deltalake and pyarrow (the venv make test and make up install)
py: install
	@py=$$(go run ./devstack/cmd/plantlake-dev python-path) && echo "$$py" && exec "$$py"

## down: stop what `make up` started (data stays)
down:
	scripts/down.sh "$(STACK_DIR)"

## test: unit tests, proto drift check, fuzz smoke, integration tests with the real brokers
test: install proto-check
	@start=$$(date +%s); \
	for m in $(MODULES); do \
	  echo "=== go test $$m"; \
	  (cd $$m && go test $(GO_TEST_FLAGS) ./...); \
	done; \
	$(MAKE) --no-print-directory fuzz; \
	echo "make test: all modules passed in $$(( $$(date +%s) - start ))s"

## fuzz: a short run of every fuzz target
FUZZTIME ?= 10s
fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

## proto: regenerate the Go code of proto/ (buf and plugins are Go tools in tools/)
proto:
	proto/generate.sh

## proto-check: fail when the committed generated code is stale
proto-check:
	proto/check-drift.sh

## lint: gofmt, go vet of every module, buf lint
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	@for m in $(MODULES); do (cd $$m && go vet ./...); done
	cd tools && GOWORK=off go tool buf lint ../proto
	@echo "lint: ok"

## bench: every benchmark prints its table and writes bench/results/<component>.md
bench: install
	scripts/bench.sh

## spark-check: read a raw table with Spark and delta-rs and compare (TABLE=path; default: make up's)
spark-check:
	scripts/spark-check.sh $(TABLE)

## bench-peers: the benchmarks against other engines, outside make bench: deserialize against Spark
## local[1] doing the original design's Job 2 (downloads pyspark, ~400 MB, on first use); with
## KDI=path, kafka-delta-ingest beside ingest (without it, prints how to build that binary)
.PHONY: bench-peers
bench-peers: install
	KDI="$(KDI)" scripts/bench-peers.sh

## compose-test: build every image and run deploy/compose's stack for real (starts dockerd if needed;
## the base image, compose v2 and Jaeger binaries are cached under $PLANTLAKE_CACHE)
COMPOSE_TEST_TIMEOUT ?= 60m
compose-test:
	cd deploy/compose && go test -tags compose -count=1 -timeout $(COMPOSE_TEST_TIMEOUT) -run TestComposeStack -v .
