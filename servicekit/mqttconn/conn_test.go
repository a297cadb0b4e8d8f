package mqttconn

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestConnKeepsOrderAndFlushesOnClose(t *testing.T) {
	client, server := tcpPair(t)
	bc := New(client, Options{})
	var want bytes.Buffer
	for i := range 10000 {
		p := []byte{0x40, 0x02, byte(i >> 8), byte(i)} // a PUBACK
		want.Write(p)
		if n, err := bc.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write %d: %d, %v", i, n, err)
		}
	}
	if err := bc.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got, err := io.ReadAll(server)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("peer got %d bytes, want %d, equal prefix %v", len(got), want.Len(), bytes.HasPrefix(want.Bytes(), got))
	}
	if _, err := bc.Write([]byte{1}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close = %v, want net.ErrClosed", err)
	}
}

func TestConnReportsWriteErrors(t *testing.T) {
	client, server := tcpPair(t)
	bc := New(client, Options{})
	defer bc.Close()
	server.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := bc.Write(make([]byte, 1024)); err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("writes to a closed peer kept succeeding")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestConnFailsOnAStalledPeer: a peer that takes no bytes (a broker
// busy elsewhere) fills the socket; after the stall bound, writes fail
// instead of blocking for good, the blocked Write returns and reads fail
// too, so that paho sees the connection lost and reconnects.
func TestConnFailsOnAStalledPeer(t *testing.T) {
	client, _ := tcpPair(t) // the server end is never read
	bc := New(client, Options{Stall: 300 * time.Millisecond})
	defer bc.Close()
	failed := make(chan error, 1)
	go func() {
		for {
			if _, err := bc.Write(make([]byte, 64<<10)); err != nil {
				failed <- err
				return
			}
		}
	}()
	select {
	case err := <-failed:
		t.Logf("Write failed: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("Write still blocked 20 s after the peer stopped reading")
	}
	if _, err := bc.Read(make([]byte, 1)); err == nil {
		t.Fatal("Read after the stall succeeded, want an error")
	}
}

func TestConnReads(t *testing.T) {
	client, server := tcpPair(t)
	bc := New(client, Options{})
	defer bc.Close()
	want := bytes.Repeat([]byte("0123456789"), 20000)
	go func() {
		for p := want; len(p) > 0; p = p[min(len(p), 777):] {
			_, _ = server.Write(p[:min(len(p), 777)])
		}
	}()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(bc, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("read bytes differ from those sent")
	}
}

func TestDialable(t *testing.T) {
	tests := []struct {
		broker string
		want   bool
	}{
		{"tcp://localhost:1883", true},
		{"mqtt://localhost:1883", true},
		{"ssl://broker:8883", true},
		{"ws://broker/mqtt", false},
		{"wss://broker/mqtt", false},
		{"::bad", false},
	}
	for _, tc := range tests {
		if got := Dialable(tc.broker); got != tc.want {
			t.Errorf("Dialable(%q) = %v, want %v", tc.broker, got, tc.want)
		}
	}
}

func TestSniffConnack(t *testing.T) {
	tests := []struct {
		name   string
		reads  [][]byte
		called bool
		want   bool
	}{
		{"session present", [][]byte{{0x20, 0x02, 0x01, 0x00}}, true, true},
		{"new session", [][]byte{{0x20, 0x02, 0x00, 0x00}}, true, false},
		{"split over reads as paho reads", [][]byte{{0x20}, {0x02}, {0x01, 0x00}}, true, true},
		{"refused connection", [][]byte{{0x20, 0x02, 0x00, 0x05}}, false, false},
		{"not a CONNACK", [][]byte{{0x30, 0x02, 0x01, 0x00}}, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var called, got bool
			c := &Conn{onConnack: func(sp bool) { called, got = true, sp }}
			for _, r := range tc.reads {
				c.sniffConnack(r)
			}
			c.sniffConnack([]byte{0x01, 0x01, 0x01, 0x01}) // later packets change nothing
			if called != tc.called || got != tc.want {
				t.Errorf("called %v with %v, want called %v with %v", called, got, tc.called, tc.want)
			}
		})
	}
}

// TestConnStampsSocketReads checks the read clock (a watchdog's) moves
// when bytes arrive from the socket and not when paho reads from the buffer.
func TestConnStampsSocketReads(t *testing.T) {
	client, server := tcpPair(t)
	var readAt atomic.Int64
	bc := New(client, Options{ReadAt: &readAt})
	defer bc.Close()
	if _, err := server.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 4)
	if _, err := io.ReadFull(bc, p); err != nil {
		t.Fatal(err)
	}
	first := readAt.Load()
	if first == 0 {
		t.Fatal("a read from the socket left the clock at zero")
	}
	readAt.Store(1)
	if _, err := io.ReadFull(bc, p); err != nil { // from the buffer
		t.Fatal(err)
	}
	if got := readAt.Load(); got != 1 {
		t.Fatalf("a read from the buffer moved the clock to %d", got)
	}
}

// PUBACKs written directly and packets written by paho share the
// connection: each arrives whole, in the order written, and PUBACKs
// written after Close are dropped.
func TestWritePubacksBesidePahoWrites(t *testing.T) {
	client, server := tcpPair(t)
	bc := New(client, Options{})
	ping := []byte{0xc0, 0x00} // PINGREQ
	var want bytes.Buffer
	for i := range 3000 {
		ids := []uint16{uint16(i*7 + 1), uint16(i*7 + 2), uint16(i * 7 >> 3)}
		bc.WritePubacks(ids[:1+i%3]...)
		for _, id := range ids[:1+i%3] {
			want.Write([]byte{0x40, 0x02, byte(id >> 8), byte(id)})
		}
		if i%100 == 0 {
			if _, err := bc.Write(ping); err != nil {
				t.Fatalf("Write: %v", err)
			}
			want.Write(ping)
		}
	}
	if err := bc.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	bc.WritePubacks(9) // after Close: dropped, no panic
	got, err := io.ReadAll(server)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("peer got %d bytes, want %d, equal prefix %v", len(got), want.Len(), bytes.HasPrefix(want.Bytes(), got))
	}
}

