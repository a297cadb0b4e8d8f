// Package overview asks every pipeline service for its status and prints
// one line per hop, and gold's freshness from the catalog: the pipeline
// at a glance for `make status`.
package overview

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
)

// GoldTable is the table whose freshness is reported.
const GoldTable = "gold.plant_sensor_readings"

// Hop is one service to ask.
type Hop struct {
	// Name is the service's name, e.g. "ingest".
	Name string
	// Conn reaches its gRPC server.
	Conn grpc.ClientConnInterface
	// Addr is shown with errors.
	Addr string
}

// HopReport is one hop's answer, or the error that stood for it.
type HopReport struct {
	Hop    string
	Addr   string
	Status *pipelinev1.Status
	Err    error
}

// Freshness is gold's freshness: how long after the bridge received its
// newest rows the commit that holds them was made.
type Freshness struct {
	// Exists is false when gold has no table yet.
	Exists bool
	// Version and CommitTime are gold's latest commit.
	Version    int64
	CommitTime time.Time
	// NewestBridgeTS is the largest bridge_ts in gold's file statistics
	// (zero when no file has one).
	NewestBridgeTS time.Time
	// Rows is the row count from the file statistics.
	Rows int64
	// Err is why it could not be found out.
	Err error
}

// Lag is CommitTime minus NewestBridgeTS: the end-to-end delay of the
// newest rows. ok is false when there are no such rows.
func (f Freshness) Lag() (lag time.Duration, ok bool) {
	if !f.Exists || f.NewestBridgeTS.IsZero() {
		return 0, false
	}
	return f.CommitTime.Sub(f.NewestBridgeTS), true
}

// Report is the whole overview.
type Report struct {
	Hops      []HopReport
	Catalog   string
	Freshness Freshness
	At        time.Time
}

// Collect asks every hop's GetStatus and the catalog for gold, all at
// once, each call bounded by timeout. It never fails: an unreachable
// service is a report with Err set.
func Collect(ctx context.Context, hops []Hop, catalog grpc.ClientConnInterface, catalogAddr string, timeout time.Duration) Report {
	rep := Report{Hops: make([]HopReport, len(hops)), Catalog: catalogAddr, At: time.Now()}
	var wg sync.WaitGroup
	for i, h := range hops {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			r := HopReport{Hop: h.Name, Addr: h.Addr}
			resp, err := pipelinev1.NewPipelineServiceClient(h.Conn).GetStatus(cctx, &pipelinev1.GetStatusRequest{}, grpc.WaitForReady(false))
			if err != nil {
				r.Err = err
			} else {
				r.Status = resp.GetStatus()
			}
			rep.Hops[i] = r
		})
	}
	wg.Go(func() {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		rep.Freshness = goldFreshness(cctx, catalogv1.NewCatalogServiceClient(catalog))
	})
	wg.Wait()
	return rep
}

// goldFreshness reads gold's latest commit time (History) and the newest
// bridge_ts in its files' statistics (GetSnapshot).
func goldFreshness(ctx context.Context, c catalogv1.CatalogServiceClient) Freshness {
	hist, err := c.History(ctx, &catalogv1.HistoryRequest{Table: GoldTable, Limit: 1})
	if status.Code(err) == codes.NotFound {
		return Freshness{}
	}
	if err != nil {
		return Freshness{Err: fmt.Errorf("history of %s: %w", GoldTable, err)}
	}
	if len(hist.GetEntries()) == 0 {
		return Freshness{}
	}
	latest := hist.GetEntries()[0]
	f := Freshness{Exists: true, Version: latest.GetVersion(), CommitTime: latest.GetTimestamp().AsTime()}
	snap, err := c.GetSnapshot(ctx, &catalogv1.GetSnapshotRequest{Table: GoldTable,
		At: &catalogv1.GetSnapshotRequest_Version{Version: f.Version}})
	if err != nil {
		f.Err = fmt.Errorf("snapshot of %s: %w", GoldTable, err)
		return f
	}
	for _, file := range snap.GetFiles() {
		rows, newest, err := fileStats(file.GetStats())
		if err != nil {
			f.Err = fmt.Errorf("stats of %s: %w", file.GetPath(), err)
			return f
		}
		f.Rows += rows
		if newest.After(f.NewestBridgeTS) {
			f.NewestBridgeTS = newest
		}
	}
	return f
}

