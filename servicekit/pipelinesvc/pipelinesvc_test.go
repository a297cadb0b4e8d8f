package pipelinesvc

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestStatus(t *testing.T) {
	tests := []struct {
		err  error
		want codes.Code
	}{
		{ErrNotRunning, codes.Unavailable},
		{fmt.Errorf("commit: %w", ErrAborted), codes.Aborted},
		{fmt.Errorf("rule too_hot: %w", ErrHalted), codes.FailedPrecondition},
		{fmt.Errorf("from_version: %w", ErrInvalid), codes.InvalidArgument},
		{context.Canceled, codes.Canceled},
		{fmt.Errorf("wait: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{errors.New("catalog unreachable"), codes.Unavailable},
	}
	for _, tc := range tests {
		t.Run(tc.err.Error(), func(t *testing.T) {
			if got := status.Code(Status("op", tc.err)); got != tc.want {
				t.Errorf("Status(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
