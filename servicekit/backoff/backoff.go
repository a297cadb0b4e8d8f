// Package backoff retries an operation with exponential backoff until it
// succeeds, fails permanently or its context ends: the one retry loop of
// every plantlake service that waits for a dependency (the catalog, Kafka).
package backoff

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Policy says how long to wait between attempts.
type Policy struct {
	// Initial is the first wait; each next one doubles up to Max.
	Initial time.Duration
	Max     time.Duration
}

// Default waits 100 ms, doubling up to 5 s.
var Default = Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second}

// ErrPermanent marks an error that retrying cannot fix: Retry returns it at
// once. Wrap with [Permanent].
var ErrPermanent = errors.New("permanent")

type permanent struct{ err error }

func (p permanent) Error() string        { return p.err.Error() }
func (p permanent) Unwrap() []error      { return []error{p.err, ErrPermanent} }
func (p permanent) Is(target error) bool { return target == ErrPermanent }

// Permanent wraps err so that Retry stops and returns it.
func Permanent(err error) error { return permanent{err} }

// Retry calls op until it returns nil or a [Permanent] error, or ctx ends.
// Each failure is logged at warn level with what and passed to onErr (may be
// nil), e.g. to put it in a status's last error. The error returned names
// what and wraps op's last error (and ctx's error when it ended the wait).
func Retry(ctx context.Context, p Policy, log *slog.Logger, what string, onErr func(error), op func(context.Context) error) error {
	wait := p.Initial
	if wait <= 0 {
		wait = Default.Initial
	}
	limit := p.Max
	if limit < wait {
		limit = wait
	}
	for {
		err := op(ctx)
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrPermanent) {
			return fmt.Errorf("%s: %w", what, err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if onErr != nil {
			onErr(err)
		}
		log.Warn(what+"; retrying", "err", err, "backoff", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w (last error: %w)", what, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, limit)
	}
}
