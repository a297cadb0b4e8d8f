package grpcserver

import (
	"context"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the proto codec that gatedCodec wraps
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
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

// decodeGate bounds the memory of large requests in flight: one request of
// the largest size, or a few smaller ones, is decoded and handled at a
// time, and the others wait before they are decoded (a 14 MB commit of
// 230,000 adds takes about 150 MB once decoded; three at once took the
// catalog to 414–533 MiB). Requests under the threshold pass freely. The
// weight is taken when the codec decodes a request and given back when the
// unary handler returns, or right after a stream's RecvMsg: the decoded
// message is the key that joins the two.
type decodeGate struct {
	threshold, capacity int64
	sem                 *semaphore.Weighted
	held                sync.Map // request message → its weight
	// ctx ends when a shutdown gives up waiting: requests still waiting
	// for the gate then fail instead of holding the shutdown up.
	ctx   context.Context
	close context.CancelFunc
}

func newDecodeGate(threshold, capacity int64) *decodeGate {
	if threshold <= 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	capacity = max(capacity, threshold)
	return &decodeGate{threshold: threshold, capacity: capacity, sem: semaphore.NewWeighted(capacity), ctx: ctx, close: cancel}
}

// acquire waits until a request of n bytes may be decoded into v, and
// reports whether it took weight that release(v) must give back. It fails
// only after the gate was closed.
func (g *decodeGate) acquire(v any, n int) (bool, error) {
	if g == nil || int64(n) < g.threshold {
		return false, nil
	}
	w := min(int64(n), g.capacity)
	if err := g.sem.Acquire(g.ctx, w); err != nil {
		return false, status.Error(codes.Unavailable, "server shutting down")
	}
	g.held.Store(v, w)
	return true, nil
}

// release gives back the weight taken for v, if any.
func (g *decodeGate) release(v any) {
	if g == nil || v == nil {
		return
	}
	if w, ok := g.held.LoadAndDelete(v); ok {
		g.sem.Release(w.(int64))
	}
}

// shutDown fails the requests waiting for the gate, and later ones.
func (g *decodeGate) shutDown() {
	if g != nil {
		g.close()
	}
}

// gatedCodec is the proto codec with the decode gate in front.
type gatedCodec struct {
	encoding.CodecV2
	gate *decodeGate
}

// Unmarshal decodes data into v once the gate lets it.
func (c gatedCodec) Unmarshal(data mem.BufferSlice, v any) error {
	held, err := c.gate.acquire(v, data.Len())
	if err != nil {
		return err
	}
	err = c.CodecV2.Unmarshal(data, v)
	if err != nil && held {
		c.gate.release(v)
	}
	return err
}
