package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The secrets the fixture files hold. Tests check they never leak.
const (
	testPassword = "pw-Zq8#Secret!x"
	testToken    = "tok-Xy7-Secret-q"
)

var (
	certOnce        sync.Once
	certPEM, keyPEM []byte
)

// testCert returns a self-signed certificate and its key (PEM), made once.
func testCert(t testing.TB) (cert, key []byte) {
	t.Helper()
	certOnce.Do(func() {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "xenha-bridge test"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
			DNSNames:              []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		if err != nil {
			panic(err)
		}
		kb, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			panic(err)
		}
		certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})
	})
	return certPEM, keyPEM
}

// writeFile writes a file with exactly the given mode (umask aside).
func writeFile(t testing.TB, dir, name string, content []byte, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, content, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// fixtureDir returns a directory holding the files configurations refer to:
// pw (the password, 0600), token (0600), tls.crt, tls.key (0600), ca.pem.
func fixtureDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	fillFixture(t, dir)
	return dir
}

func fillFixture(t testing.TB, dir string) {
	cert, key := testCert(t)
	writeFile(t, dir, "pw", []byte(testPassword+"\n"), 0o600)
	writeFile(t, dir, "token", []byte("  "+testToken+"\n\n"), 0o600)
	writeFile(t, dir, "tls.crt", cert, 0o644)
	writeFile(t, dir, "tls.key", key, 0o600)
	writeFile(t, dir, "ca.pem", cert, 0o644)
}

// render writes cfg back as YAML, for round trips.
func render(t testing.TB, cfg *Config) []byte {
	t.Helper()
	pools := make([]map[string]any, 0, len(cfg.Pools))
	for _, p := range cfg.Pools {
		bmcs := make([]map[string]any, 0, len(p.Fencing.BMCs))
		for _, b := range p.Fencing.BMCs {
			m := map[string]any{"host": b.Host, "driver": b.Driver, "address": b.Address, "username": b.Username,
				"password_file": b.PasswordFile}
			if b.CAFile != "" {
				m["ca_file"] = b.CAFile
			}
			if b.PinSHA256 != "" {
				m["pin_sha256"] = b.PinSHA256
			}
			bmcs = append(bmcs, m)
		}
		pools = append(pools, map[string]any{
			"name":                  p.Name,
			"members":               p.Members,
			"username":              p.Username,
			"password_file":         p.PasswordFile,
			"policy":                p.Policy,
			"storage_timeout":       p.StorageTimeout.String(),
			"probe_interval":        p.ProbeInterval.String(),
			"master_probe_interval": p.MasterProbeInterval.String(),
			"unreachable_master":    p.UnreachableMaster,
			"tls": map[string]any{
				"ca_file":          p.TLS.CAFile,
				"pin_sha256":       p.TLS.PinSHA256,
				"allow_plain_http": p.TLS.AllowPlainHTTP,
			},
			"fencing": map[string]any{
				"levels":            p.Fencing.Levels,
				"delay":             p.Fencing.Delay.String(),
				"storm_percent":     p.Fencing.StormPercent,
				"heartbeat_timeout": p.Fencing.HeartbeatTimeout.String(),
				"bmcs":              bmcs,
			},
		})
	}
	doc := map[string]any{
		"listen": cfg.Listen,
		"log":    map[string]any{"level": cfg.Log.Level, "json": cfg.Log.JSON},
		"tls": map[string]any{
			"cert_file":      cfg.TLS.CertFile,
			"key_file":       cfg.TLS.KeyFile,
			"client_ca_file": cfg.TLS.ClientCAFile,
		},
		"auth":    map[string]any{"token_file": cfg.Auth.TokenFile},
		"events":  map[string]any{"retention": cfg.Events.Retention, "subscriber_buffer": cfg.Events.SubscriberBuffer},
		"metrics": map[string]any{"listen": cfg.Metrics.Listen, "allow_remote": cfg.Metrics.AllowRemote},
		"pools":   pools,
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
