package bridge

import (
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// discardStore is paho's message store for the bridge: it keeps nothing.
//
// paho's default memory store records every inbound QoS 1 PUBLISH until its
// PUBACK is sent and every outbound SUBSCRIBE until its SUBACK, formatting
// a key and touching a map under a lock for each; that is a noticeable part
// of the CPU per reading. None of it is needed here: the broker, not paho,
// redelivers unacknowledged readings after a reconnect (paho discards
// stored inbound PUBLISHes on resume anyway), the bridge publishes nothing,
// and it subscribes again on every connection.
type discardStore struct{}

var _ mqtt.Store = discardStore{}

// Open does nothing.
func (discardStore) Open() {}

// Put forgets the packet.
func (discardStore) Put(string, packets.ControlPacket) {}

// Get finds nothing.
func (discardStore) Get(string) packets.ControlPacket { return nil }

// All lists nothing.
func (discardStore) All() []string { return nil }

// Del does nothing.
func (discardStore) Del(string) {}

// Close does nothing.
func (discardStore) Close() {}

// Reset does nothing.
func (discardStore) Reset() {}
