package tablesource

import (
	"context"
	"testing"
)

// BenchmarkEmptyPoll measures what one poll costs when nothing is new: one
// GetChanges round trip to a catalog process that answers from memory. It
// decides DefaultPollInterval (docs/decisions.md).
func BenchmarkEmptyPoll(b *testing.B) {
	e := newEnv(b, false)
	v := e.write(1)
	f := plainFollower(b, e, Config{})
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		batch, err := f.collect(ctx, v)
		if err != nil || !batch.Empty() {
			b.Fatalf("poll: %v %v", versionsOf(batch), err)
		}
	}
}
