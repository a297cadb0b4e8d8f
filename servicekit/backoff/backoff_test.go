package backoff

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestRetrySucceedsAfterFailures(t *testing.T) {
	calls, seen := 0, 0
	err := Retry(context.Background(), Policy{Initial: time.Millisecond, Max: 2 * time.Millisecond}, quiet, "op",
		func(error) { seen++ },
		func(context.Context) error {
			calls++
			if calls < 4 {
				return errors.New("not yet")
			}
			return nil
		})
	if err != nil || calls != 4 || seen != 3 {
		t.Fatalf("err %v, calls %d, errors seen %d; want nil, 4, 3", err, calls, seen)
	}
}

func TestRetryStopsOnPermanent(t *testing.T) {
	base := errors.New("bad config")
	calls := 0
	err := Retry(context.Background(), Default, quiet, "open", nil, func(context.Context) error {
		calls++
		return Permanent(base)
	})
	if calls != 1 || !errors.Is(err, base) || !errors.Is(err, ErrPermanent) {
		t.Fatalf("calls %d, err %v; want 1 call and the permanent error", calls, err)
	}
}

func TestRetryEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	last := errors.New("unreachable")
	err := Retry(ctx, Policy{Initial: 5 * time.Millisecond, Max: 10 * time.Millisecond}, quiet, "dial", nil,
		func(context.Context) error { return last })
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, last) {
		t.Fatalf("err %v; want it to wrap both the deadline and the last error", err)
	}
}
