package xapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// TLSOptions say how a host's certificate is trusted. xapi hosts usually
// present a self-signed certificate, so either a CA file or a pin is needed
// unless the certificate chains to the system roots.
type TLSOptions struct {
	// CAFile is a PEM bundle to trust instead of the system roots.
	CAFile string
	// CAPEM is the same bundle given inline (CloudStack hands it over at
	// run time); it is added to CAFile's certificates.
	CAPEM []byte
	// PinSHA256 is the SHA-256 fingerprint of the host's leaf certificate
	// (hex, colons allowed, any case). When set, the pin is the
	// verification: the chain and the name are not checked (unless CAFile
	// is also set, then both must pass).
	PinSHA256 string
	// AllowPlainHTTP permits http:// URLs (tests, or a trusted link).
	// Without it they are refused: a login sends the password.
	AllowPlainHTTP bool
}

// tlsConfig builds the client TLS configuration. It never turns
// verification off without putting the pin check in its place.
func (o TLSOptions) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" || len(o.CAPEM) > 0 {
		roots := x509.NewCertPool()
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, fmt.Errorf("xapi: read CA file: %w", err)
			}
			if !roots.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("xapi: CA file %s holds no PEM certificate", o.CAFile)
			}
		}
		if len(o.CAPEM) > 0 && !roots.AppendCertsFromPEM(o.CAPEM) {
			return nil, errors.New("xapi: the inline CA bundle holds no PEM certificate")
		}
		cfg.RootCAs = roots
	}
	if o.PinSHA256 != "" {
		want, err := parsePin(o.PinSHA256)
		if err != nil {
			return nil, err
		}
		if cfg.RootCAs == nil {
			// The pin replaces chain and name verification, which is
			// done in VerifyConnection below, never skipped.
			cfg.InsecureSkipVerify = true
		}
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("xapi: TLS pin: server presented no certificate")
			}
			got := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if subtle.ConstantTimeCompare(got[:], want) != 1 {
				return fmt.Errorf("xapi: TLS pin mismatch: expected SHA-256 %s, server presented %s",
					fingerprint(want), fingerprint(got[:]))
			}
			return nil
		}
	}
	return cfg, nil
}

// parsePin decodes a hex SHA-256 fingerprint such as "AB:CD:..." or "abcd...".
func parsePin(s string) ([]byte, error) {
	clean := strings.ToLower(strings.NewReplacer(":", "", " ", "").Replace(strings.TrimSpace(s)))
	b, err := hex.DecodeString(clean)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("xapi: TLS pin %q is not a hex SHA-256 fingerprint (64 hex digits)", s)
	}
	return b, nil
}

// fingerprint formats a digest like openssl x509 -fingerprint does, so an
// operator can compare it with what they see on the host.
func fingerprint(sum []byte) string {
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// newHTTPClient returns an HTTP client for one host. It has no overall
// timeout: every request carries a context deadline instead, which lets
// event.from long polls outlive the usual call timeout.
func newHTTPClient(cfg *tls.Config) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil, // a pool's management network is not behind a proxy
			DialContext:         dialer.DialContext,
			TLSClientConfig:     cfg,
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 8,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   false, // xapi speaks HTTP/1.1
		},
		// xapi does not redirect; following one could send the session
		// ref somewhere else.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
