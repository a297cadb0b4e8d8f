// Package mqttconn is a network connection for paho MQTT clients that
// buffers reads and gathers writes.
//
// paho reads every packet with at least three read system calls (type byte,
// length bytes, body) and writes every packet with one write. At thousands of
// packets a second those calls are most of a client's CPU. A Conn buffers the
// reads and coalesces the writes: its flusher gathers small writes for
// GatherDelay, then writes them with one call. The bridge (acknowledgements)
// and the simulator (publishes) both use it through Open.
//
// A subscriber may also take the PUBLISH packets of QoS 0 and 1 from it
// directly (Options.OnPublish; paho sees the other packets), write their
// PUBACKs beside paho's own packets (WritePubacks), and let it judge the
// connection's liveness (Options.MaxSilence) instead of paho's ping
// timeout, which sees none of that traffic.
package mqttconn

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// maxPendingWrite bounds the bytes waiting to be written; Write blocks
// beyond it, which holds paho's writer as a slow socket would.
const maxPendingWrite = 1 << 20

// GatherDelay is how long the flusher lets small writes gather before it
// writes them. The bridge's acks come in bursts (one Kafka delivery report
// settles a whole batch) but reach paho's writer one by one, and a
// publisher's packets come one by one; without the pause most writes would
// carry one packet. 200 µs is nothing next to a Kafka round trip, and
// small beside the broker's own queueing.
const GatherDelay = 200 * time.Microsecond

// WriteStall bounds one socket write of the flusher. A broker that takes
// no bytes for this long is treated as gone: the write fails, every Write
// returns the error and the connection is closed, so that paho's writer,
// its keep-alive and the acknowledgements queued behind them fail and paho
// reconnects. Without it a broker that stopped reading (one busy saving a
// deep backlog's database for seconds at a time) blocked the flusher for
// good, Write waited on it with paho's writer and keep-alive behind, and
// the client never reconnected.
const WriteStall = 20 * time.Second

// gatherBelow is the pending size under which the flusher waits
// GatherDelay; a larger batch is written at once.
const gatherBelow = 16 << 10

// Conn wraps a connection for paho. Create it with New or Open.
type Conn struct {
	net.Conn
	r *bufio.Reader

	mu      sync.Mutex
	cond    *sync.Cond // signalled when pending is taken or err is set
	pending []byte
	err     error // first write error; later writes return it
	closing bool
	kick    chan struct{}
	done    chan struct{} // closed when the flusher has exited
	stall   time.Duration // Options.Stall, else WriteStall

	// head collects the first bytes read, the broker's CONNACK, until
	// onConnack has been told its session-present flag.
	head      [4]byte
	headN     int
	onConnack func(sessionPresent bool)
	// readAt, when not nil, is set to the time (unix nanos) of every read
	// that reached the socket (a watchdog reads it).
	readAt *atomic.Int64
	// hold, when not nil, says the client holds as many packets as it may:
	// Read then waits before it reads the socket.
	hold func() bool
	// onPublish, when not nil, takes the QoS 0 and 1 PUBLISH packets
	// (publish.go); out holds the bytes of the packet Read passes to paho
	// next, in outBuf.
	onPublish func(Publish)
	out       []byte
	outBuf    []byte

	// Liveness (Options.MaxSilence): socketRead and heldAt are the unix
	// nanos of the last socket read (or of New) and of the last look at a
	// hold; silenceCheck runs checkSilence (under mu).
	maxSilence   time.Duration
	socketRead   atomic.Int64
	heldAt       atomic.Int64
	silenceCheck *time.Timer
}

// holdPoll is how often a held Read looks again.
const holdPoll = 2 * time.Millisecond

// Options are a Conn's optional behaviours; the zero value is plain
// buffering and gathering.
type Options struct {
	// OnConnack, when not nil, is told the session-present flag of the
	// connection's CONNACK before paho reads it (paho keeps the flag of
	// its first connection only).
	OnConnack func(sessionPresent bool)
	// ReadAt, when not nil, is set to the time (unix nanos) of every read
	// that reached the socket, and of the dial: a watchdog reads it.
	ReadAt *atomic.Int64
	// Hold, when not nil, holds reads while it returns true: the broker's
	// bytes stay in the socket, TCP's window stops the broker, and what it
	// would send waits in its session.
	Hold func() bool
	// Stall bounds one socket write (WriteStall when zero).
	Stall time.Duration
	// MaxSilence, when positive, makes the Conn judge liveness: when the
	// broker has sent nothing for MaxSilence, not counting time the reads
	// were held, the connection fails and paho reconnects. Set it above
	// keep-alive plus a ping timeout: paho pings after a keep-alive
	// without traffic, and the answer is traffic. A client that writes its
	// PUBACKs with WritePubacks sets it and gives paho a ping timeout that
	// never ends: paho sees none of those writes, so it pings every
	// keep-alive, and its ping timeout would drop a connection whose
	// PINGRESP waits behind held reads or a deep backlog.
	MaxSilence time.Duration
	// OnPublish, when not nil, is given every PUBLISH packet of QoS 0 or 1
	// the broker sends, and paho never sees them: paho's reader calls it,
	// one packet after another, from its Read. paho's inbound path (a
	// packet decoded, then two channel hops through its comms and router
	// goroutines before the handler) costs a fifth of a busy subscriber's
	// CPU. The client acknowledges QoS 1 packets itself (Publish.Ack or
	// WritePubacks) and sets MaxSilence: paho's keep-alive sees no
	// traffic. OnPublish must not block: while it runs, nothing is read.
	// QoS 2 packets, and every other packet, still go to paho.
	OnPublish func(Publish)
}

