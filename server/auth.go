package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// authCheck lets a call in, or answers UNAUTHENTICATED.
type authCheck func(ctx context.Context) error

// The answers an unauthenticated caller gets: which credential is wanted,
// nothing about the request or the bridge.
var (
	errNeedClientCert = status.Error(codes.Unauthenticated, "a client certificate signed by the configured CA is required")
	errNeedToken      = status.Error(codes.Unauthenticated, "missing bearer token: send 'authorization: Bearer <token>'")
	errBadToken       = status.Error(codes.Unauthenticated, "invalid bearer token")
)

// authFunc returns the check every RPC but health goes through: the bearer
// token when one is configured, a verified client certificate when mTLS
// is. Neither configured: everyone is let in (the listener is loopback).
//
// The token is compared exactly: one authorization header, the scheme
// "Bearer" (in any case, RFC 7235), one space, then the token and nothing
// else; no trimming. The comparison is of SHA-256 digests, in constant
// time, so its duration says nothing about the token or its length.
func authFunc(token string, requireClientCert bool) authCheck {
	want := sha256.Sum256([]byte(token))
	return func(ctx context.Context) error {
		if requireClientCert && !hasVerifiedClientCert(ctx) {
			return errNeedClientCert
		}
		if token == "" {
			return nil
		}
		md, _ := metadata.FromIncomingContext(ctx)
		values := md.Get("authorization")
		if len(values) == 0 {
			return errNeedToken
		}
		if len(values) > 1 {
			return errBadToken
		}
		scheme, got, ok := strings.Cut(values[0], " ")
		if !ok || !strings.EqualFold(scheme, "bearer") {
			return errNeedToken
		}
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			return errBadToken
		}
		return nil
	}
}

func hasVerifiedClientCert(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	return ok && len(ti.State.VerifiedChains) > 0
}

// requestCodec is the server's codec: gRPC's protobuf codec, except that a
// request that does not decode is not refused on the spot. gRPC would
// answer INTERNAL at once, before any interceptor ran: before the caller
// is authenticated, and with the decoder's message. Such a request is
// remembered instead (its message left empty), and the gate answers it
// INVALID_ARGUMENT once the caller has been let in.
type requestCodec struct {
	encoding.CodecV2
	failed sync.Map // proto.Message (the request) → struct{}
}

func newRequestCodec() *requestCodec {
	return &requestCodec{CodecV2: encoding.GetCodecV2("proto")}
}

func (c *requestCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return err
	}
	proto.Reset(m) // nothing half-decoded reaches a handler
	c.failed.Store(m, struct{}{})
	return nil
}

// undecodable reports, once, whether the request v failed to decode.
func (c *requestCodec) undecodable(v any) bool {
	_, failed := c.failed.LoadAndDelete(v)
	return failed
}

func badRequest(v any) error {
	name := "the request message"
	if m, ok := v.(proto.Message); ok {
		name = string(m.ProtoReflect().Descriptor().FullName())
	}
	return status.Errorf(codes.InvalidArgument, "the request is not a valid %s (protobuf wire format)", name)
}

func isHealth(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/"+healthpb.Health_ServiceDesc.ServiceName+"/")
}

// gate is the interceptor that lets a call in: the caller is
// authenticated first (health excepted), and only then is a request that
// did not decode refused. An unauthenticated caller learns nothing but
// UNAUTHENTICATED, whatever it sent.
type gate struct {
	check authCheck
	codec *requestCodec
}

func (g *gate) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	undecodable := g.codec.undecodable(req)
	if !isHealth(info.FullMethod) {
		if err := g.check(ctx); err != nil {
			return nil, err
		}
	}
	if undecodable {
		return nil, badRequest(req)
	}
	return handler(ctx, req)
}

func (g *gate) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	// A stream's requests are read by the handler, after this check: an
	// unauthenticated caller's are never decoded.
	if !isHealth(info.FullMethod) {
		if err := g.check(ss.Context()); err != nil {
			return err
		}
	}
	return handler(srv, &gatedStream{ServerStream: ss, codec: g.codec})
}

type gatedStream struct {
	grpc.ServerStream
	codec *requestCodec
}

func (s *gatedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if s.codec.undecodable(m) {
		return badRequest(m)
	}
	return nil
}
