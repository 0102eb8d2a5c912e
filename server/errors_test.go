package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudstack-xenha/xenha-bridge/membership"
	pb "github.com/cloudstack-xenha/xenha-bridge/proto/cloudstack/xenha/v1"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xapisim"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// The XAPI refusals the simulator raises on the mutating calls the bridge
// makes (pool.join, pool.eject, pool.enable_ha, pool.disable_ha), with
// the gRPC code each must map to. Every one must be in the table.
var simRefusals = map[string]codes.Code{
	"HOST_OFFLINE":                                 codes.FailedPrecondition,
	"SR_NO_PBDS":                                   codes.FailedPrecondition,
	"CANNOT_CREATE_STATE_FILE":                     codes.FailedPrecondition,
	"HA_HOST_CANNOT_ACCESS_STATEFILE":              codes.FailedPrecondition,
	"HA_IS_ENABLED":                                codes.FailedPrecondition,
	"HA_NOT_ENABLED":                               codes.FailedPrecondition,
	"INVALID_VALUE":                                codes.InvalidArgument,
	"FIELD_TYPE_ERROR":                             codes.InvalidArgument,
	"HANDLE_INVALID":                               codes.Aborted,
	"HOST_NOT_DISABLED":                            codes.FailedPrecondition,
	"HOST_IN_USE":                                  codes.FailedPrecondition,
	"OPERATION_NOT_ALLOWED":                        codes.FailedPrecondition,
	"SESSION_AUTHENTICATION_FAILED":                codes.FailedPrecondition,
	"JOINING_HOST_CONNECTION_FAILED":               codes.Unavailable,
	"JOINING_HOST_CANNOT_BE_MASTER_OF_OTHER_HOSTS": codes.FailedPrecondition,
	"JOINING_HOST_CANNOT_CONTAIN_SHARED_SRS":       codes.FailedPrecondition,
	"JOINING_HOST_CANNOT_HAVE_RUNNING_VMS":         codes.FailedPrecondition,
	"HOST_IS_SLAVE":                                codes.Unavailable,
	"HOST_STILL_BOOTING":                           codes.Unavailable,
	"SESSION_INVALID":                              codes.Unavailable,
	"MESSAGE_METHOD_UNKNOWN":                       codes.Unimplemented,
	"MESSAGE_PARAMETER_COUNT_MISMATCH":             codes.Unimplemented,
	"UUID_INVALID":                                 codes.NotFound,
}

func TestEveryXAPIRefusalMapsToAClearError(t *testing.T) {
	for code, want := range simRefusals {
		if r, ok := xapiRefusals[code]; !ok || r.code != want {
			t.Errorf("%s: the table has %v (listed %v), want %s", code, r.code, ok, want)
		}
	}
	const host, hostUUID = "xs-2 (6d1c0a9e-0000-4000-8000-000000000002)", "6d1c0a9e-0000-4000-8000-000000000002"
	codesSeen := map[string]bool{"SOME_FUTURE_XAPI_ERROR": true} // not in the table: still named
	for code := range xapiRefusals {
		codesSeen[code] = true
	}
	for code := range codesSeen {
		t.Run(code, func(t *testing.T) {
			want := codes.FailedPrecondition
			if r, ok := xapiRefusals[code]; ok {
				want = r.code
			}
			if want == codes.Internal || want == codes.Unknown || want == codes.OK {
				t.Fatalf("%s maps to %s", code, want)
			}
			if r := xapiRefusals[code]; code != "SOME_FUTURE_XAPI_ERROR" && strings.TrimSpace(r.why) == "" {
				t.Fatalf("%s has no explanation", code)
			}
			xe := &xapi.Error{Code: code, Params: []string{"OpaqueRef:5f1e"}}
			err := fmt.Errorf("enable: %w", &membership.XAPIError{Call: "pool.enable_ha", Host: host, HostUUID: hostUUID, Err: xe})
			st, ok := status.FromError(toStatus(err))
			if !ok || st.Code() != want {
				t.Fatalf("code %v, want %s: %v", st.Code(), want, st.Message())
			}
			says := []string{"pool.enable_ha", code, host, "OpaqueRef:5f1e"}
			if code == xapi.CodeSessionInvalid { // its param is a session: a bearer token, never shown
				says = says[:3]
				if strings.Contains(st.Message(), "OpaqueRef:5f1e") {
					t.Errorf("a session ref in %q", st.Message())
				}
			}
			for _, s := range says {
				if !strings.Contains(st.Message(), s) {
					t.Errorf("message %q does not name %q", st.Message(), s)
				}
			}
			if strings.Contains(st.Message(), "internal error") {
				t.Errorf("message %q", st.Message())
			}
			var info *errdetails.ErrorInfo
			for _, d := range st.Details() {
				if i, ok := d.(*errdetails.ErrorInfo); ok {
					info = i
				}
			}
			if info == nil || info.Reason != code || info.Domain != "xapi" || info.Metadata["xapi_code"] != code ||
				info.Metadata["host"] != host || info.Metadata["host_uuid"] != hostUUID || info.Metadata["call"] != "pool.enable_ha" {
				t.Fatalf("ErrorInfo %v", info)
			}
		})
	}
}

