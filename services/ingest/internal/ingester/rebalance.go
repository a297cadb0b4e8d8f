package ingester

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/plantlake/plantlake/services/ingest/internal/rawtable"
)

// rebalance is the consumer's rebalance callback; librdkafka calls it from
// Poll (and Close) on the Run goroutine. It always assigns or unassigns
// itself: the library's default would start from the group's committed
// offsets, which exactly-once never trusts.
func (e *Engine) rebalance(c *kafka.Consumer, ev kafka.Event) error {
	switch ev := ev.(type) {
	case kafka.AssignedPartitions:
		e.metrics.rebalances.WithLabelValues("assigned").Inc()
		if err := e.onAssigned(c, ev.Partitions); err != nil {
			e.fatal = err
			if aerr := c.Assign(nil); aerr != nil {
				e.log.Error("assign nothing after failing to read offsets", "err", aerr)
			}
		}
	case kafka.RevokedPartitions:
		e.metrics.rebalances.WithLabelValues("revoked").Inc()
		e.onRevoked(c)
	}
	return nil
}

// onAssigned reads every newly assigned partition's offset from the table
// and assigns it from the offset after that.
func (e *Engine) onAssigned(c *kafka.Consumer, tps []kafka.TopicPartition) error {
	ctx := e.runCtx
	// Nothing should be left after a revocation; never carry rows across.
	if _, err := e.await(); err != nil {
		e.log.Info("commit in flight failed", "err", err)
	}
	e.dropBatch()
	clear(e.parts)
	appIDs := make([]string, 0, len(tps))
	for _, tp := range tps {
		key := partKey{*tp.Topic, tp.Partition}
		ps := &partState{key: key, appID: rawtable.AppID(key.topic, key.partition), batchLast: -1, lastVersion: -1}
		e.parts[key] = ps
		appIDs = append(appIDs, ps.appID)
	}
	pos, err := e.positions(ctx, appIDs)
	if err != nil {
		return fmt.Errorf("on assignment of %d partitions: %w", len(tps), err)
	}
	assign := make([]kafka.TopicPartition, 0, len(tps))
	var pause []kafka.TopicPartition
	for _, ps := range e.sortedParts() {
		tp := e.applyPosition(ps, pos)
		assign = append(assign, tp)
		if e.paused || (e.cfg.RunOnce && ps.done) {
			pause = append(pause, tp)
		}
		e.log.Info("partition assigned", "topic", ps.key.topic, "partition", ps.key.partition,
			"offset_in_table", formatOffset(ps.tableOffset), "table_version", pos.Version)
	}
	e.readVersion = pos.Version
	if err := c.Assign(assign); err != nil {
		return fmt.Errorf("assign %d partitions: %w", len(assign), err)
	}
	if len(pause) > 0 {
		if err := c.Pause(pause); err != nil {
			return fmt.Errorf("pause %d partitions: %w", len(pause), err)
		}
	}
	e.assigned = true
	e.refreshStatus()
	return nil
}

// onRevoked commits the batch in flight (safe even if a partition has
// moved already: the commit reads the partitions' app ids, so it aborts
// rather than duplicates) unless the assignment was lost, then gives up
// every partition.
func (e *Engine) onRevoked(c *kafka.Consumer) {
	if c.AssignmentLost() {
		// The commit in flight is safe to finish: it aborts if a new owner
		// committed the partitions already.
		if _, err := e.await(); err != nil {
			e.log.Info("commit in flight failed", "err", err)
		}
		e.log.Warn("assignment lost; dropping the batch", "rows", e.builder.Rows())
	} else if _, err := e.ack(e.runCtx, "revoke"); err != nil {
		e.log.Info("batch of revoked partitions not committed; the next owner reads them again", "err", err)
	}
	e.dropBatch()
	if err := c.Unassign(); err != nil {
		e.log.Error("unassign", "err", err)
	}
	for _, ps := range e.parts {
		e.log.Info("partition revoked", "topic", ps.key.topic, "partition", ps.key.partition, "offset_in_table", formatOffset(ps.tableOffset))
	}
	clear(e.parts)
	e.refreshStatus()
}

// ensureTopics creates the topics that do not exist yet, with the
// given partition count.
func ensureTopics(ctx context.Context, c *kafka.Consumer, topics []string, partitions int, log *slog.Logger) error {
	var specs []kafka.TopicSpecification
	for _, t := range topics {
		md, err := c.GetMetadata(&t, false, 10000)
		if err != nil {
			return fmt.Errorf("kafka metadata of %s: %w", t, err)
		}
		if tm, ok := md.Topics[t]; ok && tm.Error.Code() == kafka.ErrNoError && len(tm.Partitions) > 0 {
			continue
		}
		specs = append(specs, kafka.TopicSpecification{Topic: t, NumPartitions: partitions, ReplicationFactor: -1})
	}
	if len(specs) == 0 {
		return nil
	}
	admin, err := kafka.NewAdminClientFromConsumer(c)
	if err != nil {
		return fmt.Errorf("kafka admin client: %w", err)
	}
	defer admin.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := admin.CreateTopics(cctx, specs)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	for _, r := range res {
		switch r.Error.Code() {
		case kafka.ErrNoError:
			log.Info("created topic", "topic", r.Topic, "partitions", partitions)
		case kafka.ErrTopicAlreadyExists:
		default:
			return fmt.Errorf("create topic %s: %w", r.Topic, r.Error)
		}
	}
	return nil
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
