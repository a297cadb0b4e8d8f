package rawtable

import "strconv"

// AppID is the txn application id under which the raw table stores the last
// Kafka offset written from topic's partition.
func AppID(topic string, partition int32) string {
	return "ingest/" + topic + "/" + strconv.FormatInt(int64(partition), 10)
}