// New wraps c and starts the flusher goroutine, which Close stops.
func New(c net.Conn, o Options) *Conn {
	stall := o.Stall
	if stall <= 0 {
		stall = WriteStall
	}
	bc := &Conn{
		Conn:      c,
		onPublish: o.OnPublish,
		kick:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		stall:     stall,
		onConnack: o.OnConnack,
		readAt:    o.ReadAt,
		hold:      o.Hold,

		maxSilence: o.MaxSilence,
	}
	bc.r = bufio.NewReaderSize(socket{bc}, 64<<10)
	bc.cond = sync.NewCond(&bc.mu)
	if bc.maxSilence > 0 {
		bc.socketRead.Store(time.Now().UnixNano())
		bc.mu.Lock()
		bc.silenceCheck = time.AfterFunc(bc.maxSilence/4, bc.checkSilence)
		bc.mu.Unlock()
	}
	go bc.flusher() // owner: bc; Close waits for it
	return bc
}

// Read reads through the buffer; paho reads from one goroutine only. With
// Options.OnPublish it reads whole packets, hands QoS 0 and 1 PUBLISH
// packets to OnPublish on the calling goroutine and returns only the others
// to paho.
func (c *Conn) Read(p []byte) (int, error) {
	var n int
	var err error
	if c.onPublish == nil {
		n, err = c.r.Read(p)
	} else {
		for len(c.out) == 0 && err == nil {
			err = c.nextPacket()
		}
		n = copy(p, c.out)
		c.out = c.out[n:]
	}
	if err != nil {
		err = c.ownError(err)
	}
	if c.onConnack != nil {
		c.sniffConnack(p[:n])
	}
	return n, err
}

// ownError returns the connection's own failure, if it has one, in place
// of err, the "use of closed network connection" of the socket it closed:
// paho takes that text for a close of its own and would never report the
// connection lost.
func (c *Conn) ownError(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	return err
}

// socket reads the network connection for the buffer: it waits first while
// the reads are held (Options.Hold; whether the buffer is empty between
// packets or in the middle of one), and stamps every read that brings bytes
// (Options.ReadAt, Options.MaxSilence).
type socket struct{ c *Conn }

func (s socket) Read(p []byte) (int, error) {
	if s.c.hold != nil {
		s.c.waitWhileHeld()
	}
	n, err := s.c.Conn.Read(p)
	if n > 0 && (s.c.readAt != nil || s.c.maxSilence > 0) {
		now := time.Now().UnixNano()
		s.c.socketRead.Store(now)
		if s.c.readAt != nil {
			s.c.readAt.Store(now)
		}
	}
	return n, err
}

// waitWhileHeld waits while hold says so: the broker's bytes stay in the
// socket, TCP's window stops the broker, and what it would send waits in its
// session. The wait ends when the connection closes (paho
// gives up on a ping the wait kept it from reading, and reconnects). It
// keeps readAt current: the silence is the client's choice, not a stuck
// client's.
func (c *Conn) waitWhileHeld() {
	for c.hold() {
		c.mu.Lock()
		closed := c.closing || c.err != nil
		c.mu.Unlock()
		if closed {
			return
		}
		now := time.Now().UnixNano()
		c.heldAt.Store(now)
		if c.readAt != nil {
			c.readAt.Store(now)
		}
		time.Sleep(holdPoll)
	}
}

// sniffConnack passes the session-present flag of the CONNACK, the first
// packet a broker sends (fixed header 0x20 0x02, then the acknowledge flags
// whose bit 0 is session present, then the return code), to onConnack.
// paho reads the CONNACK during its handshake and does not keep the flag
// for reconnects; a client that resumes sessions needs it on every
// connection.
func (c *Conn) sniffConnack(p []byte) {
	if c.headN == len(c.head) {
		return
	}
	c.headN += copy(c.head[c.headN:], p)
	if c.headN < len(c.head) {
		return
	}
	if c.head[0] == 0x20 && c.head[1] == 0x02 && c.head[3] == 0 {
		c.onConnack(c.head[2]&1 == 1)
	}
}

// Write queues p for the flusher and returns; an earlier write error is
// returned instead, so paho notices a broken connection.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	for c.err == nil && !c.closing && len(c.pending) >= maxPendingWrite {
		c.cond.Wait()
	}
	switch {
	case c.err != nil:
		err := c.err
		c.mu.Unlock()
		return 0, err
	case c.closing:
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	c.pending = append(c.pending, p...)
	c.kickLocked()
	c.mu.Unlock()
	return len(p), nil
}

