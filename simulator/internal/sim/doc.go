// Package sim simulates a plant's sensors: a Planner that turns a seed into
// the messages of a run (readings with drift, jitter and skewed clocks,
// duplicates, late readings and broken payloads), Run that publishes them
// to MQTT at a steady rate, and the ledger that says what each message
// should become downstream (a gold row or a dead letter).
package sim
