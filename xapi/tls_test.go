package xapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTLS(t *testing.T) {
	f := newFakeTLSHost(t)
	cert := f.srv.Certificate()
	sum := sha256.Sum256(cert.Raw)
	pinHex := hex.EncodeToString(sum[:])
	wrong := sha256.Sum256([]byte("another certificate"))

	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyCA := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(emptyCA, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}

	for name, tc := range map[string]struct {
		tls       TLSOptions
		url       string
		newErr    string // error expected from NewClient
		callErr   string // error expected from the first call
		transport bool
	}{
		"pin right":           {tls: TLSOptions{PinSHA256: pinHex}},
		"pin upper colons":    {tls: TLSOptions{PinSHA256: fingerprint(sum[:])}},
		"pin wrong":           {tls: TLSOptions{PinSHA256: hex.EncodeToString(wrong[:])}, callErr: "TLS pin mismatch: expected SHA-256 " + fingerprint(wrong[:]) + ", server presented " + fingerprint(sum[:]), transport: true},
		"pin and CA":          {tls: TLSOptions{PinSHA256: pinHex, CAFile: caFile}},
		"pin wrong with CA":   {tls: TLSOptions{PinSHA256: hex.EncodeToString(wrong[:]), CAFile: caFile}, callErr: "TLS pin mismatch", transport: true},
		"no pin no CA":        {tls: TLSOptions{}, callErr: "certificate", transport: true},
		"CA file":             {tls: TLSOptions{CAFile: caFile}},
		"CA file missing":     {tls: TLSOptions{CAFile: filepath.Join(t.TempDir(), "nope.pem")}, newErr: "read CA file"},
		"CA file not PEM":     {tls: TLSOptions{CAFile: emptyCA}, newErr: "no PEM certificate"},
		"pin not hex":         {tls: TLSOptions{PinSHA256: "zz"}, newErr: "not a hex SHA-256"},
		"pin too short":       {tls: TLSOptions{PinSHA256: "abcd"}, newErr: "not a hex SHA-256"},
		"http refused":        {url: "http://" + f.srv.Listener.Addr().String(), newErr: "refusing plain http"},
		"http refused w/ pin": {url: "http://" + f.srv.Listener.Addr().String(), tls: TLSOptions{PinSHA256: pinHex}, newErr: "refusing plain http"},
	} {
		t.Run(name, func(t *testing.T) {
			url := tc.url
			if url == "" {
				url = f.URL()
			}
			c, err := NewClient(url, testCreds(), Options{TLS: tc.tls})
			if tc.newErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.newErr) {
					t.Fatalf("NewClient err = %v, want %q", err, tc.newErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			before := f.loginTries.Load()
			err = c.Login(context.Background())
			if tc.callErr == "" {
				if err != nil {
					t.Fatalf("login: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.callErr) {
				t.Fatalf("login err = %v, want %q", err, tc.callErr)
			}
			var te *TransportError
			if tc.transport && !errors.As(err, &te) {
				t.Fatalf("err %T, want *TransportError", err)
			}
			if f.loginTries.Load() != before {
				// Failing closed: the password never reached the server.
				t.Fatal("login reached the server despite the failed check")
			}
		})
	}
}
