package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/plantlake/plantlake/devstack"
	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
)

// bearerToken sends a bearer token on every call.
type bearerToken string

func (b bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearerToken) RequireTransportSecurity() bool { return false }

// TestStatusSaysWhyNotRunning: an ingest that cannot open its table says
// why in last_error (not only in a log line) and keeps its health
// NOT_SERVING, while its control API answers.
func TestStatusSaysWhyNotRunning(t *testing.T) {
	e := newEnv(t)
	// A catalog that wants a token ingest does not have.
	guarded, err := devstack.StartCatalog(context.Background(), devstack.CatalogConfig{Bin: catalogBin,
		Warehouse: filepath.Join(e.dir, "guarded"), LogPath: filepath.Join(e.dir, "guarded.log"),
		Args: []string{"--auth-token", "the-catalogs-token"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(guarded.Kill)
	cases := []struct {
		name string
		args []string
		want string // in last_error
	}{
		{"catalog unreachable", []string{"--catalog-addr", "127.0.0.1:1"}, "create table raw.plant_sensor_readings: rpc error: code = Unavailable"},
		{"wrong token", []string{"--catalog-addr", guarded.Addr(), "--auth-token", "not-the-catalogs"}, "Unauthenticated"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, addr, _ := e.ingestServing(tc.args...)
			opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
			for i, a := range tc.args {
				if a == "--auth-token" {
					opts = append(opts, grpc.WithPerRPCCredentials(bearerToken(tc.args[i+1])))
				}
			}
			conn, err := grpc.NewClient(addr, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			api, health := pipelinev1.NewPipelineServiceClient(conn), healthpb.NewHealthClient(conn)
			ctx := context.Background()
			deadline := time.Now().Add(30 * time.Second)
			for {
				resp, err := api.GetStatus(ctx, &pipelinev1.GetStatusRequest{})
				st := resp.GetStatus()
				if err == nil && strings.Contains(st.GetLastError(), tc.want) {
					if st.GetState() != pipelinev1.State_STATE_STARTING {
						t.Errorf("state %v, want STARTING while the table cannot be opened", st.GetState())
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after 30 s: status %v (err %v); want last_error to contain %q", st, err, tc.want)
				}
				time.Sleep(200 * time.Millisecond)
			}
			h, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
			if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
				t.Errorf("health %v (%v), want NOT_SERVING", h.GetStatus(), err)
			}
		})
	}
}
