package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	pb "github.com/cloudstack-xenha/xenha-bridge/proto/cloudstack/xenha/v1"
)

// Options configure the gRPC server.
type Options struct {
	Logger hclog.Logger
	// Token, when set, is required as "authorization: Bearer <token>" on
	// every RPC but health.
	Token string
	// TLS, when set, serves TLS. With ClientCAs set, every RPC but health
	// needs a client certificate signed by them (mTLS).
	TLS *tls.Config
	// MaxMessageBytes bounds a request (default 1 MiB).
	MaxMessageBytes int
	// Metrics, when set, counts every RPC by method and code (health and
	// reflection included) and times it.
	Metrics *grpcprom.ServerMetrics
}

// Server is the gRPC server with health, reflection and the interceptor
// chain: recovery → logging → metrics → gate → recovery. The gate
// authenticates the caller (health excepted), then refuses a request that
// did not decode (INVALID_ARGUMENT; see requestCodec). The inner recovery
// turns a handler's panic into INTERNAL, which the logging and the
// metrics then see like any other answer; the outer one guards the
// interceptors themselves.
type Server struct {
	grpc   *grpc.Server
	health *health.Server
	log    hclog.Logger
}

// New builds the server around svc.
func New(svc *Service, opts Options) *Server {
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = 1 << 20
	}
	mtls := false
	if opts.TLS != nil && opts.TLS.ClientCAs != nil {
		mtls = true
		opts.TLS = opts.TLS.Clone()
		// Verify a certificate when given; the auth step requires one for
		// everything but health, so probes need no client certificate.
		opts.TLS.ClientAuth = tls.VerifyClientCertIfGiven
	}
	rpcLog := log.Named("grpc")
	recover := recovery.WithRecoveryHandler(func(p any) error {
		rpcLog.Error("panic in a handler", "panic", fmt.Sprint(p))
		return status.Error(codes.Internal, "internal error")
	})
	logger := logging.LoggerFunc(func(_ context.Context, lvl logging.Level, msg string, fields ...any) {
		switch lvl {
		case logging.LevelDebug:
			rpcLog.Debug(msg, fields...)
		case logging.LevelInfo:
			rpcLog.Debug(msg, fields...) // every call at info would drown the log
		case logging.LevelWarn:
			rpcLog.Warn(msg, fields...)
		default:
			rpcLog.Error(msg, fields...)
		}
	})
	codec := newRequestCodec()
	gt := &gate{check: authFunc(opts.Token, mtls), codec: codec}
	logOpts := []logging.Option{logging.WithLogOnEvents(logging.FinishCall), logging.WithFieldsFromContextAndCallMeta(requestFields)}
	unary := []grpc.UnaryServerInterceptor{
		recovery.UnaryServerInterceptor(recover),
		logging.UnaryServerInterceptor(logger, logOpts...),
	}
	stream := []grpc.StreamServerInterceptor{
		recovery.StreamServerInterceptor(recover),
		logging.StreamServerInterceptor(logger, logOpts...),
	}
	if opts.Metrics != nil {
		unary = append(unary, opts.Metrics.UnaryServerInterceptor())
		stream = append(stream, opts.Metrics.StreamServerInterceptor())
	}
	unary = append(unary, gt.unary, recovery.UnaryServerInterceptor(recover))
	stream = append(stream, gt.stream, recovery.StreamServerInterceptor(recover))
	sopts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(codec),
		grpc.MaxRecvMsgSize(opts.MaxMessageBytes),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
	}
	if opts.TLS != nil {
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(opts.TLS)))
	}
	g := grpc.NewServer(sopts...)
	pb.RegisterXenHAServiceServer(g, svc)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(pb.XenHAService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(g, hs)
	reflection.Register(g)
	if opts.Metrics != nil {
		opts.Metrics.InitializeMetrics(g) // every method at 0, so rates work from the start
	}
	srv := &Server{grpc: g, health: hs, log: log}
	if svc != nil {
		srv.watchJournal(svc)
	}
	return srv
}

// requestFields adds to an RPC's log line what its request says of the
// pool, the host, the request id and the epoch, under the keys every log
// line of the bridge uses (cut to a sane length: the request is not
// validated yet). Unary requests only: a stream's request is read after
// the call starts.
func requestFields(_ context.Context, c interceptors.CallMeta) logging.Fields {
	var f logging.Fields
	if r, ok := c.ReqOrNil.(interface{ GetPool() string }); ok && r.GetPool() != "" {
		f = append(f, "pool", clip(r.GetPool()))
	}
	if r, ok := c.ReqOrNil.(interface{ GetHost() string }); ok && r.GetHost() != "" {
		f = append(f, "host", clip(r.GetHost()))
	}
	if r, ok := c.ReqOrNil.(interface{ GetRequestId() string }); ok && r.GetRequestId() != "" {
		f = append(f, "request_id", clip(r.GetRequestId()))
	}
	if r, ok := c.ReqOrNil.(interface{ GetExpectedEpoch() uint64 }); ok && r.GetExpectedEpoch() != 0 {
		f = append(f, "epoch", r.GetExpectedEpoch())
	}
	return f
}

// clip cuts a logged request value to at most 128 bytes.
func clip(s string) string {
	const limit = 128
	if len(s) <= limit {
		return s
	}
	return strings.ToValidUTF8(s[:limit], "") + "…"
}

// Serve serves on ln until Stop.
func (s *Server) Serve(ln net.Listener) error { return s.grpc.Serve(ln) }

// Stop reports NOT_SERVING, lets running calls finish for up to grace,
// then cuts the rest (streams never finish by themselves).
func (s *Server) Stop(grace time.Duration) {
	s.health.Shutdown()
	t := time.AfterFunc(grace, s.grpc.Stop)
	defer t.Stop()
	s.grpc.GracefulStop()
}
