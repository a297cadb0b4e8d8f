package app

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/plantlake/plantlake/pipeline"
	"github.com/plantlake/plantlake/services/deserialize/internal/reprocess"
)

// TestReprocessStatus: every reprocess error a client can act on has its
// own code.
func TestReprocessStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{fmt.Errorf("%w: [5, 9] goes past raw version 7", reprocess.ErrRange), codes.InvalidArgument},
		{fmt.Errorf("%w: version 3", reprocess.ErrFilesGone), codes.FailedPrecondition},
		{fmt.Errorf("%w: rule x", reprocess.ErrFailRule), codes.FailedPrecondition},
		{fmt.Errorf("%w: a compaction removed a file", pipeline.ErrAborted), codes.Aborted},
		{pipeline.ErrNotRunning, codes.Unavailable},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
	} {
		if got := status.Code(reprocessStatus(tc.err)); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.err, got, tc.want)
		}
	}
}
