// Package tlstrust builds client TLS configurations for the hosts the
// bridge talks to (XAPI, Redfish BMCs), which mostly present self-signed
// certificates: trust the system roots, a CA bundle, or a SHA-256 pin of
// the leaf certificate. Verification is never turned off without the pin
// check taking its place.
package tlstrust

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Options say how a certificate is trusted. All empty: the system roots.
type Options struct {
	CAFile    string // a PEM bundle trusted instead of the system roots
	CAPEM     []byte // the same, inline; added to CAFile's
	PinSHA256 string // the leaf's SHA-256 fingerprint (hex, colons allowed)
}

// PinError is a certificate that does not match the pin.
type PinError struct{ Msg string }

func (e *PinError) Error() string { return "TLS pin mismatch: " + e.Msg }

// Config returns the client configuration for o.
func Config(o Options) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" || len(o.CAPEM) > 0 {
		roots := x509.NewCertPool()
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, fmt.Errorf("read CA file: %w", err)
			}
			if !roots.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("CA file %s holds no PEM certificate", o.CAFile)
			}
		}
		if len(o.CAPEM) > 0 && !roots.AppendCertsFromPEM(o.CAPEM) {
			return nil, errors.New("the inline CA bundle holds no PEM certificate")
		}
		cfg.RootCAs = roots
	}
	if o.PinSHA256 == "" {
		return cfg, nil
	}
	want, err := ParsePin(o.PinSHA256)
	if err != nil {
		return nil, err
	}
	if cfg.RootCAs == nil {
		// The pin replaces chain and name verification; it is checked in
		// VerifyConnection below, never skipped. With a CA, both must pass.
		cfg.InsecureSkipVerify = true
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return &PinError{Msg: "server presented no certificate"}
		}
		got := sha256.Sum256(cs.PeerCertificates[0].Raw)
		if subtle.ConstantTimeCompare(got[:], want) != 1 {
			return &PinError{Msg: fmt.Sprintf("expected SHA-256 %s, server presented %s", Fingerprint(want), Fingerprint(got[:]))}
		}
		return nil
	}
	return cfg, nil
}

// ParsePin decodes a hex SHA-256 fingerprint such as "AB:CD:..." or "abcd...".
func ParsePin(s string) ([]byte, error) {
	clean := strings.ToLower(strings.NewReplacer(":", "", " ", "").Replace(strings.TrimSpace(s)))
	b, err := hex.DecodeString(clean)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("TLS pin %q is not a hex SHA-256 fingerprint (64 hex digits)", s)
	}
	return b, nil
}

// Fingerprint formats a digest as openssl x509 -fingerprint does, so an
// operator can compare it with what the host shows.
func Fingerprint(sum []byte) string {
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// IsVerification tells a certificate that failed verification (a
// configuration or security problem) from a host that does not answer.
func IsVerification(err error) bool {
	var (
		pe  *PinError
		cve *tls.CertificateVerificationError
		ua  x509.UnknownAuthorityError
		he  x509.HostnameError
		ci  x509.CertificateInvalidError
	)
	return errors.As(err, &pe) || errors.As(err, &cve) || errors.As(err, &ua) ||
		errors.As(err, &he) || errors.As(err, &ci)
}
