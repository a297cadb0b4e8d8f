package storagetest

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// Fault says what a FaultProxy does to one conditional write (a PUT with
// If-None-Match) instead of passing it through.
type Fault int

const (
	// Pass forwards the request and its answer.
	Pass Fault = iota
	// Reject answers with the given status without forwarding: the write
	// did not land.
	Reject
	// LoseAnswer forwards the request (the write lands) and then answers
	// the client with the given status, as a connection lost after the
	// server acted would.
	LoseAnswer
)

// FaultProxy is an HTTP proxy in front of a real object-store server that
// injects faults into conditional writes, to test how a store's
// PutIfAbsent handles them. Other requests pass through.
type FaultProxy struct {
	URL string // the proxy's base URL, to use as the store's endpoint

	mu     sync.Mutex
	plan   []step
	puts   int
	server *httptest.Server
}

type step struct {
	fault  Fault
	status int
	body   string
}

// NewFaultProxy starts a proxy to target (a base URL); t.Cleanup stops it.
func NewFaultProxy(t *testing.T, target string) *FaultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &FaultProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || r.Header.Get("If-None-Match") == "" {
			rp.ServeHTTP(w, r)
			return
		}
		p.mu.Lock()
		p.puts++
		s := step{fault: Pass}
		if len(p.plan) > 0 {
			s, p.plan = p.plan[0], p.plan[1:]
		}
		p.mu.Unlock()
		switch s.fault {
		case Reject:
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(s.status)
			w.Write([]byte(s.body)) //nolint:errcheck // the client sees what it sees
		case LoseAnswer:
			rec := httptest.NewRecorder()
			rp.ServeHTTP(rec, r)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(s.status)
			w.Write([]byte(s.body)) //nolint:errcheck // as above
		default:
			rp.ServeHTTP(w, r)
		}
	}))
	p.URL = p.server.URL
	t.Cleanup(p.server.Close)
	return p
}

// Next queues a fault for the next conditional write; status and body are
// what the client gets.
func (p *FaultProxy) Next(f Fault, status int, body string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.plan = append(p.plan, step{fault: f, status: status, body: body})
}

// ConditionalPuts returns how many conditional writes the proxy has seen.
func (p *FaultProxy) ConditionalPuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.puts
}
