package catalog

import (
	"errors"
	"fmt"
)

// Errors the gRPC adapter maps to status codes. Every error the engine
// returns for a client's mistake or a lost race wraps one of them.
var (
	// ErrNotFound: the table does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: CreateTable for a table that exists with a different
	// definition.
	ErrAlreadyExists = errors.New("already exists")
	// ErrInvalidArgument: the request is malformed; see *FieldError.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrConflict: the commit lost a race; see *ConflictError. The client
	// re-reads and retries.
	ErrConflict = errors.New("commit conflict")
	// ErrClosed: the catalog is shutting down.
	ErrClosed = errors.New("catalog closed")
)

// FieldError is a bad request, naming the field that is wrong.
type FieldError struct {
	// Field is the request field, e.g. "adds[3].path".
	Field string
	// Reason says what is wrong with it.
	Reason string
}

// Error says which field is wrong and why.
func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrInvalidArgument) true.
func (e *FieldError) Unwrap() error { return ErrInvalidArgument }

func badField(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// ConflictError is a lost commit race: a commit after the transaction's read
// version did something the transaction depended on.
type ConflictError struct {
	// WinnerVersion is the first version that conflicts.
	WinnerVersion int64
	// Reason names the conflict, e.g. "concurrent transaction for app id ingest/raw/0".
	Reason string
}

// Error names the winning version and the conflict.
func (e *ConflictError) Error() string {
	return fmt.Sprintf("conflict with version %d: %s", e.WinnerVersion, e.Reason)
}

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Unwrap() error { return ErrConflict }
