package membership

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// XAPIError is a change XAPI refused: which call, the host the refusal is
// about, and XAPI's failure (code and params). What it means for the
// caller (gRPC code, explanation) is decided in one place, the server's
// error table, so that every refusal reads the same way.
type XAPIError struct {
	Call string // the XAPI call, e.g. "pool.enable_ha"
	// Host names the host the refusal is about: the one XAPI names in its
	// params when it is a pool member (HOST_OFFLINE [ref]), otherwise the
	// host the call was made for. "name (uuid)" when known.
	Host     string
	HostUUID string
	Err      *xapi.Error
}

func (e *XAPIError) Error() string {
	return fmt.Sprintf("%s refused by XAPI on host %s: %s", e.Call, e.Host, e.Err.Error())
}

func (e *XAPIError) Unwrap() error { return e.Err }

// Code is XAPI's error code.
func (e *XAPIError) Code() string { return e.Err.Code }

// explain turns the failure of a mutating XAPI call into an error that
// names the call and the host: an API refusal becomes an *XAPIError, a
// host that does not answer ErrUnreachable. host is the host the call was
// made for; a host named in XAPI's params wins when it is a pool member.
func explain(err error, call string, host xenha.HostView, view *xenha.PoolView) error {
	if err == nil {
		return nil
	}
	if e, ok := xapi.AsError(err); ok {
		out := &XAPIError{Call: call, Err: e}
		if view != nil {
			for _, p := range e.Params {
				if !strings.HasPrefix(p, "OpaqueRef:") {
					continue
				}
				for _, h := range view.Hosts {
					if h.Ref == p {
						host = h
					}
				}
			}
		}
		out.Host, out.HostUUID = hostLabel(host), host.UUID
		return out
	}
	if xapi.IsUnreachable(err) || errors.Is(err, xapi.ErrMasterLost) {
		return fmt.Errorf("%w: %s for host %s: %v", ErrUnreachable, call, hostLabel(host), err)
	}
	return err
}

func hostLabel(h xenha.HostView) string {
	switch {
	case h.Name != "" && h.UUID != "":
		return fmt.Sprintf("%s (%s)", h.Name, h.UUID)
	case h.Name != "":
		return h.Name
	case h.UUID != "":
		return h.UUID
	case h.Address != "":
		return h.Address
	}
	return "unknown"
}
