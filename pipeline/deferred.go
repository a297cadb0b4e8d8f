package pipeline

import (
	"context"
	"errors"
	"sync/atomic"
)

// ErrSinkNotOpen is returned by a Deferred sink used before Set.
var ErrSinkNotOpen = errors.New("target tables not open yet")

// Deferred is a sink that is set after the runner is built, so that a hop
// answers status calls (STARTING, with the reason in last_error) while it
// waits for the catalog to open its tables.
type Deferred[D any] struct{ s atomic.Pointer[Sink[D]] }

// Set makes s the sink; the runner must not run before.
func (d *Deferred[D]) Set(s Sink[D]) { d.s.Store(&s) }

// Positions reads the positions from the sink.
func (d *Deferred[D]) Positions(ctx context.Context, appIDs []string) (Positions, error) {
	s := d.s.Load()
	if s == nil {
		return Positions{}, ErrSinkNotOpen
	}
	return (*s).Positions(ctx, appIDs)
}

// Commit commits c to the sink.
func (d *Deferred[D]) Commit(ctx context.Context, c Commit[D]) (Committed, error) {
	s := d.s.Load()
	if s == nil {
		return Committed{}, ErrSinkNotOpen
	}
	return (*s).Commit(ctx, c)
}
