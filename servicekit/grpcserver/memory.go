package grpcserver

import (
	"context"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/stats"
)

// DefaultReleaseAfterBytes is the request size from which the server hands
// the memory the call used back to the operating system when it ends
// (Options.ReleaseAfterBytes).
const DefaultReleaseAfterBytes = 4 << 20

// releaseEvery spaces the releases: each is a full garbage collection.
const releaseEvery = time.Second

// releaser returns freed memory to the operating system after big calls.
// Go keeps the heap it grew for a large request (a commit of 900,000 adds
// grew the catalog from 100 MB to 1.25 GB RSS, and it stayed there);
// debug.FreeOSMemory collects and returns it at once. It runs from the
// stats handler's End event, after the response was sent, at most once per
// releaseEvery; a call that ends while a release waits leaves it to that
// one, which runs after its memory became garbage.
type releaser struct {
	threshold int64

	mu      sync.Mutex
	pending bool

	run  sync.Mutex // one release at a time; guards last
	last time.Time
}

// requestBytes counts the bytes of the messages a call received.
type requestBytes struct{ n atomic.Int64 }

type requestBytesKey struct{}

// TagRPC implements stats.Handler: it gives the call a byte counter.
func (r *releaser) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, requestBytesKey{}, &requestBytes{})
}

// HandleRPC implements stats.Handler: it counts received bytes and
// releases memory when a big call ends.
func (r *releaser) HandleRPC(ctx context.Context, s stats.RPCStats) {
	rb, ok := ctx.Value(requestBytesKey{}).(*requestBytes)
	if !ok {
		return
	}
	switch s := s.(type) {
	case *stats.InPayload:
		rb.n.Add(int64(s.WireLength))
	case *stats.End:
		if r.threshold > 0 && rb.n.Load() >= r.threshold {
			r.release()
		}
	}
}

// TagConn implements stats.Handler.
func (r *releaser) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

// HandleConn implements stats.Handler.
func (r *releaser) HandleConn(context.Context, stats.ConnStats) {}

func (r *releaser) release() {
	r.mu.Lock()
	if r.pending {
		r.mu.Unlock()
		return
	}
	r.pending = true
	r.mu.Unlock()

	r.run.Lock()
	defer r.run.Unlock()
	if wait := releaseEvery - time.Since(r.last); wait > 0 {
		time.Sleep(wait)
	}
	r.mu.Lock()
	r.pending = false
	r.mu.Unlock()
	debug.FreeOSMemory()
	r.last = time.Now()
}
