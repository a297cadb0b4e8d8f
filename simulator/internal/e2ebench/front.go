package e2ebench

import (
	"context"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/plantlake/plantlake/devstack"
	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
	"github.com/plantlake/plantlake/simulator/internal/sim"
)

// The front alone, paced. The whole pipeline's sustained rate is compared
// with the bridge alone's, which publishes as fast as it can: every process
// of the front (publisher, Mosquitto, bridge, Kafka) then works on the
// biggest reads, batches and requests it ever gets, at its lowest CPU a
// reading. The pipeline can only be held at a pace, below saturation, where
// the same processes get a reading or a few at a time. A hold of the front
// alone at the target share of the bridge alone (frontTarget) measures what
// that pace costs without any hop: the cores it leaves for ingest,
// deserialize, merge and the catalog bound the ratio the pipeline can reach
// on this machine.

// frontTarget is the share of the bridge alone the whole pipeline is to hold
// (issue 14: at least 0.8×), and the rate of the front's paced hold.
const frontTarget = 0.8

// maxFrontDrain is how soon after the last publish the bridge must have
// written every reading for the front to have kept up: the bridge holds a
// reading for its linger and its delivery report, milliseconds.
const maxFrontDrain = 2 * time.Second

// FrontHold is the front alone (MQTT → bridge → Kafka, no hops) held at a
// fixed rate.
type FrontHold struct {
	// Rate is the rate asked for; Achieved what the publishers reached.
	Rate, Achieved float64
	// Share is Rate as a share of the bridge alone (0 when not measured in
	// the same run).
	Share float64
	// Published is how many readings were published.
	Published int64
	// MaxBehind is the longest the bridge's written count trailed the
	// publishers' schedule (sampled every second), as time at the rate.
	MaxBehind time.Duration
	// Drain is how long after the last publish the bridge had written every
	// reading (negative: not within the wait).
	Drain time.Duration
	// Costs are the processes' CPU per reading; Cores is their CPU over the
	// hold's wall time (publishing and drain).
	Costs []Cost
	Cores float64
	// OK says the front kept up; Why says why not.
	OK  bool
	Why string
	// Load is the load average at the end; For is the publishing time.
	Load string
	For  time.Duration
}

// front is a running stack of Mosquitto, Kafka and the bridge, warmed up.
type front struct {
	st   *devstack.Stack
	conn *grpc.ClientConn
	// written is the bridge's count of readings Kafka has stored; base its
	// value once the warm-up settled.
	written func() (int64, error)
	base    int64
	pids    map[string]int
}

// startFront starts the bridge-alone stack in dir and runs cfg.Warmup of
// traffic through it at bridgeWarmupRate, uncounted.
func startFront(ctx context.Context, cfg Config, dir string) (*front, error) {
	st, err := devstack.StartStack(ctx, devstack.StackConfig{Dir: dir, Services: []string{"bridge"}, MosquittoAutosave: brokerAutosave})
	if err != nil {
		return nil, err
	}
	conn, err := st.Service("bridge").Dial()
	if err != nil {
		st.Close()
		return nil, err
	}
	client := pipelinev1.NewPipelineServiceClient(conn)
	f := &front{st: st, conn: conn, written: func() (int64, error) {
		s, err := client.GetStatus(ctx, &pipelinev1.GetStatusRequest{})
		return s.GetStatus().GetCounts().GetWritten(), err
	}, pids: map[string]int{"bridge": st.Service("bridge").Pid(), "mosquitto": st.Mosquitto.Pid(), "kafka": st.Kafka.Pid(), "simulator (publisher)": os.Getpid()}}
	if cfg.Warmup > 0 {
		_, err := sim.Run(ctx, sim.RunConfig{Plan: planFor(bridgeWarmupRate, "plant"), Broker: st.Mosquitto.URL(),
			ClientID: "e2ebench-bridge-warmup", QoS: 1, Duration: cfg.Warmup,
			Publishers: publishers(bridgeWarmupRate), MaxInflight: 512})
		if ctx.Err() != nil {
			f.close()
			return nil, ctx.Err()
		}
		if err != nil {
			cfg.Log.Warn("front: warm-up", "err", err) // it only has to warm
		}
	}
	if f.base, _, err = waitWritten(ctx, f.written, 0, settleQuiet, time.Minute); err != nil {
		f.close()
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	return f, nil
}

// everySecond calls do once a second until ctx ends.
func everySecond(ctx context.Context, do func()) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		do()
	}
}

func (f *front) close() {
	f.conn.Close()
	f.st.Close()
}

// frontHold holds rate for d on a new front stack in dir.
func frontHold(ctx context.Context, cfg Config, dir string, rate float64, d time.Duration) (FrontHold, error) {
	h := FrontHold{Rate: rate, Drain: -1, For: d}
	f, err := startFront(ctx, cfg, dir)
	if err != nil {
		return h, fmt.Errorf("front hold: %w", err)
	}
	defer f.close()
	before, err := cpuTimes(f.pids)
	if err != nil {
		return h, err
	}
	start := time.Now()
	sctx, stopSampling := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var maxBehind float64 // readings; under mu
	publishing := true    // under mu
	wg.Go(func() {
		everySecond(sctx, func() {
			n, err := f.written()
			mu.Lock()
			if err == nil && publishing {
				maxBehind = max(maxBehind, rate*time.Since(start).Seconds()-float64(n-f.base))
			}
			mu.Unlock()
		})
	})
	sum, err := sim.Run(ctx, sim.RunConfig{Plan: planFor(rate, "plant"), Broker: f.st.Mosquitto.URL(),
		ClientID: fmt.Sprintf("e2ebench-front-%d", time.Now().UnixNano()), QoS: 1,
		Duration: d, Publishers: publishers(rate), MaxInflight: 512})
	lastPublish := time.Now()
	mu.Lock()
	publishing = false
	mu.Unlock()
	stopSampling()
	wg.Wait()
	if err != nil {
		return h, fmt.Errorf("front hold at %v/s: publish: %w", rate, err)
	}
	h.Published, h.Achieved = sum.Published, sum.Rate()
	h.MaxBehind = time.Duration(maxBehind / rate * float64(time.Second))
	_, last, werr := waitWritten(ctx, f.written, f.base+sum.Published, 0, maxFrontDrain+10*time.Second)
	end := time.Now()
	if werr == nil {
		h.Drain = max(0, last.Sub(lastPublish))
		end = last
	}
	if h.Costs, err = costsSince(f.pids, before, sum.Published); err != nil {
		return h, err
	}
	var cpu time.Duration
	for _, c := range h.Costs {
		cpu += c.CPUPerReading * time.Duration(sum.Published)
	}
	h.Cores = cpu.Seconds() / end.Sub(start).Seconds()
	h.Load = loadAverage()
	h.OK = true
	switch {
	case h.Achieved < minAchieved*rate:
		h.OK, h.Why = false, fmt.Sprintf("published %.0f/s", h.Achieved)
	case h.Drain < 0:
		h.OK, h.Why = false, fmt.Sprintf("the bridge had not written every reading %v after the last publish", maxFrontDrain+10*time.Second)
	case h.Drain > maxFrontDrain:
		h.OK, h.Why = false, fmt.Sprintf("the bridge wrote the last reading only %v after the last publish", h.Drain.Round(10*time.Millisecond))
	}
	cfg.Log.Info("front hold", "rate", rate, "ok", h.OK, "why", h.Why, "achieved", math.Round(h.Achieved),
		"behind", h.MaxBehind, "drain", h.Drain, "cores", fmt.Sprintf("%.2f", h.Cores), "load", h.Load)
	return h, nil
}
