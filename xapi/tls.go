package xapi

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/internal/tlstrust"
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

// tlsConfig builds the client TLS configuration (see internal/tlstrust).
func (o TLSOptions) tlsConfig() (*tls.Config, error) {
	cfg, err := tlstrust.Config(tlstrust.Options{CAFile: o.CAFile, CAPEM: o.CAPEM, PinSHA256: o.PinSHA256})
	if err != nil {
		return nil, fmt.Errorf("xapi: %w", err)
	}
	return cfg, nil
}

// fingerprint is tlstrust.Fingerprint, for the tests.
func fingerprint(sum []byte) string { return tlstrust.Fingerprint(sum) }

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
