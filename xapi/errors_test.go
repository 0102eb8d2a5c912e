package xapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
)

func TestErrorString(t *testing.T) {
	for name, tc := range map[string]struct {
		err     *Error
		want    string
		mustNot string
	}{
		"no params":        {&Error{Code: "HA_NOT_ENABLED"}, "xapi: HA_NOT_ENABLED", ""},
		"params":           {&Error{Code: "HOST_IS_SLAVE", Params: []string{"10.0.0.1"}}, "xapi: HOST_IS_SLAVE [10.0.0.1]", ""},
		"session invalid":  {&Error{Code: "SESSION_INVALID", Params: []string{"OpaqueRef:s3cr3t"}}, "xapi: SESSION_INVALID [[redacted]]", "s3cr3t"},
		"not registered":   {&Error{Code: "SESSION_NOT_REGISTERED", Params: []string{"OpaqueRef:s3cr3t"}}, "xapi: SESSION_NOT_REGISTERED [[redacted]]", "s3cr3t"},
		"handle session":   {&Error{Code: "HANDLE_INVALID", Params: []string{"session", "OpaqueRef:s3cr3t"}}, "xapi: HANDLE_INVALID [session, [redacted]]", "s3cr3t"},
		"handle host kept": {&Error{Code: "HANDLE_INVALID", Params: []string{"host", "OpaqueRef:h1"}}, "xapi: HANDLE_INVALID [host, OpaqueRef:h1]", ""},
	} {
		t.Run(name, func(t *testing.T) {
			for _, s := range []string{tc.err.Error(), fmt.Sprintf("%v", tc.err), fmt.Sprintf("%+v", tc.err), fmt.Sprintf("%#v", tc.err), fmt.Sprintf("%s", error(tc.err))} {
				if s != tc.want {
					t.Errorf("got %q, want %q", s, tc.want)
				}
			}
			if tc.mustNot != "" && len(tc.err.Params) > 0 && !strings.Contains(strings.Join(tc.err.Params, ""), tc.mustNot) {
				t.Errorf("Error() must not modify Params: %q", tc.err.Params)
			}
		})
	}
	var nilErr *Error
	_ = nilErr.Error() // must not panic
}

func TestErrorHelpers(t *testing.T) {
	slave := fmt.Errorf("pool.get_all_records on h: %w", &Error{Code: CodeHostIsSlave, Params: []string{"10.0.0.7"}})
	transport := &TransportError{URL: "https://h/jsonrpc", Method: "m", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}
	canceled := &TransportError{URL: "https://h/jsonrpc", Method: "m", Err: context.Canceled}
	deadline := &TransportError{URL: "https://h/jsonrpc", Method: "m", Err: context.DeadlineExceeded}

	type want struct{ slave, session, emergency, auth, unreachable bool }
	for name, tc := range map[string]struct {
		err  error
		want want
	}{
		"nil":            {nil, want{}},
		"plain":          {errors.New("x"), want{}},
		"slave":          {slave, want{slave: true}},
		"session":        {&Error{Code: CodeSessionInvalid}, want{session: true}},
		"booting":        {&Error{Code: CodeHostStillBooting}, want{emergency: true}},
		"no mgmt ip":     {&Error{Code: CodeHostHasNoManagementIP}, want{emergency: true}},
		"statefile":      {fmt.Errorf("wrapped: %w", &Error{Code: CodeHAHostCannotAccessStatefile}), want{emergency: true}},
		"auth":           {&Error{Code: CodeSessionAuthenticationFailed, Params: []string{"root", "x"}}, want{auth: true}},
		"transport":      {fmt.Errorf("ctx: %w", transport), want{unreachable: true}},
		"deadline":       {deadline, want{unreachable: true}},
		"canceled":       {canceled, want{}},
		"other api code": {&Error{Code: CodeHostOffline}, want{}},
	} {
		t.Run(name, func(t *testing.T) {
			addr, isSlave := MasterAddress(tc.err)
			got := want{isSlave, IsSessionInvalid(tc.err), IsEmergency(tc.err), IsAuthFailed(tc.err), IsUnreachable(tc.err)}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if isSlave && addr != "10.0.0.7" {
				t.Fatalf("master address %q", addr)
			}
		})
	}

	if !IsCode(slave, CodeHostIsSlave) || IsCode(slave, CodeHostOffline) || IsCode(nil, "") {
		t.Fatal("IsCode")
	}
	if _, ok := MasterAddress(&Error{Code: CodeHostIsSlave}); ok {
		t.Fatal("HOST_IS_SLAVE without params has no master address")
	}
	if e, ok := AsError(slave); !ok || e.Code != CodeHostIsSlave {
		t.Fatal("AsError through wrapping")
	}
	if !errors.Is(transport, transport.Err) || errors.Unwrap(transport) != transport.Err {
		t.Fatal("TransportError must unwrap")
	}
	if s := transport.Error(); !strings.Contains(s, "https://h/jsonrpc") || !strings.Contains(s, "connection refused") || !strings.Contains(s, "m") {
		t.Fatalf("TransportError string %q", s)
	}
}
