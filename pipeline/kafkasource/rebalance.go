package kafkasource

import (
	"context"
	"fmt"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// rebalance is the consumer's rebalance callback; librdkafka calls it from
// Poll (and Close) on the runner's goroutine. It always assigns or
// unassigns itself: the library's default would start from the group's
// committed offsets, which exactly-once never trusts.
func (s *Source) rebalance(c *kafka.Consumer, ev kafka.Event) error {
	switch ev := ev.(type) {
	case kafka.AssignedPartitions:
		s.metrics.rebalances.WithLabelValues("assigned").Inc()
		if err := s.onAssigned(c, ev.Partitions); err != nil {
			s.fatal = err
			if aerr := c.Assign(nil); aerr != nil {
				s.log.Error("assign nothing after failing to read offsets", "err", aerr)
			}
		}
	case kafka.RevokedPartitions:
		s.metrics.rebalances.WithLabelValues("revoked").Inc()
		s.onRevoked(c)
	}
	return nil
}

// onAssigned reads every newly assigned partition's offset from the table
// and assigns it from the offset after that.
func (s *Source) onAssigned(c *kafka.Consumer, tps []kafka.TopicPartition) error {
	ctx := s.runCtx
	// Nothing should be left after a revocation; never carry rows across.
	s.host.DropBatch()
	clear(s.parts)
	appIDs := make([]string, 0, len(tps))
	for _, tp := range tps {
		key := partKey{*tp.Topic, tp.Partition}
		ps := &partState{key: key, appID: s.cfg.AppID(key.topic, key.partition), batchLast: -1, lastVersion: -1}
		s.parts[key] = ps
		appIDs = append(appIDs, ps.appID)
	}
	pos, err := s.host.ReadPositions(ctx, appIDs)
	if err != nil {
		return fmt.Errorf("on assignment of %d partitions: %w", len(tps), err)
	}
	assign := make([]kafka.TopicPartition, 0, len(tps))
	var pause []kafka.TopicPartition
	for _, ps := range s.sortedParts() {
		tp := s.applyPosition(ps, pos)
		assign = append(assign, tp)
		if s.paused || (s.cfg.RunOnce && ps.done) {
			pause = append(pause, tp)
		}
		s.log.Info("partition assigned", "topic", ps.key.topic, "partition", ps.key.partition,
			"offset_in_table", formatOffset(ps.tableOffset), "table_version", pos.ReadVersion)
	}
	if err := c.Assign(assign); err != nil {
		return fmt.Errorf("assign %d partitions: %w", len(assign), err)
	}
	if len(pause) > 0 {
		if err := c.Pause(pause); err != nil {
			return fmt.Errorf("pause %d partitions: %w", len(pause), err)
		}
	}
	s.assigned = true
	s.Refresh()
	return nil
}

// onRevoked commits the batch (safe even if a partition has moved already:
// the commit reads the partitions' app ids, so it aborts rather than
// duplicates) unless the assignment was lost, then gives up every partition.
func (s *Source) onRevoked(c *kafka.Consumer) {
	if c.AssignmentLost() {
		// DropBatch finishes the commit in flight, which is safe: it aborts
		// if a new owner committed the partitions already.
		s.log.Warn("assignment lost; dropping the batch")
	} else if err := s.host.CommitNow(s.runCtx, "revoke"); err != nil {
		s.log.Info("batch of revoked partitions not committed; the next owner reads them again", "err", err)
	}
	s.host.DropBatch()
	if err := c.Unassign(); err != nil {
		s.log.Error("unassign", "err", err)
	}
	for _, ps := range s.parts {
		s.log.Info("partition revoked", "topic", ps.key.topic, "partition", ps.key.partition, "offset_in_table", formatOffset(ps.tableOffset))
	}
	clear(s.parts)
	s.Refresh()
}

// endOffsets returns the high watermark of every partition of topics.
func endOffsets(ctx context.Context, c *kafka.Consumer, topics []string) (map[partKey]int64, error) {
	out := map[partKey]int64{}
	for _, t := range topics {
		md, err := c.GetMetadata(&t, false, 10000)
		if err != nil {
			return nil, fmt.Errorf("metadata of %s: %w", t, err)
		}
		for _, p := range md.Topics[t].Partitions {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			_, high, err := c.QueryWatermarkOffsets(t, p.ID, 10000)
			if err != nil {
				return nil, fmt.Errorf("end offset of %s/%d: %w", t, p.ID, err)
			}
			out[partKey{t, p.ID}] = high
		}
	}
	return out, nil
}
