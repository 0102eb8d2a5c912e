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
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
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

// FuzzRequests sends arbitrary bytes, as the request of every RPC, through
// the real gRPC server (its codec and interceptors) and checks the codes
// the API promises:
//   - without the token: UNAUTHENTICATED, with the message and details an
//     empty request gets, whatever the bytes (nothing else is learned);
//   - with it: never UNKNOWN or INTERNAL, no panic; bytes that do not
//     decode as the request are INVALID_ARGUMENT.
func FuzzRequests(f *testing.F) {
	const token = "tok-fuzz-1"
	seeds := []proto.Message{
		&pb.HAModeRequest{Pool: "sim"},
		&pb.AttachPoolRequest{Name: "p", Members: []string{"https://10.0.0.1"}, Username: "root", Password: "x", Policy: pb.Policy_POLICY_AUTO},
		&pb.AttachPoolRequest{Name: "bad name", Members: []string{"ftp://x"}, StorageTimeout: durationpb.New(-time.Second)},
		&pb.AttachPoolRequest{Name: "q", Members: []string{"http://10.0.0.1:8080/?pw=x"}, Username: "root", Password: "x", Tls: &pb.XAPITLS{AllowPlainHttp: true}},
		&pb.FenceHostRequest{Pool: "p", Host: "h", RequestId: "r", ExpectedEpoch: 7, Bmc: &pb.BMC{Driver: "ipmi", Address: "1.2.3.4"}},
		&pb.ElectMasterRequest{Pool: "p", ExcludeHosts: []string{"a", "b"}, OperatorOverride: true},
		&pb.EnableXenHARequest{Pool: "p", Timeout: durationpb.New(time.Second)},
		&pb.ClassifyHostRequest{Url: "https://10.0.0.9", Username: "root", Password: "pw"},
		&pb.JournalRequest{Pool: "p", Limit: -5},
		&pb.PoolEventsRequest{Pool: "p", AfterSequence: 1 << 40},
	}
	methods := xenhaService().Methods()
	index := map[protoreflect.FullName]int{}
	for i := range methods.Len() {
		index[methods.Get(i).Input().FullName()] = i
	}
	for _, m := range seeds {
		b, _ := proto.Marshal(m)
		f.Add(uint8(index[m.ProtoReflect().Descriptor().FullName()]), b)
	}
	for i := range methods.Len() {
		f.Add(uint8(i), notProtobuf)
		f.Add(uint8(i), []byte{0x0a, 0x05, 'a'}) // a string field cut short
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
	srv := New(svc, Options{Token: token})
	conn := dialServer(f, srv)

	// What an unauthenticated caller gets for an empty request.
	refusal := map[int]*status.Status{}
	for i := range methods.Len() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		refusal[i] = status.Convert(rawCall(ctx, conn, methods.Get(i), nil))
		cancel()
		if refusal[i].Code() != codes.Unauthenticated {
			f.Fatalf("%s without a token: %v", methods.Get(i).Name(), refusal[i])
		}
	}

	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		i := int(which) % methods.Len()
		md := methods.Get(i)
		timeout := time.Second
		if md.IsStreamingServer() {
			timeout = 100 * time.Millisecond // PoolEvents streams until its deadline
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()

		st := status.Convert(rawCall(ctx, conn, md, b))
		if want := refusal[i]; st.Code() != codes.Unauthenticated || st.Message() != want.Message() || len(st.Details()) != 0 {
			t.Fatalf("%s without a token: %v, want what an empty request gets: %v", md.Name(), st, want)
		}

		err := rawCall(withToken(ctx, token), conn, md, b)
		if err == nil {
			return
		}
		st = status.Convert(err)
		if st.Code() == codes.Unknown || st.Code() == codes.Internal {
			t.Fatalf("%s: not a deliberate status: %v", md.Name(), err)
		}
		mt, _ := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
		if proto.Unmarshal(b, mt.New().Interface()) != nil && st.Code() != codes.InvalidArgument {
			t.Fatalf("%s: bytes that do not decode got %v, want InvalidArgument", md.Name(), err)
		}
	})
}
