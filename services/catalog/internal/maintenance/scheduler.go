package maintenance

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Func does the maintenance a table is due for. It is never called for the
// same table twice at once.
type Func func(ctx context.Context, table string) error

// Scheduler runs Func for tables that were notified, coalescing
// notifications: however many commits notify a table while its maintenance
// waits or runs, it runs once more afterwards, not once per commit. It also
// notifies every table it has seen on a periodic tick, for time-based work
// such as vacuum.
type Scheduler struct {
	fn      Func
	log     *slog.Logger
	workers int
	tick    time.Duration

	mu      sync.Mutex
	known   map[string]bool
	pending map[string]bool // notified, not yet started
	running map[string]bool
	queue   []string // tables in pending, in notification order
	cond    *sync.Cond
	stopped bool
}

// NewScheduler returns a scheduler running at most workers maintenance jobs
// at once (the catalog runs few: maintenance must not starve commits) and
// re-notifying every known table each tick (0 turns the tick off).
func NewScheduler(fn Func, workers int, tick time.Duration, log *slog.Logger) *Scheduler {
	s := &Scheduler{
		fn: fn, log: log, workers: max(workers, 1), tick: tick,
		known: map[string]bool{}, pending: map[string]bool{}, running: map[string]bool{},
	}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// Notify asks for a maintenance run of table. It never blocks.
func (s *Scheduler) Notify(table string) {
	s.mu.Lock()
	s.known[table] = true
	if !s.pending[table] {
		s.pending[table] = true
		s.queue = append(s.queue, table)
	}
	s.mu.Unlock()
	s.cond.Broadcast()
}

// next waits for a pending table that is not running and takes it; false
// once the scheduler stopped.
func (s *Scheduler) next() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.stopped {
		for i, t := range s.queue {
			if s.running[t] {
				continue
			}
			s.queue = append(s.queue[:i:i], s.queue[i+1:]...)
			delete(s.pending, t)
			s.running[t] = true
			return t, true
		}
		s.cond.Wait()
	}
	return "", false
}

func (s *Scheduler) done(table string) {
	s.mu.Lock()
	delete(s.running, table)
	s.mu.Unlock()
	s.cond.Broadcast()
}

// Run serves notifications until ctx ends, then waits for the jobs in flight
// (which see ctx ended).
func (s *Scheduler) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	// Run returns only once ctx ended; this deferred call (run before
	// wg.Wait) wakes the idle workers so that they return. A
	// context.AfterFunc here raced: its stop, deferred, could cancel the
	// wake-up before it ran and leave Run waiting forever.
	defer func() {
		s.mu.Lock()
		s.stopped = true
		s.mu.Unlock()
		s.cond.Broadcast()
	}()
	for range s.workers {
		wg.Go(func() {
			for {
				t, ok := s.next()
				if !ok {
					return
				}
				if err := s.fn(ctx, t); err != nil && ctx.Err() == nil {
					s.log.Warn("table maintenance failed", "table", t, "err", err)
				}
				s.done(t)
			}
		})
	}
	if s.tick <= 0 {
		<-ctx.Done()
		return nil
	}
	tk := time.NewTicker(s.tick)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
			s.mu.Lock()
			tables := make([]string, 0, len(s.known))
			for t := range s.known {
				tables = append(tables, t)
			}
			s.mu.Unlock()
			for _, t := range tables {
				s.Notify(t)
			}
		}
	}
}
