package app

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/plantlake/plantlake/services/ingest/internal/rawsink"
	"github.com/plantlake/plantlake/services/ingest/internal/rawtable"
)

// errTableNotOpen is returned by a lazySink used before the table is open.
var errTableNotOpen = errors.New("raw table not open yet")

// lazySink lets the engine be built before the catalog answers; the engine
// runs only after set.
type lazySink struct{ s atomic.Pointer[rawsink.Sink] }

func (l *lazySink) set(s *rawsink.Sink) { l.s.Store(s) }

func (l *lazySink) Positions(ctx context.Context, appIDs []string) (rawtable.Positions, error) {
	s := l.s.Load()
	if s == nil {
		return rawtable.Positions{}, errTableNotOpen
	}
	return s.Positions(ctx, appIDs)
}

func (l *lazySink) Commit(ctx context.Context, c rawtable.Commit) (rawtable.Committed, error) {
	s := l.s.Load()
	if s == nil {
		return rawtable.Committed{}, errTableNotOpen
	}
	return s.Commit(ctx, c)
}
