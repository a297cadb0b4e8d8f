package mqttconn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// encode returns a packet's bytes as paho writes them.
func encode(t testing.TB, p packets.ControlPacket) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func publishPacket(topic string, qos byte, id uint16, retain, dup bool, payload []byte) *packets.PublishPacket {
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.TopicName, p.Qos, p.MessageID, p.Retain, p.Dup, p.Payload = topic, qos, id, retain, dup, payload
	return p
}

// collector records what OnPublish is given.
type collector struct {
	mu  sync.Mutex
	got []Publish
}

func (c *collector) add(p Publish) {
	c.mu.Lock()
	c.got = append(c.got, p)
	c.mu.Unlock()
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

// With OnPublish, the QoS 0 and 1 PUBLISH packets go to it, in order and
// whole, and paho's packet reader gets every other packet, QoS 2 PUBLISH
// included, whatever way the bytes were cut on the wire.
func TestOnPublishTakesPublishesAndPassesTheRest(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 10_000) // past the 64 KiB buffer
	var pubs []*packets.PublishPacket
	var others []packets.ControlPacket
	var stream bytes.Buffer
	connack := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
	connack.SessionPresent = true
	suback := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
	suback.MessageID, suback.ReturnCodes = 1, []byte{1}
	for _, p := range []packets.ControlPacket{
		connack,
		publishPacket("plant/line3/press01/temperature", 1, 7, true, false, []byte(`{"value":1}`)),
		suback,
		publishPacket("plant/a", 0, 0, false, false, []byte("qos0")),
		publishPacket("plant/empty", 1, 0x0102, false, true, nil),
		packets.NewControlPacket(packets.Pingresp),
		publishPacket("plant/two", 2, 9, false, false, []byte("qos2 goes to paho")),
		publishPacket(strings.Repeat("t", 300), 1, 0xfffe, false, false, big),
		publishPacket("plant/é/unicode", 1, 3, false, false, []byte("x")),
	} {
		stream.Write(encode(t, p))
		if pp, ok := p.(*packets.PublishPacket); ok && pp.Qos < 2 {
			pubs = append(pubs, pp)
		} else {
			others = append(others, p)
		}
	}
	for _, cut := range []int{1, 3, 1000, 1 << 20} {
		t.Run(fmt.Sprintf("writes of %d bytes", cut), func(t *testing.T) {
			client, server := tcpPair(t)
			_ = client.SetReadDeadline(time.Now().Add(10 * time.Second)) // a failure, not a hang
			var c collector
			var sessionPresent bool
			bc := New(client, Options{OnPublish: c.add, OnConnack: func(sp bool) { sessionPresent = sp }})
			defer bc.Close()
			go func() {
				for p := stream.Bytes(); len(p) > 0; p = p[min(len(p), cut):] {
					if _, err := server.Write(p[:min(len(p), cut)]); err != nil {
						return
					}
				}
			}()
			for _, want := range others {
				got, err := packets.ReadPacket(bc)
				if err != nil {
					t.Fatalf("paho's reader: %v", err)
				}
				if got.String() != want.String() {
					t.Fatalf("paho read %v, want %v", got, want)
				}
			}
			if !sessionPresent {
				t.Error("OnConnack was not told the session was present")
			}
			// The last PUBLISHes follow paho's last packet.
			go func() { _, _ = bc.Read(make([]byte, 1)) }() // reads on, for the last PUBLISH
			for deadline := time.Now().Add(5 * time.Second); c.len() < len(pubs) && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if len(c.got) != len(pubs) {
				t.Fatalf("OnPublish got %d packets, want %d", len(c.got), len(pubs))
			}
			for i, want := range pubs {
				got := &c.got[i]
				if got.Topic() != want.TopicName || got.Qos() != want.Qos || got.MessageID() != want.MessageID ||
					got.Retained() != want.Retain || got.Duplicate() != want.Dup || !bytes.Equal(got.Payload(), want.Payload) {
					t.Errorf("publish %d: got topic %q qos %d id %d retain %v dup %v payload %d bytes; want %v",
						i, got.Topic(), got.Qos(), got.MessageID(), got.Retained(), got.Duplicate(), len(got.Payload()), want)
				}
			}
		})
	}
}

// Ack writes a QoS 1 packet's PUBACK to its connection and nothing for
// QoS 0.
func TestPublishAck(t *testing.T) {
	client, server := tcpPair(t)
	got := make(chan Publish, 2)
	bc := New(client, Options{OnPublish: func(p Publish) { got <- p }})
	go func() { _, _ = bc.Read(make([]byte, 1)) }()
	_, _ = server.Write(encode(t, publishPacket("a", 0, 0, false, false, []byte("0"))))
	_, _ = server.Write(encode(t, publishPacket("a", 1, 0x1234, false, false, []byte("1"))))
	for range 2 {
		p := <-got
		p.Ack()
	}
	if err := bc.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(server)
	if want := []byte{0x40, 0x02, 0x12, 0x34}; !bytes.Equal(b, want) {
		t.Fatalf("broker got % x, want % x", b, want)
	}
}

