// Package devstack installs and runs the real brokers that plantlake's tests
// and `make up` run against: a single-node KRaft Apache Kafka built from Maven
// Central jars, Debian's Mosquitto, a Python virtual environment with
// deltalake and pyarrow for interoperability checks, and two object-store
// servers for the cloud storage tests: Azurite (npm) for Azure Blob and
// moto (PyPI) for S3.
//
// Installation is idempotent and safe when several test processes ask for it
// at once: each component installs under a file lock in the cache directory
// ($PLANTLAKE_CACHE, or $HOME/.cache/plantlake) and marks itself complete only
// when it is whole.
//
// Tests use [Kafka], [Mosquitto], [Python], [Azurite] and [Moto]; each server gets free loopback
// ports and a data directory from t.TempDir, and is stopped by t.Cleanup.
// Programs use [StartKafka] and [StartMosquitto], optionally as daemons that
// outlive the caller (see cmd/plantlake-dev).
//
// Brokers write their logs to files in their data directories, never to the
// test output; an error from a failed start carries the tail of the log.
//
// Kafka runs with automatic topic creation off: a topic exists only when
// someone creates it ([KafkaBroker.CreateTopics], [CreatePipelineTopics], or a
// service that finds its topic missing), as the design requires.
package devstack
