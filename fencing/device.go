package fencing

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// PowerState is what a BMC reports.
type PowerState int

const (
	PowerUnknown PowerState = iota
	PowerOn
	PowerOff
)

func (p PowerState) String() string {
	switch p {
	case PowerOn:
		return "on"
	case PowerOff:
		return "off"
	}
	return "unknown"
}

// Device is an out-of-band power controller: a host's BMC, spoken to over
// IPMI or Redfish. Implementations live in fencing/ipmi and
// fencing/redfish.
type Device interface {
	// Driver names the protocol: "ipmi" or "redfish".
	Driver() string
	// PowerState reads the chassis power state.
	PowerState(ctx context.Context) (PowerState, error)
	// PowerOff cuts power at once (no graceful shutdown). Asking to power
	// off a host that is already off succeeds.
	PowerOff(ctx context.Context) error
}

// ErrUnreachable marks a BMC that does not answer (gone with its host, or
// its network): the orchestrator falls through to the next level instead
// of retrying forever. Implementations wrap it: errors.Is(err, ErrUnreachable).
var ErrUnreachable = errors.New("BMC unreachable")

// ErrAuth marks a BMC that refused the credentials.
var ErrAuth = errors.New("BMC refused the credentials")

// Hold is asked right before a destructive call: it says whether the
// bridge may still act and returns the context to make the call with.
type Hold func(ctx context.Context) (context.Context, context.CancelFunc, error)

// PowerOffVerified cuts a host's power through dev and reads the state
// back until it is off or verify passes. alreadyOff reports a host found
// off before anything was sent (that counts as fenced).
//
// hold, when not nil, is asked right before the power-off is sent and
// bounds the send (the lease of several management servers); an error
// from it is returned and nothing is sent.
func PowerOffVerified(ctx context.Context, dev Device, verify, poll time.Duration, hold Hold) (alreadyOff bool, err error) {
	if state, err := dev.PowerState(ctx); err == nil && state == PowerOff {
		return true, nil
	}
	sctx, done := ctx, context.CancelFunc(func() {})
	if hold != nil {
		if sctx, done, err = hold(ctx); err != nil {
			return false, err
		}
	}
	err = dev.PowerOff(sctx)
	done()
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, verify)
	defer cancel()
	for {
		state, err := dev.PowerState(ctx)
		if err == nil && state == PowerOff {
			return false, nil
		}
		select {
		case <-time.After(poll):
		case <-ctx.Done():
			return false, fmt.Errorf("power-off not confirmed within %s (last read: %v %v)", verify, state, err)
		}
	}
}