// kickLocked wakes the flusher for the pending bytes; c.mu must be held
// (so that Close cannot close kick in between).
func (c *Conn) kickLocked() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// WritePubacks queues a PUBACK for each QoS 1 packet id, in order, beside
// paho's own packets: every packet paho writes is one Write call, and both
// append whole packets under the same lock. It bypasses paho's ack path (a
// packet built, a store key formatted with fmt and a channel send to paho's
// writer goroutine per message). On a failed or closing connection the
// PUBACKs are dropped: the broker redelivers those messages on the next
// connection. It never blocks: the broker's in-flight window bounds what it
// can queue.
func (c *Conn) WritePubacks(ids ...uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil || c.closing {
		return
	}
	for _, id := range ids {
		c.pending = append(c.pending, 0x40, 0x02, byte(id>>8), byte(id))
	}
	c.kickLocked()
}

// checkSilence runs every quarter of MaxSilence: it fails the connection
// when the broker has sent nothing for MaxSilence of reads that were not
// held.
func (c *Conn) checkSilence() {
	last := max(c.socketRead.Load(), c.heldAt.Load())
	silent := time.Since(time.Unix(0, last))
	if silent > c.maxSilence && (c.hold == nil || !c.hold()) {
		c.fail(fmt.Errorf("%w: nothing from the MQTT broker for %s", ErrSilent, silent.Round(time.Millisecond)))
		return
	}
	c.mu.Lock()
	if c.err == nil && !c.closing {
		c.silenceCheck.Reset(c.maxSilence / 4)
	}
	c.mu.Unlock()
}

// ErrSilent is the error of a connection whose broker sent nothing for
// Options.MaxSilence.
var ErrSilent = errors.New("MQTT broker silent")

// fail records err as the connection's error, if it has none, and closes
// the socket: paho's reader fails too, and paho reconnects.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.cond.Broadcast()
	c.mu.Unlock()
	_ = c.Conn.Close()
}

// flusher writes whatever is pending, one write per wake-up.
func (c *Conn) flusher() {
	defer close(c.done)
	var spare []byte
	for {
		_, open := <-c.kick
		if open {
			c.mu.Lock()
			small := len(c.pending) < gatherBelow
			c.mu.Unlock()
			if small {
				time.Sleep(GatherDelay)
			}
		}
		c.mu.Lock()
		batch := c.pending
		c.pending = spare[:0]
		c.cond.Broadcast()
		c.mu.Unlock()
		if len(batch) > 0 {
			if open {
				_ = c.Conn.SetWriteDeadline(time.Now().Add(c.stall))
			}
			if _, err := c.Conn.Write(batch); err != nil {
				c.fail(fmt.Errorf("write to the MQTT broker: %w", err))
			}
		}
		if !open {
			return
		}
		spare = batch
	}
}

// Close writes what is still pending (paho's DISCONNECT is usually the
// last packet), stops the flusher and closes the connection.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil
	}
	c.closing = true
	c.cond.Broadcast()
	close(c.kick) // the flusher writes the rest, then exits
	if c.silenceCheck != nil {
		c.silenceCheck.Stop()
	}
	c.mu.Unlock()
	_ = c.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	<-c.done
	if err := c.Conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// Open is paho's OpenConnectionFunc for the tcp and tls schemes (see
// Dialable), with o's options; use it as
//
//	opts.SetCustomOpenConnectionFn(func(u *url.URL, opts mqtt.ClientOptions) (net.Conn, error) {
//		return mqttconn.Open(u, opts, mqttconn.Options{})
//	})
func Open(uri *url.URL, opts mqtt.ClientOptions, o Options) (net.Conn, error) {
	dialer := opts.Dialer
	if dialer == nil {
		dialer = &net.Dialer{Timeout: 30 * time.Second}
	}
	var conn net.Conn
	var err error
	switch uri.Scheme {
	case "tcp", "mqtt":
		conn, err = dialer.Dial("tcp", uri.Host)
	case "ssl", "tls", "mqtts", "mqtt+ssl", "tcps":
		conn, err = tls.DialWithDialer(dialer, "tcp", uri.Host, opts.TLSConfig)
	default:
		return nil, fmt.Errorf("%w: scheme %q", ErrScheme, uri.Scheme)
	}
	if err != nil {
		return nil, fmt.Errorf("dial MQTT broker %s: %w", uri.Host, err)
	}
	if o.ReadAt != nil {
		o.ReadAt.Store(time.Now().UnixNano())
	}
	return New(conn, o), nil
}

// ErrScheme reports a scheme Open does not dial; paho's own dialer handles
// those (websockets).
var ErrScheme = errors.New("scheme not dialled by the batching connection")

// Dialable reports whether Open can dial broker (a broker URL as paho takes
// it); set Open as the client's connection function only then.
func Dialable(broker string) bool {
	u, err := url.Parse(broker)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "mqtt+ssl", "tcps":
		return true
	}
	return false
}
