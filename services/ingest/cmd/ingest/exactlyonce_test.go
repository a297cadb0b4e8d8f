package main

import (
	"context"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/plantlake/plantlake/services/ingest/internal/stack"
)

// produceInBackground produces records [0, n) at perSecond and returns a
// channel with the result.
func produceInBackground(t *testing.T, pr *stack.Producer, n, perSecond int) <-chan error {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- pr.Produce(context.Background(), 0, n, perSecond) }()
	return errc
}

// TestKill9 kills the ingest process with SIGKILL ten times while 200,000
// records stream in; the raw table must hold every record exactly once.
func TestKill9(t *testing.T) {
	e := newEnv(t)
	pr, err := stack.NewProducer(e.kafka.Brokers())
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	const records = 200_000
	produced := produceInBackground(t, pr, records, 16_000)

	// Static membership: a restarted process takes its predecessor's place
	// at once instead of waiting out the session timeout.
	args := []string{"--batch-max-rows", "4000", "--batch-max-age", "100ms", "--kafka-config", "group.instance.id=ingest-kill-test"}
	p := e.ingest(args...)
	rng := rand.New(rand.NewPCG(1, 2))
	busy := 0 // killed processes that had committed batches: the kills hit a working process
	for i := range 10 {
		time.Sleep(600*time.Millisecond + time.Duration(rng.Int64N(int64(900*time.Millisecond))))
		p.Kill()
		commits := countLog(t, p, "batch committed")
		t.Logf("kill %d: %s killed after %d commits", i+1, p.Name, commits)
		if commits > 0 {
			busy++
		}
		p = e.ingest(args...)
	}
	if busy < 5 {
		t.Errorf("only %d of 10 killed processes had committed anything; the kills did not test much", busy)
	}
	if err := <-produced; err != nil {
		t.Fatalf("produce: %v", err)
	}
	e.waitIngested(pr.Positions, 90*time.Second)
	if err := p.Stop(20 * time.Second); err != nil {
		t.Errorf("last ingest process: %v", err)
	}
	e.check(pr.Positions)
}

// countLog counts the lines of p's log that contain s.
func countLog(t *testing.T, p *stack.Process, s string) int {
	t.Helper()
	data, err := os.ReadFile(p.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), s)
}

// TestPartitionsMove runs two ingest processes in one group while
// partitions move between them: a second joins, the first stops, a third
// joins, the second is killed, the third stops. Every record must be in the
// table exactly once.
func TestPartitionsMove(t *testing.T) {
	e := newEnv(t)
	pr, err := stack.NewProducer(e.kafka.Brokers())
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	const records = 120_000
	produced := produceInBackground(t, pr, records, 10_000)

	args := []string{"--batch-max-rows", "5000", "--batch-max-age", "150ms"}
	a := e.ingest(args...)
	time.Sleep(2 * time.Second)
	b := e.ingest(args...)
	waitLog(t, b, "partition assigned", 30*time.Second)
	time.Sleep(2 * time.Second)
	if err := a.Stop(20 * time.Second); err != nil {
		t.Errorf("first process stopped with %v", err)
	}
	c := e.ingest(args...)
	waitLog(t, c, "partition assigned", 30*time.Second)
	time.Sleep(1500 * time.Millisecond)
	b.Kill() // its partitions move to c after the session timeout
	d := e.ingest(args...)
	time.Sleep(2 * time.Second)
	if err := c.Stop(20 * time.Second); err != nil {
		t.Errorf("third process stopped with %v", err)
	}
	if err := <-produced; err != nil {
		t.Fatalf("produce: %v", err)
	}
	e.waitIngested(pr.Positions, 90*time.Second)
	if err := d.Stop(20 * time.Second); err != nil {
		t.Errorf("last process stopped with %v", err)
	}
	e.check(pr.Positions)
}