// drain reads c until it fails, discarding the bytes.
func drain(c net.Conn) { _, _ = io.Copy(io.Discard, c) }

// A broker that reads but sends nothing (a half-open connection, a
// stopped broker) fails the connection after MaxSilence: the pending Read
// and later Writes return errors, ErrSilent for the Writes.
func TestMaxSilenceFailsASilentBroker(t *testing.T) {
	client, server := tcpPair(t)
	go drain(server)
	start := time.Now()
	bc := New(client, Options{MaxSilence: 200 * time.Millisecond})
	defer bc.Close()
	if _, err := bc.Write([]byte{0xc0, 0x00}); err != nil { // a PINGREQ, never answered
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := bc.Read(make([]byte, 16))
		readErr <- err
	}()
	select {
	case err := <-readErr:
		if took := time.Since(start); took < 200*time.Millisecond {
			t.Fatalf("failed after %v, before MaxSilence", took)
		}
		// Not net.ErrClosed: paho ignores "use of closed network
		// connection" and would never report the connection lost.
		if !errors.Is(err, ErrSilent) {
			t.Fatalf("Read returned %v, want ErrSilent", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("connection still open 5 s into a silence with MaxSilence 200 ms")
	}
	if _, err := bc.Write([]byte{0xc0, 0x00}); !errors.Is(err, ErrSilent) {
		t.Fatalf("Write after the silence = %v, want ErrSilent", err)
	}
}

// Any bytes from the broker count (a PINGRESP may queue behind a stream of
// PUBLISHes): a PINGREQ followed by 600 ms of PUBLISHes and no PINGRESP
// leaves a connection with MaxSilence 150 ms up; without MaxSilence
// nothing is judged.
func TestMaxSilenceKeptByAnyBytes(t *testing.T) {
	for _, silence := range []time.Duration{0, 150 * time.Millisecond} {
		client, server := tcpPair(t)
		go drain(server)
		bc := New(client, Options{MaxSilence: silence})
		go func() {
			for i := 0; i < 12; i++ {
				time.Sleep(50 * time.Millisecond)
				_, _ = server.Write([]byte{0x30, 0x03, 0, 1, 'x'}) // a PUBLISH, no PINGRESP
			}
		}()
		if _, err := bc.Write([]byte{0xc0, 0x00}); err != nil {
			t.Fatalf("MaxSilence %v: Write: %v", silence, err)
		}
		got := make([]byte, 0, 60)
		buf := make([]byte, 64)
		for len(got) < 60 {
			n, err := bc.Read(buf)
			if err != nil {
				t.Fatalf("MaxSilence %v: Read after %d bytes: %v", silence, len(got), err)
			}
			got = append(got, buf[:n]...)
		}
		if _, err := bc.Write([]byte{0x40, 0x02, 0, 1}); err != nil {
			t.Fatalf("MaxSilence %v: Write after the stream: %v", silence, err)
		}
		bc.Close()
	}
}

// Reads held by the client do not count against the broker: a hold of
// several MaxSilences leaves the connection up, and the broker's bytes
// are read once it ends; silence after that fails the connection.
func TestMaxSilenceWaitsOutAHold(t *testing.T) {
	client, server := tcpPair(t)
	go drain(server)
	var held atomic.Bool
	held.Store(true)
	bc := New(client, Options{MaxSilence: 100 * time.Millisecond, Hold: held.Load})
	defer bc.Close()
	if _, err := server.Write([]byte{0xd0, 0x00}); err != nil { // a PINGRESP, unread while held
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		p := make([]byte, 2)
		_, err := io.ReadFull(bc, p)
		read <- err
	}()
	time.Sleep(500 * time.Millisecond)
	if _, err := bc.Write([]byte{0x40, 0x02, 0, 1}); err != nil {
		t.Fatalf("connection failed while its reads were held: %v", err)
	}
	held.Store(false)
	select {
	case err := <-read:
		if err != nil {
			t.Fatalf("Read after the hold: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing read 5 s after the hold ended")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := bc.Write([]byte{0xc0, 0x00}); errors.Is(err, ErrSilent) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a silent broker after the hold was never noticed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
