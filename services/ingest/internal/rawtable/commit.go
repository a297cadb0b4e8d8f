package rawtable

import (
	"errors"
	"strconv"
)

// ErrAborted is returned (wrapped) by a commit that lost a race: since the
// version it read, another writer stored a txn for one of the app ids it
// read, so another worker owns one of its Kafka partitions. Its batch must be
// dropped and the partitions re-read from the table.
var ErrAborted = errors.New("raw table commit aborted by a concurrent writer")

// AppID is the txn application id under which the raw table stores the last
// Kafka offset written from topic's partition.
func AppID(topic string, partition int32) string {
	return "ingest/" + topic + "/" + strconv.FormatInt(int64(partition), 10)
}

// Txn records that every offset of a Kafka partition up to and including
// Offset is in the table.
type Txn struct {
	AppID  string
	Offset int64
}

// Positions is what the table holds for a set of app ids.
type Positions struct {
	// Offsets maps each app id that has a txn to its last offset; an app id
	// without one is absent.
	Offsets map[string]int64
	// Version is a table version at which every offset in Offsets is
	// current; commits that read these app ids pass it as ReadVersion.
	Version int64
}

// Commit is one atomic append to the raw table.
type Commit struct {
	// ReadVersion is the table version the writer's knowledge of the
	// ReadAppIDs' offsets is current at.
	ReadVersion int64
	// ReadAppIDs are the app ids whose offsets the writer relied on; a txn
	// for any of them committed after ReadVersion aborts this commit.
	ReadAppIDs []string
	// Txns are the new offsets, one per Kafka partition in the batch.
	Txns []Txn
	// Batches are the rows, one batch (and so one file) per ingest_date.
	Batches []Batch
	// Rows is the number of rows in Batches.
	Rows int
}

// Committed describes a successful commit.
type Committed struct {
	Version int64
	Files   int
	Bytes   int64
}
