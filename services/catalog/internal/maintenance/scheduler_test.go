package maintenance

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// TestSchedulerCoalesces checks that notifications arriving while a table's
// job runs lead to exactly one more run, that one table never runs twice at
// once, and that other tables run meanwhile.
func TestSchedulerCoalesces(t *testing.T) {
	var mu sync.Mutex
	runs := map[string]int{}
	active := map[string]bool{}
	release := make(chan struct{})
	started := make(chan string, 100)
	fn := func(ctx context.Context, table string) error {
		mu.Lock()
		if active[table] {
			t.Errorf("%s runs twice at once", table)
		}
		active[table] = true
		runs[table]++
		n := runs[table]
		mu.Unlock()
		started <- table
		if table == "a" && n == 1 {
			<-release
		}
		mu.Lock()
		active[table] = false
		mu.Unlock()
		return nil
	}
	s := NewScheduler(fn, 2, 0, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()

	s.Notify("a")
	if got := <-started; got != "a" {
		t.Fatalf("first run %q, want a", got)
	}
	for range 50 {
		s.Notify("a") // coalesced into one more run
	}
	s.Notify("b")
	if got := <-started; got != "b" {
		t.Fatalf("second run %q, want b while a is busy", got)
	}
	close(release)
	if got := <-started; got != "a" {
		t.Fatalf("third run %q, want a again", got)
	}
	select {
	case got := <-started:
		t.Fatalf("unexpected extra run of %s", got)
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if runs["a"] != 2 || runs["b"] != 1 {
		t.Fatalf("runs = %v, want a:2 b:1", runs)
	}
}
