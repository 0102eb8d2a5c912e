package config

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse feeds Parse arbitrary documents, in a directory holding the
// files the seeds name (pw, token, tls.crt, tls.key, ca.pem). Parse must
// never panic; it returns either a *Error with no config, or a config that
// passes Validate (and each pool its own Validate) and survives a round
// trip through YAML unchanged. Secrets leak neither into errors nor into
// the printed config.
func FuzzParse(f *testing.F) {
	dir := f.TempDir()
	fillFixture(f, dir)
	f.Add([]byte(fullYAML))
	f.Add([]byte(poolHead))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "fuzz.yaml", dir)
		// Input that spells a secret out may see it echoed.
		quiet := !bytes.Contains(data, []byte(testPassword)) && !bytes.Contains(data, []byte(testToken))
		if err != nil {
			if cfg != nil {
				t.Fatalf("Parse returned a config with an error")
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.File != "fuzz.yaml" {
				t.Fatalf("error is not a *config.Error of fuzz.yaml: %#v", err)
			}
			if quiet {
				assertNoSecret(t, err.Error(), nil)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted config fails Validate: %v\n%s", err, data)
		}
		for i := range cfg.Pools {
			if err := cfg.Pools[i].Validate(); err != nil {
				t.Fatalf("accepted pools[%d] fails Validate: %v\n%s", i, err, data)
			}
		}
		if cfg.TLS.ClientCAFile != "" && !cfg.TLS.MutualTLS() {
			t.Fatalf("client CA without mutual TLS accepted")
		}
		if !cfg.TLS.Enabled() && !IsLoopback(cfg.Listen) {
			t.Fatalf("plaintext on %q accepted", cfg.Listen)
		}
		out := render(t, cfg)
		again, err := Parse(out, "again.yaml", dir)
		if err != nil {
			t.Fatalf("rendered config rejected: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(again, cfg) {
			t.Fatalf("round trip changed the config:\n got %+v\nwant %+v", again, cfg)
		}
		if quiet {
			printed := fmt.Sprintf("%v %+v %#v %s", cfg, *cfg, cfg.Pools, cfg.Auth)
			if strings.Contains(printed, testPassword) || strings.Contains(printed, testToken) {
				t.Fatalf("secret printed: %s", printed)
			}
		}
	})
}
