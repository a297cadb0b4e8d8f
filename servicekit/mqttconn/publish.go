package mqttconn

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Publish is a PUBLISH packet of QoS 0 or 1 that the connection read for
// Options.OnPublish. It is an mqtt.Message: Ack writes the PUBACK of a QoS 1
// packet to the connection it came on.
type Publish struct {
	topic    string
	payload  []byte
	id       uint16
	qos      byte
	retained bool
	dup      bool
	conn     *Conn
}

var _ mqtt.Message = (*Publish)(nil)

// Topic is the packet's topic name.
func (p *Publish) Topic() string { return p.topic }

// Payload is the packet's application message, as sent.
func (p *Publish) Payload() []byte { return p.payload }

// MessageID is the packet identifier of a QoS 1 packet (0 for QoS 0).
func (p *Publish) MessageID() uint16 { return p.id }

// Qos is the packet's quality of service, 0 or 1.
func (p *Publish) Qos() byte { return p.qos }

// Retained reports the packet's RETAIN flag.
func (p *Publish) Retained() bool { return p.retained }

// Duplicate reports the packet's DUP flag: the broker sent it before.
func (p *Publish) Duplicate() bool { return p.dup }

// Ack writes the PUBACK of a QoS 1 packet to its connection (nothing for
// QoS 0); see WritePubacks.
func (p *Publish) Ack() {
	if p.qos == 1 {
		p.conn.WritePubacks(p.id)
	}
}

// ErrMalformed reports a packet from the broker that breaks MQTT 3.1.1's
// framing; the connection fails and paho reconnects.
var ErrMalformed = errors.New("malformed MQTT packet from the broker")

// nextPacket reads one packet: a PUBLISH of QoS 0 or 1 goes to onPublish,
// any other is put in c.out for paho, whole.
func (c *Conn) nextPacket() error {
	c.mu.Lock()
	closing := c.closing
	c.mu.Unlock()
	if closing {
		return net.ErrClosed
	}
	first, err := c.r.ReadByte()
	if err != nil {
		return err
	}
	size, lenBytes, err := c.readRemainingLength()
	if err != nil {
		return err
	}
	qos := first >> 1 & 3
	if first>>4 != 3 || qos > 1 {
		out := append(c.outBuf[:0], first)
		out = append(out, lenBytes...)
		head := len(out)
		out = slices.Grow(out, size)[:head+size]
		if _, err := io.ReadFull(c.r, out[head:]); err != nil {
			return err
		}
		c.out, c.outBuf = out, out
		return nil
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return err
	}
	p, err := parsePublish(first, body)
	if err != nil {
		return err
	}
	p.conn = c
	c.onPublish(p)
	return nil
}

// readRemainingLength reads the fixed header's Remaining Length (1 to 4
// bytes, 7 bits each, least significant first) and returns it with its
// encoding.
func (c *Conn) readRemainingLength() (size int, encoded []byte, err error) {
	var buf [4]byte
	for i := range buf {
		b, err := c.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		buf[i] = b
		size |= int(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			return size, buf[:i+1], nil
		}
	}
	return 0, nil, fmt.Errorf("%w: remaining length longer than 4 bytes", ErrMalformed)
}

// parsePublish decodes the variable header and payload of a QoS 0 or 1
// PUBLISH; the payload keeps body's bytes.
func parsePublish(first byte, body []byte) (Publish, error) {
	p := Publish{qos: first >> 1 & 3, retained: first&1 == 1, dup: first&8 != 0}
	if len(body) < 2 {
		return p, fmt.Errorf("%w: PUBLISH of %d bytes has no topic length", ErrMalformed, len(body))
	}
	end := 2 + (int(body[0])<<8 | int(body[1]))
	if p.qos == 1 {
		end += 2
	}
	if end > len(body) {
		return p, fmt.Errorf("%w: PUBLISH of %d bytes, its topic and packet id need %d", ErrMalformed, len(body), end)
	}
	if p.qos == 1 {
		p.topic = string(body[2 : end-2])
		p.id = uint16(body[end-2])<<8 | uint16(body[end-1])
	} else {
		p.topic = string(body[2:end])
	}
	p.payload = body[end:]
	return p, nil
}
