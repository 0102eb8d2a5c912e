package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/cloudstack-xenha/xenha-bridge/proto/cloudstack/xenha/v1"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xapisim"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// issue makes a certificate signed by parent (self-signed when parent is nil).
func issue(t *testing.T, cn string, isCA bool, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, tls.Certificate) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: isCA, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestMutualTLS(t *testing.T) {
	ca, caKey, _ := issue(t, "test CA", true, nil, nil)
	_, _, serverCert := issue(t, "bridge", false, ca, caKey)
	_, _, clientCert := issue(t, "cloudstack", false, ca, caKey)
	_, _, strangerCert := issue(t, "stranger", false, nil, nil)
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

	dial := func(certs []tls.Certificate) *grpc.ClientConn {
		conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(
			&tls.Config{RootCAs: roots, Certificates: certs, ServerName: "127.0.0.1"})))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for name, certs := range map[string][]tls.Certificate{"no client certificate": nil} {
		conn := dial(certs)
		_, err := pb.NewXenHAServiceClient(conn).ListPools(ctx, &pb.ListPoolsRequest{})
		if st, _ := status.FromError(err); st.Code() != codes.Unauthenticated {
			t.Fatalf("%s: ListPools %v", name, err)
		}
		if h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("%s: health must stay open: %v", name, err)
		}
	}
	if _, err := pb.NewXenHAServiceClient(dial([]tls.Certificate{strangerCert})).ListPools(ctx, &pb.ListPoolsRequest{}); err == nil {
		t.Fatal("a certificate from another CA was accepted")
	}
	if _, err := pb.NewXenHAServiceClient(dial([]tls.Certificate{clientCert})).ListPools(ctx, &pb.ListPoolsRequest{}); err != nil {
		t.Fatalf("with the right client certificate: %v", err)
	}
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSecretsStayOutOfLogsAndErrors(t *testing.T) {
	var logs syncBuffer
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: &logs})
	const password, token = "xapi-Pa55word-7731", "tok-9d1e55"
	sim, err := xapisim.New(xapisim.Config{Hosts: 2, Password: password, Clock: xapisim.NewFakeClock(), Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	f := newFixture(t, Options{Logger: log, Token: token}, xenha.Options{Logger: log, XAPI: xapi.Options{Timeout: 2 * time.Second, ProbeTimeout: 300 * time.Millisecond}})
	ctx := withToken(f.ctx(), token)
	var errs []string
	_, err = f.c.AttachPool(ctx, &pb.AttachPoolRequest{Name: "s", Members: sim.MemberURLs(), Username: "root", Password: password, Tls: &pb.XAPITLS{AllowPlainHttp: true}})
	if err != nil {
		t.Fatal(err)
	}
	// A wrong password, a URL with credentials, a conflicting attach: errors everywhere.
	for _, req := range []*pb.AttachPoolRequest{
		{Name: "bad", Members: sim.MemberURLs(), Username: "root", Password: password + "x", Tls: &pb.XAPITLS{AllowPlainHttp: true}},
		{Name: "s", Members: sim.MemberURLs()[:1], Username: "root", Password: password, Tls: &pb.XAPITLS{AllowPlainHttp: true}},
		{Name: "u", Members: []string{"https://root:" + password + "@10.0.0.1"}, Username: "root", Password: password},
	} {
		if _, err := f.c.AttachPool(ctx, req); err != nil {
			errs = append(errs, err.Error())
		}
	}
	_, err = f.c.HAMode(withToken(f.ctx(), "wrong-"+token), &pb.HAModeRequest{Pool: "s"})
	errs = append(errs, err.Error())
	if err := sim.PowerOff(0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // let the watcher log its failures
	all := logs.String() + strings.Join(errs, "\n")
	for _, secret := range []string{password, token} {
		if strings.Contains(all, secret) {
			t.Fatalf("secret %q leaked:\n%s", secret, all)
		}
	}
	if !strings.Contains(logs.String(), "pool attached") {
		t.Fatal("the test captured no logs: it would prove nothing")
	}
}

func TestAPanicBecomesInternalAndTheServerGoesOn(t *testing.T) {
	srv := New(NewService(nil, nil), Options{}) // a nil manager makes handlers panic
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Stop(time.Second)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecureCreds()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = pb.NewXenHAServiceClient(conn).ListPools(ctx, &pb.ListPoolsRequest{})
	if st, _ := status.FromError(err); st.Code() != codes.Internal || strings.Contains(st.Message(), "nil pointer") {
		t.Fatalf("want a bare INTERNAL, got %v", err)
	}
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("the server died with the panic: %v", err)
	}
}

func insecureCreds() credentials.TransportCredentials { return insecure.NewCredentials() }
