package bridge

import (
	"context"
	"time"
)

// Adaptive batching. librdkafka's linger.ms is fixed for a producer's life,
// and it sets the trade between Kafka's CPU per reading (bigger batches cost
// Kafka and librdkafka less per record, which is what counts when the
// machine is saturated) and the time from publish to Kafka (a reading waits
// up to linger.ms for its batch). So the producer's linger is short
// (Config.Linger) and the bridge lengthens batches itself when the queue is
// deep: once DeepQueue readings wait in the bridge, the pump lets readings
// gather in the inbox for DeepLinger before it produces them all at once, and
// the producer packs that burst into one batch per partition. At low rates
// the queue stays shallow, nothing is held, and a reading waits at most
// Linger. Holding readings in the bridge changes nothing for the ack: a
// reading is acknowledged only after its delivery report, whenever it was
// produced.

// depth is how many readings wait in the bridge: in the inbox, and produced
// but not yet stored.
func (b *Bridge) depth() int {
	return int(b.inFlight.Load()) + b.inbox.len()
}

// gather waits DeepLinger while the queue is deep, so that readings gather in
// the inbox; a pause change (wake), a fatal error or the end of ctx cut the
// wait short.
func (b *Bridge) gather(ctx context.Context, wake <-chan struct{}) error {
	if b.cfg.DeepLinger <= 0 || b.depth() < b.cfg.DeepQueue {
		return nil
	}
	b.gathered.Add(1)
	t := time.NewTimer(b.cfg.DeepLinger)
	defer t.Stop()
	select {
	case <-t.C:
	case <-wake:
	case <-ctx.Done():
		return ctx.Err()
	case err := <-b.fatal:
		return err
	}
	return nil
}
