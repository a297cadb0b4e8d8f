package ingester

import (
	"context"
	"errors"
	"fmt"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/plantlake/plantlake/services/ingest/internal/rawtable"
)

// ErrNotRunning is returned by control calls made when the engine's Run is
// not (or no longer) consuming.
var ErrNotRunning = errors.New("ingest engine is not running")

// control is a call from another goroutine, run by the Run goroutine
// between two polls.
type control struct {
	f     func() error
	reply chan error
}

func (c control) run(e *Engine) { c.reply <- c.f() }

// do runs f on the Run goroutine and waits for its result.
func (e *Engine) do(ctx context.Context, f func() error) error {
	c := control{f: f, reply: make(chan error, 1)}
	select {
	case e.controls <- c:
	case <-e.done:
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-c.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Pause stops fetching from every assigned partition (and from partitions
// assigned later) until Resume. The batch in flight is still committed when
// it reaches its age.
func (e *Engine) Pause(ctx context.Context) error {
	return e.do(ctx, func() error {
		e.paused = true
		if err := e.consumer.Pause(e.activeParts()); err != nil {
			return fmt.Errorf("pause partitions: %w", err)
		}
		e.log.Info("paused")
		e.refreshStatus()
		return nil
	})
}

// Resume undoes Pause.
func (e *Engine) Resume(ctx context.Context) error {
	return e.do(ctx, func() error {
		e.paused = false
		if err := e.consumer.Resume(e.activeParts()); err != nil {
			return fmt.Errorf("resume partitions: %w", err)
		}
		e.log.Info("resumed")
		e.refreshStatus()
		return nil
	})
}

// TriggerCommit closes the batch now and commits it. It returns the commit
// (zero Version and Rows when the batch was empty) or the commit's error,
// after which the engine has re-read its positions.
func (e *Engine) TriggerCommit(ctx context.Context) (rawtable.Committed, int, error) {
	var res rawtable.Committed
	var rows int
	err := e.do(ctx, func() error {
		rows = e.builder.Rows()
		var err error
		res, err = e.ackOrReposition(e.runCtx, "trigger")
		return err
	})
	if err != nil {
		return rawtable.Committed{}, 0, err
	}
	return res, rows, nil
}

// activeParts are the assigned partitions that are not finished (run-once).
func (e *Engine) activeParts() []kafka.TopicPartition {
	var out []kafka.TopicPartition
	for _, ps := range e.sortedParts() {
		if !ps.done {
			out = append(out, kafka.TopicPartition{Topic: &ps.key.topic, Partition: ps.key.partition})
		}
	}
	return out
}
