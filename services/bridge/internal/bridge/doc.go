// Package bridge forwards MQTT readings to Kafka at least once.
//
// A [Bridge] holds a persistent MQTT session (fixed client id, clean session
// off, manual acks) and an idempotent Kafka producer (acks=all). Each reading
// travels this way:
//
//	MQTT reader (mqttconn) ──► inbox ──► pump: map + Produce (gathering while deep)
//	                                                         │
//	MQTT PUBACK ◄── settle (ack.go) ◄── delivery report ◄────┘
//
// The PUBACK for a reading is sent in exactly one place, [Bridge.settle], and
// only when Kafka's delivery report says the record is stored. A reading whose
// produce failed is produced again (or, if the MQTT connection it came on is
// gone, left for the broker to redeliver); it is never acknowledged without a
// stored record, so no component failure loses it. Duplicates are possible
// (at least once): downstream stages remove them.
//
// The MQTT connection (servicekit/mqttconn) reads PUBLISH packets itself and
// hands each to Bridge.accept on paho's reader goroutine, past paho's
// inbound path (on a websocket connection paho's router calls onMessage,
// which calls accept). accept never blocks: it appends the reading to the
// inbox, so the reads and paho's keep-alive never stop. The
// number of unacknowledged readings is bounded by the broker's
// max_inflight_messages for the session (acknowledgements go out in arrival
// order, order.go); beyond it Mosquitto queues readings in the session until
// the bridge acknowledges. Since Mosquitto 2.0.11 does not keep to that
// window when acknowledgements come in bursts, the bridge also stops reading
// the connection while it holds Config.MaxUnacked readings (servicekit/mqttconn's Hold).
//
// Batching adapts to load (gather.go): the producer's linger is short, and
// while many readings wait the pump gathers them before producing, so that
// batches grow when the machine is busy and stay small and quick when not.
//
// Acks do not cross reconnects (paho.mqtt.golang#505): every connection
// attempt starts a new generation, and a reading from an older generation is
// neither acknowledged nor produced again; the broker redelivers it on the
// new connection.
package bridge