// A PUBLISH that breaks the framing fails Read with ErrMalformed (paho
// then reconnects); OnPublish never sees it.
func TestOnPublishRejectsMalformedPackets(t *testing.T) {
	for name, wire := range map[string][]byte{
		"remaining length of 5 bytes": {0x32, 0xff, 0xff, 0xff, 0xff, 0x01},
		"no topic length":             {0x30, 0x01, 0x00},
		"topic past the packet":       {0x30, 0x04, 0x00, 0x05, 'a', 'b'},
		"QoS 1 without a packet id":   {0x32, 0x04, 0x00, 0x02, 'a', 'b'},
	} {
		t.Run(name, func(t *testing.T) {
			client, server := tcpPair(t)
			_ = client.SetReadDeadline(time.Now().Add(5 * time.Second)) // a failure, not a hang
			bc := New(client, Options{OnPublish: func(p Publish) { t.Errorf("OnPublish got %q", p.Topic()) }})
			defer bc.Close()
			_, _ = server.Write(wire)
			_, err := bc.Read(make([]byte, 16))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Read: %v, want ErrMalformed", err)
			}
		})
	}
}

// A hold stops the reads wherever the buffer runs dry, between packets or
// in the middle of one: under a steady stream OnPublish gets no more than
// the buffer held when the hold began, and the rest once it ends.
func TestOnPublishHeld(t *testing.T) {
	const n, holdAt = 5000, 100
	payload := bytes.Repeat([]byte("x"), 200)
	packet := encode(t, publishPacket("plant/a", 1, 1, false, false, payload))
	inBuffer := 64<<10/len(packet) + 1
	client, server := tcpPair(t)
	var held atomic.Bool
	var count atomic.Int64
	bc := New(client, Options{Hold: held.Load, OnPublish: func(Publish) {
		if count.Add(1) == holdAt {
			held.Store(true)
		}
	}})
	defer bc.Close()
	go func() { _, _ = bc.Read(make([]byte, 1)) }()
	go func() {
		for range n {
			if _, err := server.Write(packet); err != nil {
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	if got := count.Load(); got < holdAt || got > holdAt+int64(inBuffer) {
		t.Fatalf("OnPublish got %d packets during a hold begun at %d; want at most %d more (a buffer)", got, holdAt, inBuffer)
	}
	held.Store(false)
	for deadline := time.Now().Add(10 * time.Second); count.Load() < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d packets came after the hold", count.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// Close ends a Read waiting for the next packet.
func TestOnPublishReadEndsOnClose(t *testing.T) {
	client, _ := tcpPair(t)
	bc := New(client, Options{OnPublish: func(Publish) {}})
	done := make(chan error, 1)
	go func() {
		_, err := bc.Read(make([]byte, 1))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	_ = bc.Close()
	select {
	case err := <-done:
		if err == nil || !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still waiting 5 s after Close")
	}
}

// Whatever bytes a broker sends, reading them with OnPublish ends in an
// error (the end of the stream or ErrMalformed) without a panic, and
// every packet handed over is a QoS 0 or 1 PUBLISH made of the stream's
// bytes.
func FuzzOnPublish(f *testing.F) {
	f.Add(encode(f, publishPacket("plant/a/b/c", 1, 7, false, true, []byte(`{"value":1}`))))
	f.Add(append(encode(f, packets.NewControlPacket(packets.Pingresp)), encode(f, publishPacket("t", 0, 0, true, false, nil))...))
	f.Add(encode(f, publishPacket("q2", 2, 1, false, false, []byte("x"))))
	f.Add([]byte{0x32, 0xff, 0xff, 0xff, 0x7f})
	f.Add([]byte{0x30, 0x02, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, wire []byte) {
		client, server := net.Pipe()
		_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
		var got []Publish
		bc := New(client, Options{OnPublish: func(p Publish) { got = append(got, p) }})
		defer bc.Close()
		go func() {
			_, _ = server.Write(wire)
			_ = server.Close()
		}()
		passed, err := io.ReadAll(bc)
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("read ended with %v", err)
		}
		n := len(passed)
		for _, p := range got {
			if p.Qos() > 1 {
				t.Fatalf("OnPublish got QoS %d", p.Qos())
			}
			n += len(p.Topic()) + len(p.Payload())
		}
		if n > len(wire) {
			t.Fatalf("%d bytes passed on and handed over from %d read", n, len(wire))
		}
	})
}
