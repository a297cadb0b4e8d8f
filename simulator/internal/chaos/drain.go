package chaos

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/plantlake/plantlake/devstack"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
)

// hops are the services that report a lag, in pipeline order.
var hops = []string{"bridge", "ingest", "deserialize", "merge"}

// tables are the tables the pipeline writes.
var tables = []string{
	"raw.plant_sensor_readings", "bronze.plant_sensor_readings",
	"bronze.plant_sensor_dead_letters", "gold.plant_sensor_readings",
}

// waitDrained waits until every hop reports no lag and neither the
// tables' versions nor the hops' positions have changed for stableFor.
func waitDrained(ctx context.Context, s *devstack.Stack, stableFor, timeout time.Duration, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conns := map[string]*grpc.ClientConn{}
	for _, name := range append([]string{"catalog"}, hops...) {
		conn, err := s.Service(name).Dial()
		if err != nil {
			return fmt.Errorf("chaos: drain: %w", err)
		}
		defer conn.Close()
		conns[name] = conn
	}
	var last string
	var since time.Time
	lastLog := time.Now()
	for {
		state, caughtUp := pipelineState(ctx, conns)
		switch {
		case !caughtUp || state != last:
			last, since = state, time.Now()
		case time.Since(since) >= stableFor:
			return nil
		}
		if time.Since(lastLog) >= 30*time.Second {
			log.Info("draining", "state", state, "caught_up", caughtUp)
			lastLog = time.Now()
		}
		if err := sleep(ctx, time.Second); err != nil {
			return fmt.Errorf("chaos: the pipeline did not drain within %v (last state: %s): %w", timeout, last, err)
		}
	}
}

// pipelineState describes the hops' positions and the tables' versions in
// one string, and says whether every hop reported a lag of 0.
func pipelineState(ctx context.Context, conns map[string]*grpc.ClientConn) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var b strings.Builder
	caughtUp := true
	for _, name := range hops {
		resp, err := pipelinev1.NewPipelineServiceClient(conns[name]).GetStatus(ctx, &pipelinev1.GetStatusRequest{})
		if err != nil {
			fmt.Fprintf(&b, "%s=down ", name)
			caughtUp = false
			continue
		}
		st := resp.GetStatus()
		fmt.Fprintf(&b, "%s=%s lag %d ", name, st.GetPosition(), st.GetLag())
		if st.GetLag() != 0 {
			caughtUp = false
		}
	}
	cat := catalogv1.NewCatalogServiceClient(conns["catalog"])
	for _, t := range tables {
		resp, err := cat.GetTable(ctx, &catalogv1.GetTableRequest{Name: t})
		if err != nil {
			fmt.Fprintf(&b, "%s=? ", t)
			caughtUp = false
			continue
		}
		fmt.Fprintf(&b, "%s@v%d ", t, resp.GetTable().GetVersion())
	}
	return strings.TrimSpace(b.String()), caughtUp
}
