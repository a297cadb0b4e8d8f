package rawtable

import (
	"math"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// The memory behind a Builder's columns.
//
// A Builder appends into plain Go slices and, at Flush, wraps them as the
// buffers of the batch's Arrow arrays without copying. The memory is reused
// for a later batch, but only once every buffer of the earlier batch has been
// released: each buffer is made with memory.NewBufferWithAllocator and a
// recycler as its allocator, and arrow-go calls the recycler's Free when the
// buffer's reference count reaches zero (when the record, the arrays and
// every slice of them that retained it have been released). The last Free of
// a batch hands its columns back to the Builder's pool, from which the next
// batch takes them, already grown to the size batches have.

// Pool bounds: the pool keeps at most maxPooled column sets of at most
// maxPooledBytes together; what does not fit goes back to the allocator (for
// Go's allocator: to the garbage collector). In steady state a Builder has
// one set being built, one or two being encoded and at most one in the pool;
// the second slot serves the moment two ingest_dates are open at midnight.
const (
	maxPooled      = 2
	maxPooledBytes = 64 << 20
)

// pool keeps the column sets of released batches for the Builder's next
// batches. Its methods are safe for concurrent use: batches are released on
// other goroutines than the Builder's.
type pool struct {
	mem    memory.Allocator
	mu     sync.Mutex
	free   []*columns
	bytes  int
	closed bool
}

// get returns an empty column set, a pooled one if there is one.
func (p *pool) get() *columns {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		c := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		p.bytes -= c.capBytes()
		p.mu.Unlock()
		c.reset()
		return c
	}
	p.mu.Unlock()
	c := &columns{mem: p.mem, pool: p}
	c.reset()
	return c
}

// put takes back c, whose memory no batch uses any more, or frees it if the
// pool is full or closed.
func (p *pool) put(c *columns) {
	size := c.capBytes()
	p.mu.Lock()
	if !p.closed && len(p.free) < maxPooled && p.bytes+size <= maxPooledBytes {
		p.free = append(p.free, c)
		p.bytes += size
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	c.freeMemory()
}

// close frees the pooled sets; sets put later are freed at once.
func (p *pool) close() {
	p.mu.Lock()
	free := p.free
	p.free, p.bytes, p.closed = nil, 0, true
	p.mu.Unlock()
	for _, c := range free {
		c.freeMemory()
	}
}

// recycler is the memory.Allocator of one buffer of a flushed batch. Its Free,
// which arrow-go calls when the buffer's reference count reaches zero, drops
// the buffer's reference to its column set; the memory itself is not freed but
// reused once the whole set is unreferenced.
//
// The buffers of a flushed batch are read-only: Allocate and Reallocate,
// which arrow-go calls only to grow or shrink a buffer in place, panic.
type recycler struct {
	c     *columns
	freed atomic.Bool
}

// Allocate panics: a flushed batch's buffers never grow.
func (r *recycler) Allocate(int) []byte {
	panic("rawtable: the buffers of a flushed batch are read-only")
}

// Reallocate panics: a flushed batch's buffers never grow.
func (r *recycler) Reallocate(int, []byte) []byte {
	panic("rawtable: the buffers of a flushed batch are read-only")
}

// Free drops the buffer's reference to its column set, once however often
// arrow-go calls it.
func (r *recycler) Free([]byte) {
	if r.freed.CompareAndSwap(false, true) {
		r.c.unref()
	}
}

// element is what the columns hold.
type element interface{ byte | int32 | int64 }

// grow returns s with room for at least extra more elements, its contents
// kept, its memory from mem. The old memory goes back to mem (mem.Reallocate).
// Capacity doubles up to 1 MiB and then grows by a quarter, which keeps the
// slack of a reused set small; a set keeps its capacity across batches, so
// growth stops after the first few.
func grow[T element](mem memory.Allocator, s []T, extra int) []T {
	var zero T
	size := int(unsafe.Sizeof(zero))
	need := (len(s) + extra) * size
	if need > math.MaxInt32 {
		// Arrow's 32-bit offsets cannot address more; batches close at 16 MiB.
		panic("rawtable: a column of one batch exceeds 2 GiB")
	}
	old := cap(s) * size
	n := old * 2
	if old >= 1<<20 {
		n = old + old/4
	}
	n = max(n, need, 64)
	n = (n + 63) &^ 63
	var b []byte
	if old == 0 {
		b = mem.Allocate(n)
	} else {
		b = mem.Reallocate(n, bytesOf(s[:cap(s)]))
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/size)[:len(s)]
}

// bytesOf is the memory of s as bytes.
func bytesOf[T element](s []T) []byte {
	if cap(s) == 0 {
		return nil
	}
	var zero T
	size := int(unsafe.Sizeof(zero))
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*size)
}

// release gives s's memory back to mem.
func release[T element](mem memory.Allocator, s []T) {
	if cap(s) > 0 {
		mem.Free(bytesOf(s[:cap(s)]))
	}
}

// appendData appends src to dst, growing dst from mem if it has no room.
func appendData[S string | []byte](mem memory.Allocator, dst []byte, src S) []byte {
	if len(src) > cap(dst)-len(dst) {
		dst = grow(mem, dst, len(src))
	}
	return append(dst, src...)
}
