// Package chaos is plantlake's chaos run: the whole stack as processes, the
// simulator publishing into it, and a seeded schedule that kills every
// service with SIGKILL, stops and starts Kafka and restarts Mosquitto with
// SIGTERM while readings flow. Once the pipeline has drained, the tables
// are read back with delta-rs and compared with the simulator's ledger:
// gold must equal the expected readings exactly, the dead letters must hold
// exactly the broken readings, and raw must hold every published message
// with each (topic, partition, offset) once.
package chaos
