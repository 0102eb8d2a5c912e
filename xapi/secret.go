package xapi

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

const redacted = "[redacted]"

// Secret is a string that refuses to be printed: every fmt verb, and JSON
// encoding, render it as "[redacted]". Only Reveal gives the value, for the
// wire.
type Secret string

// Reveal returns the secret itself. Call it only to put it on the wire.
func (s Secret) Reveal() string { return string(s) }

func (s Secret) String() string   { return redacted }
func (s Secret) GoString() string { return redacted }

// Format covers every verb (%v, %+v, %#v, %s, %q, %x...), which String alone
// does not (%x and %q would otherwise print the bytes).
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalJSON keeps secrets out of JSON logs and config dumps.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// Credentials are what a session login needs.
type Credentials struct {
	Username string
	Password Secret
}

// SecretMap is a string map whose values may be secrets (a PBD's
// device_config can hold a storage password). It is used like a plain map,
// but printing or JSON-encoding it shows only the keys.
type SecretMap map[string]string

func (m SecretMap) String() string { return m.redactedString() }

func (m SecretMap) GoString() string { return m.redactedString() }

func (m SecretMap) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(m.redactedString())) }

// MarshalJSON writes the keys with redacted values.
func (m SecretMap) MarshalJSON() ([]byte, error) {
	out := make(map[string]string, len(m))
	for k := range m {
		out[k] = redacted
	}
	return json.Marshal(out)
}

func (m SecretMap) redactedString() string {
	var b strings.Builder
	b.WriteString("map[")
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k + ":" + redacted)
	}
	b.WriteByte(']')
	return b.String()
}
