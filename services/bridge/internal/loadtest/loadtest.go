// Package loadtest publishes numbered readings over MQTT and checks which of
// them arrived in Kafka. The bridge's integration tests and its benchmark
// share it, so both measure the same publisher and the same check.
package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// ErrIncomplete is returned by [Collect] when the context ends before every
// expected id arrived.
var ErrIncomplete = errors.New("not every reading arrived")

// Payload is the reading with number id, published at pub: a payload of
// the design's shape with the id and the publish time (Unix microseconds)
// in front, so a consumer can find them without a JSON decoder.
func Payload(id int, pub time.Time) []byte {
	b := make([]byte, 0, 128)
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, int64(id), 10)
	b = append(b, `,"pub_us":`...)
	b = strconv.AppendInt(b, pub.UnixMicro(), 10)
	b = append(b, `,"sensor_id":"press01","measurement":"temperature","value":87.3,"unit":"C","ts":1625000000}`...)
	return b
}

// ParseID reads the id and publish time that [Payload] wrote.
func ParseID(p []byte) (id int, pub time.Time, ok bool) {
	rest, found := bytes.CutPrefix(p, []byte(`{"id":`))
	if !found {
		return 0, time.Time{}, false
	}
	idText, rest, found := bytes.Cut(rest, []byte(`,"pub_us":`))
	if !found {
		return 0, time.Time{}, false
	}
	pubText, _, found := bytes.Cut(rest, []byte(`,`))
	if !found {
		return 0, time.Time{}, false
	}
	n, err1 := strconv.Atoi(string(idText))
	us, err2 := strconv.ParseInt(string(pubText), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, time.Time{}, false
	}
	return n, time.UnixMicro(us), true
}

// PublishConfig describes a publishing run.
type PublishConfig struct {
	// Broker is the MQTT broker URL.
	Broker string
	// ClientPrefix names the publisher clients: <prefix>-<worker>.
	ClientPrefix string
	// Topic returns the MQTT topic for reading id.
	Topic func(id int) string
	// Payload returns the payload for reading id; nil means [Payload].
	Payload func(id int, pub time.Time) []byte
	// First and Count select the ids First … First+Count-1.
	First, Count int
	// Workers is the number of publisher clients (goroutines).
	Workers int
	// Rate is the total readings per second; 0 publishes as fast as the
	// window allows.
	Rate float64
	// Window is how many publishes each worker keeps unacknowledged.
	Window int
}

// Publish sends every reading at QoS 1 and returns once the broker has
// acknowledged each one (a failed or timed-out publish is sent again, so a
// broker restart loses nothing the publisher counted as sent).
func Publish(ctx context.Context, cfg PublishConfig) error {
	if cfg.Workers < 1 {
		cfg.Workers = 1
	}
	if cfg.Window < 1 {
		cfg.Window = 256
	}
	if cfg.Payload == nil {
		cfg.Payload = Payload
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, cfg.Workers)
	for w := range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = publishWorker(ctx, cfg, w, start)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

type pending struct {
	id  int
	tok mqtt.Token
}

func publishWorker(ctx context.Context, cfg PublishConfig, w int, start time.Time) error {
	opts := mqtt.NewClientOptions().AddBroker(cfg.Broker).
		SetClientID(fmt.Sprintf("%s-%d", cfg.ClientPrefix, w)).
		SetCleanSession(true).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(200 * time.Millisecond).SetMaxReconnectInterval(time.Second).
		SetKeepAlive(10 * time.Second).SetWriteTimeout(5 * time.Second)
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		c.Disconnect(0)
		return fmt.Errorf("publisher %d: connect: %w", w, ctx.Err())
	}
	defer c.Disconnect(100)

	var window []pending
	var retry []int
	send := func(id int) {
		window = append(window, pending{id: id, tok: c.Publish(cfg.Topic(id), 1, false, cfg.Payload(id, time.Now()))})
	}
	// settle waits for the oldest publish; a failure is queued to retry.
	settle := func() error {
		p := window[0]
		window = window[1:]
		select {
		case <-p.tok.Done():
		case <-time.After(15 * time.Second):
			retry = append(retry, p.id)
			return nil
		case <-ctx.Done():
			return fmt.Errorf("publisher %d: %w", w, ctx.Err())
		}
		if p.tok.Error() != nil {
			retry = append(retry, p.id)
			time.Sleep(100 * time.Millisecond)
		}
		return nil
	}
	perWorker := cfg.Rate / float64(cfg.Workers)
	n := 0
	for id := cfg.First + w; id < cfg.First+cfg.Count; id += cfg.Workers {
		if perWorker > 0 {
			due := start.Add(time.Duration(float64(n) / perWorker * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		n++
		for len(window) >= cfg.Window {
			if err := settle(); err != nil {
				return err
			}
		}
		send(id)
		for len(retry) > 0 {
			id := retry[0]
			retry = retry[1:]
			send(id)
		}
	}
	for len(window) > 0 || len(retry) > 0 {
		for len(retry) > 0 {
			id := retry[0]
			retry = retry[1:]
			send(id)
		}
		if len(window) > 0 {
			if err := settle(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Result is what [Collect] found in the topic.
type Result struct {
	// Records read from the topic.
	Records int
	// Unique ids among them.
	Unique int
	// Duplicates = Records - Unique (records without an id excluded).
	Duplicates int
	// Missing lists up to 20 expected ids not seen.
	Missing []int
	// Latencies are record timestamp minus publish time, one per unique id,
	// when the topic stamps LogAppendTime (or the producer's CreateTime).
	Latencies []time.Duration
}

// Collect reads topic from the beginning until every id First … First+Count-1
// has arrived or ctx ends ([ErrIncomplete]). onRecord, if set, sees every
// record.
func Collect(ctx context.Context, brokers, topic string, first, count int, onRecord func(*kafka.Message)) (Result, error) {
	c, err := kafka.NewConsumer(&kafka.ConfigMap{
		"bootstrap.servers":  brokers,
		"group.id":           fmt.Sprintf("loadtest-%d", time.Now().UnixNano()),
		"auto.offset.reset":  "earliest",
		"enable.auto.commit": false,
		"fetch.wait.max.ms":  20,
		"log_level":          0,
	})
	if err != nil {
		return Result{}, fmt.Errorf("create consumer: %w", err)
	}
	defer c.Close()
	if err := c.Subscribe(topic, nil); err != nil {
		return Result{}, fmt.Errorf("subscribe %s: %w", topic, err)
	}
	seen := make([]bool, count)
	var res Result
	for res.Unique < count {
		if ctx.Err() != nil {
			break
		}
		ev := c.Poll(100)
		m, ok := ev.(*kafka.Message)
		if !ok {
			continue
		}
		if onRecord != nil {
			onRecord(m)
		}
		id, pub, ok := ParseID(m.Value)
		if !ok || id < first || id >= first+count {
			continue
		}
		res.Records++
		if seen[id-first] {
			res.Duplicates++
			continue
		}
		seen[id-first] = true
		res.Unique++
		res.Latencies = append(res.Latencies, m.Timestamp.Sub(pub))
	}
	if res.Unique == count {
		return res, nil
	}
	for i, s := range seen {
		if !s && len(res.Missing) < 20 {
			res.Missing = append(res.Missing, first+i)
		}
	}
	return res, fmt.Errorf("%w: %d of %d in %s, missing e.g. %v", ErrIncomplete, res.Unique, count, topic, res.Missing)
}
