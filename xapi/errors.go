package xapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Error codes this project reacts to. The datamodel has many more; any code
// can be matched with IsCode.
const (
	CodeHostIsSlave                       = "HOST_IS_SLAVE"
	CodeSessionInvalid                    = "SESSION_INVALID"
	CodeSessionAuthenticationFailed       = "SESSION_AUTHENTICATION_FAILED"
	CodeHostStillBooting                  = "HOST_STILL_BOOTING"
	CodeHostHasNoManagementIP             = "HOST_HAS_NO_MANAGEMENT_IP"
	CodeHAHostCannotAccessStatefile       = "HA_HOST_CANNOT_ACCESS_STATEFILE"
	CodeHostOffline                       = "HOST_OFFLINE"
	CodeHAIsEnabled                       = "HA_IS_ENABLED"
	CodeHANotEnabled                      = "HA_NOT_ENABLED"
	CodeHostIsLive                        = "HOST_IS_LIVE"
	CodeCannotResetControlDomain          = "CANNOT_RESET_CONTROL_DOMAIN"
	CodeSRNoPBDs                          = "SR_NO_PBDS"
	CodeCannotCreateStateFile             = "CANNOT_CREATE_STATE_FILE"
	CodeEventsLost                        = "EVENTS_LOST"
	CodeEventFromTokenParseFailure        = "EVENT_FROM_TOKEN_PARSE_FAILURE"
	CodeSessionNotRegistered              = "SESSION_NOT_REGISTERED"
	CodeHostNotDisabled                   = "HOST_NOT_DISABLED"
	CodeJoiningHostCannotContainSharedSRs = "JOINING_HOST_CANNOT_CONTAIN_SHARED_SRS"
	CodeDomainExists                      = "DOMAIN_EXISTS"
	CodeMessageMethodUnknown              = "MESSAGE_METHOD_UNKNOWN"
	CodeHandleInvalid                     = "HANDLE_INVALID"
	CodeInvalidValue                      = "INVALID_VALUE"
)

// Error is a failure reported by the XenAPI: the host understood the call
// and said no.
type Error struct {
	Code   string
	Params []string
}

// Error renders the code and params, with session refs redacted: a session
// ref is a bearer token.
func (e *Error) Error() string {
	if e == nil {
		return "xapi: <nil error>"
	}
	params := e.safeParams()
	if len(params) == 0 {
		return "xapi: " + e.Code
	}
	return "xapi: " + e.Code + " [" + strings.Join(params, ", ") + "]"
}

// GoString keeps %#v as safe as %v.
func (e *Error) GoString() string { return e.Error() }

// safeParams hides the params that are known to carry session refs.
func (e *Error) safeParams() []string {
	out := make([]string, len(e.Params))
	copy(out, e.Params)
	switch e.Code {
	case CodeSessionInvalid, CodeSessionNotRegistered:
		for i := range out {
			out[i] = redacted
		}
	case CodeHandleInvalid: // [class, ref]
		if len(out) > 1 && strings.EqualFold(out[0], "session") {
			out[1] = redacted
		}
	}
	return out
}

// TransportError means no XenAPI answer was obtained: the host could not be
// reached, timed out, or answered something that is not a XenAPI response
// (an HTML error page, a truncated body). It is distinct from *Error so a
// caller can tell "host unreachable" from "the API said no".
type TransportError struct {
	URL    string // endpoint, never with userinfo
	Method string // XenAPI method, e.g. "host.get_all_records"
	Err    error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("xapi transport: %s to %s: %v", e.Method, e.URL, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// ErrClosed is returned by calls on a closed Client or Pool.
var ErrClosed = errors.New("xapi: closed")

// AsError returns the API failure in err's chain, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) && e != nil {
		return e, true
	}
	return nil, false
}

// IsCode reports whether err is an API failure with the given code.
func IsCode(err error, code string) bool {
	e, ok := AsError(err)
	return ok && e.Code == code
}

// MasterAddress returns the master's address from a HOST_IS_SLAVE failure.
func MasterAddress(err error) (string, bool) {
	e, ok := AsError(err)
	if !ok || e.Code != CodeHostIsSlave || len(e.Params) == 0 || e.Params[0] == "" {
		return "", false
	}
	return e.Params[0], true
}

// IsSessionInvalid reports a session that expired or was logged out.
func IsSessionInvalid(err error) bool { return IsCode(err, CodeSessionInvalid) }

// IsAuthFailed reports rejected credentials.
func IsAuthFailed(err error) bool { return IsCode(err, CodeSessionAuthenticationFailed) }

// IsEmergency reports the errors a slave in emergency mode (its master is
// gone) raises before dispatching any non-emergency call, login included.
func IsEmergency(err error) bool {
	e, ok := AsError(err)
	if !ok {
		return false
	}
	switch e.Code {
	case CodeHostStillBooting, CodeHostHasNoManagementIP, CodeHAHostCannotAccessStatefile:
		return true
	}
	return false
}

// ErrorKind names what kind of failure err is, for counting: the XenAPI
// error code of an API failure (HOST_IS_SLAVE, SESSION_INVALID, ...; a code
// that does not look like one is "OTHER_API_ERROR"), or for the failures
// that are not API answers "canceled", "timeout", "malformed", "closed",
// "unreachable" or "error". Nil is "".
func ErrorKind(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := AsError(err); ok {
		if isCodeLike(e.Code) {
			return e.Code
		}
		return "OTHER_API_ERROR"
	}
	var te *TransportError
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, ErrMalformedResponse):
		return "malformed"
	case errors.Is(err, ErrClosed):
		return "closed"
	case errors.As(err, &te):
		return "unreachable"
	}
	return "error"
}

// isCodeLike accepts what xapi's error codes look like (upper case words
// joined by '_'), so that a hostile server cannot make up label values.
func isCodeLike(code string) bool {
	if code == "" || len(code) > 64 {
		return false
	}
	for _, r := range code {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '_' {
			return false
		}
	}
	return true
}

// IsUnreachable reports a transport failure: the host did not give a
// XenAPI answer. A call abandoned because the caller cancelled its context
// says nothing about the host and is not counted (a deadline is).
func IsUnreachable(err error) bool {
	var te *TransportError
	return errors.As(err, &te) && !errors.Is(err, context.Canceled)
}
