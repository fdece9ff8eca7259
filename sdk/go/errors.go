package operon

import (
	"errors"
	"fmt"
)

// Error is a reconcile failure: Permanent ones wait for the parent to
// change, retryable ones are retried with backoff.
type Error struct {
	Permanent bool
	Message   string
}

func (e *Error) Error() string {
	if e.Permanent {
		return "permanent error: " + e.Message
	}
	return "retryable error: " + e.Message
}

// Permanentf: the parent cannot be reconciled as it is (e.g. invalid spec).
func Permanentf(format string, args ...any) *Error {
	return &Error{Permanent: true, Message: fmt.Sprintf(format, args...)}
}

// Retryablef: a transient failure.
func Retryablef(format string, args ...any) *Error {
	return &Error{Message: fmt.Sprintf(format, args...)}
}

// AsError turns any error into an *Error: an *Error (possibly wrapped) as it
// is, anything else retryable with its message.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Message: err.Error()}
}