// fileStats reads numRecords and maxValues.bridge_ts of Delta stats JSON.
func fileStats(stats string) (rows int64, newest time.Time, err error) {
	if stats == "" {
		return 0, time.Time{}, nil
	}
	var s struct {
		NumRecords int64          `json:"numRecords"`
		MaxValues  map[string]any `json:"maxValues"`
	}
	if err := json.Unmarshal([]byte(stats), &s); err != nil {
		return 0, time.Time{}, fmt.Errorf("decode: %w", err)
	}
	v, ok := s.MaxValues["bridge_ts"].(string)
	if !ok {
		return s.NumRecords, time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return s.NumRecords, time.Time{}, fmt.Errorf("bridge_ts %q: %w", v, err)
	}
	return s.NumRecords, t, nil
}

// Write prints the report as a table: one line per hop, then gold.
func (r Report) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOP\tADDRESS\tSTATE\tPOSITION\tLAG\tIN/s\tOUT/s\tNEWEST DATA AGE\tNOTE")
	for _, h := range r.Hops {
		if h.Err != nil {
			fmt.Fprintf(tw, "%s\t%s\tDOWN\t-\t-\t-\t-\t-\t%s\n", h.Hop, h.Addr, oneLine(status.Convert(h.Err).Message()))
			continue
		}
		s := h.Status
		age := "-"
		if d := s.GetNewestDataAge(); d != nil {
			age = d.AsDuration().Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%.1f\t%.1f\t%s\t%s\n", h.Hop, h.Addr, stateName(s.GetState()),
			orDash(cut(s.GetPosition(), 64)), s.GetLag(), s.GetRates().GetReceivedPerSecond(), s.GetRates().GetWrittenPerSecond(),
			age, note(s, r.At))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	f := r.Freshness
	var line string
	switch {
	case f.Err != nil && !f.Exists:
		line = fmt.Sprintf("gold: catalog %s DOWN or failing: %s", r.Catalog, oneLine(status.Convert(f.Err).Message()))
	case !f.Exists:
		line = fmt.Sprintf("gold: %s does not exist yet (catalog %s)", GoldTable, r.Catalog)
	case f.Err != nil:
		line = fmt.Sprintf("gold: version %d committed %s ago; freshness unknown: %v", f.Version, r.At.Sub(f.CommitTime).Round(time.Millisecond), f.Err)
	default:
		lag, ok := f.Lag()
		fresh := "no rows with bridge_ts yet"
		if ok {
			fresh = fmt.Sprintf("freshness %s (commit time minus newest bridge_ts %s)", lag.Round(time.Millisecond), f.NewestBridgeTS.UTC().Format(time.RFC3339Nano))
		}
		line = fmt.Sprintf("gold: version %d, %d rows, committed %s ago, %s", f.Version, f.Rows, r.At.Sub(f.CommitTime).Round(time.Millisecond), fresh)
	}
	if _, err := fmt.Fprintln(w, line); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}

// note is what a hop's line ends with ("-" if nothing): why and since when
// it is paused, and its last error with how long before at it happened (a
// RUNNING hop's error is history, and its age says how old).
func note(s *pipelinev1.Status, at time.Time) string {
	var parts []string
	if t := s.GetPausedSince(); t != nil {
		p := "paused"
		if a := ago(t.AsTime(), at); a != "" {
			p += " " + a
		}
		if r := s.GetPauseReason(); r != "" {
			p += ": " + oneLine(r)
		}
		parts = append(parts, p)
	}
	if msg := s.GetLastError(); msg != "" {
		if t := s.GetLastErrorTime(); t != nil && !at.IsZero() {
			msg = ago(t.AsTime(), at) + ": " + oneLine(msg)
		}
		parts = append(parts, oneLine(msg))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "; ")
}

// ago says how long before at t was ("1m5s ago"), or nothing without at.
func ago(t, at time.Time) string {
	if at.IsZero() {
		return ""
	}
	return at.Sub(t).Round(time.Second).String() + " ago"
}

// Down counts the hops that did not answer (and the catalog, if it failed).
func (r Report) Down() int {
	n := 0
	for _, h := range r.Hops {
		if h.Err != nil {
			n++
		}
	}
	if r.Freshness.Err != nil && !r.Freshness.Exists {
		n++
	}
	return n
}

func stateName(s pipelinev1.State) string {
	return strings.TrimPrefix(s.String(), "STATE_")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine puts s on one line, cut to 160 bytes.
func oneLine(s string) string {
	return cut(strings.Join(strings.Fields(s), " "), 160)
}

// cut shortens s to at most n bytes (at a rune boundary), ending in "...".
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n - 3
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}
