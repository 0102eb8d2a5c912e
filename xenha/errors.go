package xenha

import (
	"errors"
	"fmt"
)

// Domain errors. The server maps each to a gRPC code in one place.
var (
	ErrUnknownPool = errors.New("unknown pool")
	ErrPoolExists  = errors.New("a different pool is already attached under that name: through the API only its members (keeping one at least) and credentials may change; detach it first to change anything else (a pool from the configuration file changes there)")
	ErrClosed      = errors.New("the bridge is shutting down")
	ErrDropsMaster = errors.New("the pool's members may not leave out its master")
)

// InvalidArgumentError names the request field that was wrong.
type InvalidArgumentError struct {
	Field  string
	Reason string
}

func (e *InvalidArgumentError) Error() string { return e.Field + ": " + e.Reason }

func invalid(field, format string, args ...any) error {
	return &InvalidArgumentError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

func unknownPool(name string) error { return fmt.Errorf("%w %q", ErrUnknownPool, name) }
