package server

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/cloudstack-xenha/xenha-bridge/elect"
	"github.com/cloudstack-xenha/xenha-bridge/fencing"
	"github.com/cloudstack-xenha/xenha-bridge/membership"
	pb "github.com/cloudstack-xenha/xenha-bridge/proto/cloudstack/xenha/v1"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

func durationpbNew(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

// noNetwork fails every request at once: fuzzed URLs must never be dialled.
type noNetwork struct{}

func (noNetwork) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("no network in the fuzz test")
}

// FuzzRequests feeds arbitrary bytes, as each request message, to every
// unary handler: no panic, and every error is a deliberate status (never
// Unknown or Internal).
func FuzzRequests(f *testing.F) {
	seeds := []proto.Message{
		&pb.HAModeRequest{Pool: "sim"},
		&pb.AttachPoolRequest{Name: "p", Members: []string{"https://10.0.0.1"}, Username: "root", Password: "x", Policy: pb.Policy_POLICY_AUTO},
		&pb.AttachPoolRequest{Name: "bad name", Members: []string{"ftp://x"}, StorageTimeout: durationpb.New(-time.Second)},
		&pb.FenceHostRequest{Pool: "p", Host: "h", RequestId: "r", ExpectedEpoch: 7, Bmc: &pb.BMC{Driver: "ipmi", Address: "1.2.3.4"}},
		&pb.ElectMasterRequest{Pool: "p", ExcludeHosts: []string{"a", "b"}, OperatorOverride: true},
		&pb.EnableXenHARequest{Pool: "p", Timeout: durationpb.New(time.Second)},
		&pb.ClassifyHostRequest{Url: "https://10.0.0.9", Username: "root", Password: "pw"},
		&pb.JournalRequest{Pool: "p", Limit: -5},
	}
	for i, m := range seeds {
		b, _ := proto.Marshal(m)
		f.Add(uint8(i), b)
	}
	xo := xapi.Options{Timeout: 100 * time.Millisecond, ProbeTimeout: 50 * time.Millisecond, HTTPClient: &http.Client{Transport: noNetwork{}}}
	m := xenha.NewManager(xenha.Options{XAPI: xo, AttachWait: time.Millisecond})
	f.Cleanup(m.Close)
	svc := NewService(m, nil,
		WithFencing(fencing.New(fencing.Options{}), func(driver, address, user, pass string) (fencing.Device, error) {
			return nil, errors.New("no BMC in the fuzz test")
		}),
		WithElection(elect.New(elect.Options{})),
		WithMembership(&membership.Service{Pools: m, XAPI: xo, Wait: time.Millisecond}))
	calls := []func(ctx context.Context, b []byte) error{
		func(ctx context.Context, b []byte) error { return call(b, &pb.HAModeRequest{}, svc.HAMode, ctx) },
		func(ctx context.Context, b []byte) error {
			return call(b, &pb.AttachPoolRequest{}, svc.AttachPool, ctx)
		},
		func(ctx context.Context, b []byte) error {
			return call(b, &pb.DetachPoolRequest{}, svc.DetachPool, ctx)
		},
		func(ctx context.Context, b []byte) error { return call(b, &pb.ListPoolsRequest{}, svc.ListPools, ctx) },
		func(ctx context.Context, b []byte) error { return call(b, &pb.FenceHostRequest{}, svc.FenceHost, ctx) },
		func(ctx context.Context, b []byte) error {
			return call(b, &pb.ElectMasterRequest{}, svc.ElectMaster, ctx)
		},
		func(ctx context.Context, b []byte) error { return call(b, &pb.JournalRequest{}, svc.Journal, ctx) },
		func(ctx context.Context, b []byte) error {
			return call(b, &pb.ClassifyHostRequest{}, svc.ClassifyHost, ctx)
		},
		func(ctx context.Context, b []byte) error { return call(b, &pb.JoinHostRequest{}, svc.JoinHost, ctx) },
		func(ctx context.Context, b []byte) error { return call(b, &pb.EjectHostRequest{}, svc.EjectHost, ctx) },
		func(ctx context.Context, b []byte) error {
			return call(b, &pb.EnableXenHARequest{}, svc.EnableXenHA, ctx)
		},
		func(ctx context.Context, b []byte) error {
			return call(b, &pb.DisableXenHARequest{}, svc.DisableXenHA, ctx)
		},
	}
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := calls[int(which)%len(calls)](ctx, b)
		if err == nil {
			return
		}
		st, ok := status.FromError(err)
		if !ok || st.Code() == codes.Unknown || st.Code() == codes.Internal {
			t.Fatalf("call %d: not a deliberate status: %v", int(which)%len(calls), err)
		}
	})
}

// call decodes b into req (skipping what does not decode, as gRPC would
// refuse it) and runs the handler.
func call[Req proto.Message, Resp any](b []byte, req Req, h func(context.Context, Req) (Resp, error), ctx context.Context) error {
	if proto.Unmarshal(b, req) != nil {
		return nil
	}
	_, err := h(ctx, req)
	return err
}
