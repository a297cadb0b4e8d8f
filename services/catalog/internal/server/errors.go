package server

import (
	"context"
	"errors"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/services/catalog/internal/catalog"
)

// ErrorDomain is the domain of the ErrorInfo details on Aborted and
// InvalidArgument statuses.
const ErrorDomain = "catalog.plantlake.io"

// Reasons in ErrorInfo details.
const (
	// ReasonConflict marks an Aborted commit; metadata "winner_version" and "reason".
	ReasonConflict = "COMMIT_CONFLICT"
	// ReasonBadField marks an InvalidArgument; metadata "field".
	ReasonBadField = "BAD_FIELD"
)

// MapError is the catalog's servicekit error mapper: the one place where
// engine errors become status codes. Errors it does not know are Internal
// (servicekit logs those).
func MapError(err error) *status.Status {
	if st, ok := status.FromError(err); ok {
		return st
	}
	var fe *catalog.FieldError
	var ce *catalog.ConflictError
	switch {
	case errors.As(err, &ce):
		st := status.New(codes.Aborted, err.Error())
		if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: ReasonConflict, Domain: ErrorDomain, Metadata: map[string]string{
			"winner_version": strconv.FormatInt(ce.WinnerVersion, 10), "reason": ce.Reason,
		}}); derr == nil {
			st = d
		}
		return st
	case errors.As(err, &fe):
		st := status.New(codes.InvalidArgument, err.Error())
		if d, derr := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{
			Field: fe.Field, Description: fe.Reason,
		}}}); derr == nil {
			st = d
		}
		return st
	case errors.Is(err, catalog.ErrInvalidArgument), errors.Is(err, delta.ErrInvalidCommit):
		// The engine turns the delta library's *CommitError into a
		// FieldError; an ErrInvalidCommit that reaches here is still the
		// client's mistake.
		return status.New(codes.InvalidArgument, err.Error())
	case errors.Is(err, catalog.ErrNotFound):
		return status.New(codes.NotFound, err.Error())
	case errors.Is(err, catalog.ErrAlreadyExists):
		return status.New(codes.AlreadyExists, err.Error())
	case errors.Is(err, catalog.ErrConflict):
		return status.New(codes.Aborted, err.Error())
	case errors.Is(err, delta.ErrUnsupportedFeature), errors.Is(err, delta.ErrUnsupportedProtocol):
		return status.New(codes.FailedPrecondition, err.Error())
	case errors.Is(err, delta.ErrInvalidLog):
		// A table whose log is broken (a missing commit, an unparsable
		// action) is corrupt, not a passing failure.
		return status.New(codes.DataLoss, err.Error())
	case errors.Is(err, catalog.ErrClosed):
		return status.New(codes.Unavailable, err.Error())
	case errors.Is(err, context.Canceled):
		return status.New(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.New(codes.DeadlineExceeded, err.Error())
	}
	return status.New(codes.Internal, err.Error())
}
