// Package pipeline is the machinery every plantlake hop that writes Delta
// tables shares (ingest, deserialize, merge): a runner that builds one batch
// while at most one commit is in flight, sources that hand out batches
// together with their acknowledgement (Kafka, a Delta table followed through
// the catalog), and a table sink that commits a batch's files to one or more
// target tables, each with its own txn position.
//
// The exactly-once rule is the same for every hop: the target table, not the
// source, records what has been processed (txn actions in the same Delta
// commit as the data). A batch is acknowledged to its source only after that
// commit succeeded; a commit that lost a race (Aborted) or whose outcome is
// unknown drops the batch, and the positions are read again from the targets.
package pipeline
