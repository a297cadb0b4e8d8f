package devstack

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWithLockExcludes checks that install steps run one at a time: flock
// locks belong to open files, so goroutines that each open the lock file
// exclude each other just as separate test processes do.
func TestWithLockExcludes(t *testing.T) {
	t.Setenv("PLANTLAKE_CACHE", t.TempDir())
	var inside, maxInside, runs atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			err := withLock(context.Background(), "test", func(string) error {
				n := inside.Add(1)
				for {
					m := maxInside.Load()
					if n <= m || maxInside.CompareAndSwap(m, n) {
						break
					}
				}
				time.Sleep(20 * time.Millisecond)
				inside.Add(-1)
				runs.Add(1)
				return nil
			})
			if err != nil {
				t.Errorf("withLock: %v", err)
			}
		})
	}
	wg.Wait()
	if runs.Load() != 8 || maxInside.Load() != 1 {
		t.Errorf("runs = %d, most inside at once = %d; want 8 and 1", runs.Load(), maxInside.Load())
	}
}

// TestWithLockHonoursContext checks that a waiter gives up when its context ends.
func TestWithLockHonoursContext(t *testing.T) {
	t.Setenv("PLANTLAKE_CACHE", t.TempDir())
	held := make(chan struct{})
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = withLock(context.Background(), "test", func(string) error {
			close(held)
			<-release
			return nil
		})
	})
	<-held
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := withLock(ctx, "test", func(string) error { return nil })
	close(release)
	wg.Wait()
	if err == nil {
		t.Fatalf("withLock returned nil while the lock was held")
	}
}
