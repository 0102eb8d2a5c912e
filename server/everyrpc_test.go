package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	pb "github.com/cloudstack-xenha/xenha-bridge/proto/cloudstack/xenha/v1"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// everyRPC calls each method of XenHAService, found in its descriptor so
// that a new RPC cannot escape the security tests, with an empty request.
func everyRPC(t *testing.T, ctx context.Context, conn grpc.ClientConnInterface, check func(method string, err error)) {
	t.Helper()
	sd := pb.File_cloudstack_xenha_v1_xenha_proto.Services().ByName("XenHAService")
	if sd == nil || sd.Methods().Len() < 12 {
		t.Fatalf("service descriptor: %v", sd)
	}
	for i := range sd.Methods().Len() {
		md := sd.Methods().Get(i)
		full := "/" + string(sd.FullName()) + "/" + string(md.Name())
		req := dynamicpb.NewMessage(md.Input())
		if md.IsStreamingServer() {
			s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, full)
			if err == nil {
				err = s.SendMsg(req)
			}
			if err == nil {
				err = s.CloseSend()
			}
			if err == nil {
				err = s.RecvMsg(dynamicpb.NewMessage(md.Output()))
			}
			check(full, err)
			continue
		}
		check(full, conn.Invoke(ctx, full, req, dynamicpb.NewMessage(md.Output())))
	}
}

var _ protoreflect.MethodDescriptor

func TestEveryRPCRefusesAnUnauthenticatedCaller(t *testing.T) {
	f := newFixture(t, Options{Token: "tok-every-rpc"}, xenha.Options{})
	n := 0
	for _, tok := range []string{"", "wrong"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if tok != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
		}
		everyRPC(t, ctx, f.conn, func(method string, err error) {
			n++
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("%s with token %q: %v", method, tok, err)
			}
		})
		cancel()
	}
	// With the token, nothing is refused for want of it.
	ctx, cancel := context.WithTimeout(withToken(context.Background(), "tok-every-rpc"), 5*time.Second)
	defer cancel()
	everyRPC(t, ctx, f.conn, func(method string, err error) {
		if status.Code(err) == codes.Unauthenticated {
			t.Errorf("%s with the token: %v", method, err)
		}
	})
	if n < 24 {
		t.Fatalf("only %d calls tried", n)
	}
}

func TestEveryRPCNeedsTheClientCertificateUnderMTLS(t *testing.T) {
	ca, caKey, _ := issue(t, "test CA", true, nil, nil)
	_, _, serverCert := issue(t, "bridge", false, ca, caKey)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	m := xenha.NewManager(xenha.Options{})
	defer m.Close()
	srv := New(NewService(m, nil), Options{TLS: &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: roots}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Stop(time.Second)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(
		&tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	everyRPC(t, ctx, conn, func(method string, err error) {
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s without a client certificate: %v", method, err)
		}
	})
}

func TestBadInputGetsAPreciseCodeAndChangesNothing(t *testing.T) {
	f := newFixture(t, Options{MaxMessageBytes: 64 << 10}, xenha.Options{}).withSim(3)
	before, _ := f.c.HAMode(f.ctx(), &pb.HAModeRequest{Pool: "sim"})
	big := make([]string, 0, 2000)
	for range 2000 {
		big = append(big, "https://10.0.0.1/"+string(make([]byte, 64)))
	}
	cases := map[string]struct {
		call func(ctx context.Context) error
		want codes.Code
	}{
		"oversized message": {func(ctx context.Context) error {
			_, err := f.c.AttachPool(ctx, &pb.AttachPoolRequest{Name: "x", Members: big, Username: "u", Password: "p"})
			return err
		}, codes.ResourceExhausted},
		"unknown pool": {func(ctx context.Context) error {
			_, err := f.c.HAMode(ctx, &pb.HAModeRequest{Pool: "00000000-0000-0000-0000-000000000000"})
			return err
		}, codes.NotFound},
		"malformed pool id": {func(ctx context.Context) error {
			_, err := f.c.HAMode(ctx, &pb.HAModeRequest{Pool: string(make([]byte, 300))})
			return err
		}, codes.InvalidArgument},
		"malformed host": {func(ctx context.Context) error {
			_, err := f.c.FenceHost(ctx, &pb.FenceHostRequest{Pool: "sim", Host: "../../etc/passwd"})
			return err
		}, codes.Unimplemented}, // no fencer in this fixture, after validation
		"negative storage timeout": {func(ctx context.Context) error {
			_, err := f.c.AttachPool(ctx, &pb.AttachPoolRequest{Name: "y", Members: []string{"https://10.0.0.1"}, Username: "u", Password: "p",
				StorageTimeout: durationpbNew(-time.Minute)})
			return err
		}, codes.InvalidArgument},
		"a resume point from the future": {func(ctx context.Context) error {
			s, err := f.c.PoolEvents(ctx, &pb.PoolEventsRequest{AfterSequence: 1 << 60})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		}, codes.InvalidArgument},
		"an absurdly short deadline": {func(context.Context) error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
			defer cancel()
			time.Sleep(time.Millisecond)
			_, err := f.c.ListPools(ctx, &pb.ListPoolsRequest{})
			return err
		}, codes.DeadlineExceeded},
	}
	for name, tc := range cases {
		if got := status.Code(tc.call(f.ctx())); got != tc.want {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
	after, _ := f.c.HAMode(f.ctx(), &pb.HAModeRequest{Pool: "sim"})
	list, _ := f.c.ListPools(f.ctx(), &pb.ListPoolsRequest{})
	if after.GetEpoch() != before.GetEpoch() || len(list.GetPools()) != 1 {
		t.Fatalf("bad input changed state: epoch %d→%d, %d pools", before.GetEpoch(), after.GetEpoch(), len(list.GetPools()))
	}
}
