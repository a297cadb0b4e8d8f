// Package catalogv1 holds the Go code generated from plantlake/catalog/v1/catalog.proto
// (package plantlake.catalog.v1): message types and the gRPC client and server
// of CatalogService, plus TableCommitEvent, the payload of the
// plantlake.table-commits Kafka topic.
// Regenerate with proto/generate.sh; only this file is hand-written.
package catalogv1
