package server

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/cloudstack-xenha/xenha-bridge/config"
	pb "github.com/cloudstack-xenha/xenha-bridge/proto/cloudstack/xenha/v1"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// rawCodec sends and receives bytes as they are: what a client that does
// not speak protobuf, or a hostile one, sends.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string                    { return "proto" }
func rawMethods() protoreflect.MethodDescriptors { return xenhaService().Methods() }
func xenhaService() protoreflect.ServiceDescriptor {
	return pb.File_cloudstack_xenha_v1_xenha_proto.Services().ByName("XenHAService")
}
func fullMethod(md protoreflect.MethodDescriptor) string {
	return "/" + string(xenhaService().FullName()) + "/" + string(md.Name())
}

// rawCall sends body as the request of a method, unary or server stream,
// and returns the call's error (nil for a stream that answered a message).
func rawCall(ctx context.Context, conn *grpc.ClientConn, md protoreflect.MethodDescriptor, body []byte) error {
	if md.IsStreamingServer() {
		s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, fullMethod(md), grpc.ForceCodec(rawCodec{}))
		if err != nil {
			return err
		}
		if err := s.SendMsg(&body); err != nil {
			return err
		}
		if err := s.CloseSend(); err != nil {
			return err
		}
		var out []byte
		return s.RecvMsg(&out)
	}
	var out []byte
	return conn.Invoke(ctx, fullMethod(md), &body, &out, grpc.ForceCodec(rawCodec{}))
}

// notProtobuf does not decode as any message: a field 1 of wire type 7.
var notProtobuf = []byte{0x0f, 0xff, 0xff}

func TestARequestThatDoesNotDecodeIsInvalidArgumentOnlyOnceAuthenticated(t *testing.T) {
	const token = "tok-decode-7"
	f := newFixture(t, Options{Token: token}, xenha.Options{})
	for i := range rawMethods().Len() {
		md := rawMethods().Get(i)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		// Without the token: Unauthenticated, and nothing more than an
		// empty request would have got.
		err := rawCall(ctx, f.conn, md, notProtobuf)
		want := rawCall(ctx, f.conn, md, nil)
		if status.Code(err) != codes.Unauthenticated || status.Convert(err).Message() != status.Convert(want).Message() ||
			len(status.Convert(err).Details()) != 0 {
			t.Errorf("%s, garbage without a token: %v (an empty request gets %v)", md.Name(), err, want)
		}
		// With it: InvalidArgument.
		err = rawCall(withToken(ctx, token), f.conn, md, notProtobuf)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), string(md.Input().FullName())) {
			t.Errorf("%s, garbage with the token: %v", md.Name(), err)
		}
		cancel()
	}
	// Health needs no token: its garbage is InvalidArgument at once.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out []byte
	body := notProtobuf
	err := f.conn.Invoke(ctx, "/grpc.health.v1.Health/Check", &body, &out, grpc.ForceCodec(rawCodec{}))
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("health, garbage: %v", err)
	}
	if h, err := healthpb.NewHealthClient(f.conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health after garbage: %v %v", h, err)
	}
}

func TestTheBearerTokenIsComparedExactly(t *testing.T) {
	const token = "tok-Exact-42"
	f := newFixture(t, Options{Token: token}, xenha.Options{})
	call := func(values ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, v := range values {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", v)
		}
		_, err := f.c.ListPools(ctx, &pb.ListPoolsRequest{})
		return err
	}
	if err := call("Bearer " + token); err != nil {
		t.Fatalf("the token: %v", err)
	}
	if err := call("bearer " + token); err != nil {
		t.Fatalf("the scheme is case-insensitive (RFC 7235): %v", err)
	}
	for _, v := range [][]string{
		{"Bearer  " + token + " "},
		{"Bearer  " + token},
		{"Bearer " + token + " "},
		{"Bearer " + token + "x"},
		{"Bearer " + token[:len(token)-1]},
		{"Bearer " + strings.ToUpper(token)},
		{"Basic " + token},
		{token},
		{"Bearer"},
		{"Bearer "},
		{"Bearer wrong", "Bearer " + token},
		{"Bearer " + token, "Bearer wrong"},
	} {
		err := call(v...)
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("authorization %q: %v", v, err)
		}
		if err != nil && strings.Contains(err.Error(), token) {
			t.Errorf("authorization %q: the token is echoed: %v", v, err)
		}
	}
}

func TestAttachPoolValidatesMembersAsTheConfigurationDoes(t *testing.T) {
	f := newFixture(t, Options{}, xenha.Options{})
	const secret = "Pa55-in-URL"
	for _, tc := range []struct {
		members []string
		plain   bool
		field   string
	}{
		{[]string{"http://10.0.0.1:8080/?pw=" + secret}, true, "members[0]"},
		{[]string{"https://10.0.0.1/?pw=" + secret}, false, "members[0]"},
		{[]string{"https://10.0.0.1", "https://10.0.0.2/?" + secret}, false, "members[1]"},
		{[]string{"https://10.0.0.1/#" + secret}, false, "members[0]"},
		{[]string{"https://root:" + secret + "@10.0.0.1"}, false, "members[0]"},
		{[]string{"https://10.0.0.1/?"}, false, "members[0]"},
		{[]string{"https://10.0.0.1:0"}, false, "members[0]"},
		{[]string{"10.0.0.1"}, false, "members[0]"},
		{[]string{"https://10.0.0.1", "https://10.0.0.1:443/"}, false, "members[1]"},
		{[]string{"http://10.0.0.1"}, false, "members[0]"},
		{[]string{"https://bad_host!"}, false, "members[0]"},
	} {
		req := &pb.AttachPoolRequest{Name: "p", Members: tc.members, Username: "root", Password: "pw", Tls: &pb.XAPITLS{AllowPlainHttp: tc.plain}}
		_, err := f.c.AttachPool(f.ctx(), req)
		st := wantCode(t, err, codes.InvalidArgument)
		if badField(st) != tc.field {
			t.Errorf("%q: field %q in %v", tc.members, badField(st), err)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(detailText(st), secret) {
			t.Errorf("%q: the secret is echoed: %v", tc.members, err)
		}
		// One validator: the configuration says the same.
		p := config.NewPool("p", tc.members, "root", "pw")
		p.TLS.AllowPlainHTTP = tc.plain
		var ce *config.Error
		if cerr := p.Validate(); cerr == nil || !errors.As(cerr, &ce) || ce.Field != tc.field || !strings.Contains(st.Message(), ce.Msg) {
			t.Errorf("%q: the configuration says %v, AttachPool %v", tc.members, cerr, err)
		}
	}
	list, err := f.c.ListPools(f.ctx(), &pb.ListPoolsRequest{})
	if err != nil || len(list.GetPools()) != 0 {
		t.Fatalf("a refused pool was stored: %v %v", list, err)
	}
}

func detailText(st *status.Status) string {
	var b strings.Builder
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				b.WriteString(v.GetField() + " " + v.GetDescription())
			}
		}
	}
	return b.String()
}
