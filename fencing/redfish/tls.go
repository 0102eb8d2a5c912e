package redfish

import (
	"crypto/tls"
	"fmt"

	"github.com/cloudstack-xenha/xenha-bridge/internal/tlstrust"
)

// tlsConfig builds the client TLS configuration the way the project's XAPI
// client does (internal/tlstrust): the system roots, a CA file, or a
// SHA-256 pin of the BMC's leaf certificate (BMCs mostly present
// self-signed certificates).
func tlsConfig(cfg Config) (*tls.Config, error) {
	tc, err := tlstrust.Config(tlstrust.Options{CAFile: cfg.CAFile, PinSHA256: cfg.PinSHA256})
	if err != nil {
		return nil, fmt.Errorf("redfish: %w", err)
	}
	return tc, nil
}

// isTLSVerification tells a certificate that failed verification from a
// BMC that does not answer.
func isTLSVerification(err error) bool { return tlstrust.IsVerification(err) }

// fingerprint is tlstrust.Fingerprint, for the tests.
func fingerprint(sum []byte) string { return tlstrust.Fingerprint(sum) }