// A XAPI error or a XAPI that does not answer, reaching the server without
// the call and host around it, is still not "internal error".
func TestBareXAPIErrorsAreNotInternal(t *testing.T) {
	for name, tc := range map[string]struct {
		err  error
		want codes.Code
		says string
	}{
		"refusal":                {fmt.Errorf("heartbeat SR: %w", &xapi.Error{Code: "SR_NO_PBDS", Params: []string{"OpaqueRef:1"}}), codes.FailedPrecondition, "SR_NO_PBDS"},
		"unreachable":            {&xapi.TransportError{URL: "https://10.0.0.9", Method: "SR.get_all_records", Err: errors.New("connection refused")}, codes.Unavailable, "10.0.0.9"},
		"master lost":            {fmt.Errorf("do: %w", xapi.ErrMasterLost), codes.Unavailable, "master"},
		"membership unreachable": {fmt.Errorf("%w: pool.eject for host xs-1: timeout", membership.ErrUnreachable), codes.Unavailable, "xs-1"},
	} {
		st, _ := status.FromError(toStatus(tc.err))
		if st.Code() != tc.want || !strings.Contains(st.Message(), tc.says) {
			t.Errorf("%s: %s %q", name, st.Code(), st.Message())
		}
	}
}

// Through the API, on the simulator: a host the master cannot reach makes
// pool.enable_ha fail with HOST_OFFLINE; EnableXenHA answers
// FAILED_PRECONDITION naming xapi's code and the host, not "internal error".
func TestEnableXenHAOnAnOfflineHostSaysWhy(t *testing.T) {
	xo := xapi.Options{Timeout: 2 * time.Second, ProbeTimeout: 300 * time.Millisecond}
	m := xenha.NewManager(xenha.Options{XAPI: xo})
	t.Cleanup(m.Close)
	sim, err := xapisim.New(xapisim.Config{Hosts: 3, Clock: xapisim.NewFakeClock(), Seed: 3, DisableHeartbeatSelfFence: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	srv := New(NewService(m, nil, WithMembership(&membership.Service{Pools: m, XAPI: xo, Wait: 5 * time.Second, Poll: 20 * time.Millisecond})), Options{})
	conn := dialServer(t, srv)
	c := pb.NewXenHAServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	info := sim.Info()
	if _, err := c.AttachPool(ctx, &pb.AttachPoolRequest{Name: "sim", Members: sim.MemberURLs(), Username: info.Username,
		Password: info.Password, Tls: &pb.XAPITLS{AllowPlainHttp: true}}); err != nil {
		t.Fatal(err)
	}
	sim.CutLink(0, 2, true) // the bridge still reaches host 2; its master does not
	_, err = c.EnableXenHA(ctx, &pb.EnableXenHARequest{Pool: "sim"})
	st := wantCode(t, err, codes.FailedPrecondition)
	for _, s := range []string{"pool.enable_ha", "HOST_OFFLINE", info.Hosts[2].UUID} {
		if !strings.Contains(st.Message(), s) {
			t.Errorf("%q does not name %q", st.Message(), s)
		}
	}
	var info2 *errdetails.ErrorInfo
	for _, d := range st.Details() {
		if i, ok := d.(*errdetails.ErrorInfo); ok {
			info2 = i
		}
	}
	if info2 == nil || info2.Reason != "HOST_OFFLINE" || info2.Metadata["host_uuid"] != info.Hosts[2].UUID {
		t.Fatalf("ErrorInfo %v", info2)
	}
	// Powered off: xapi still says live, the bridge cannot reach it; the
	// dry run refuses, naming the host, before any XAPI call.
	sim.CutLink(0, 2, false)
	sim.PowerOff(1)
	_, err = c.EnableXenHA(ctx, &pb.EnableXenHARequest{Pool: "sim", DryRun: true})
	st = wantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(st.Message(), info.Hosts[1].UUID) || !strings.Contains(st.Message(), "does not answer the bridge") {
		t.Fatalf("dry run: %q", st.Message())
	}
}
