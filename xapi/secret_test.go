package xapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestSecretNeverPrints(t *testing.T) {
	const pw = "Tr0ub4dor&3"
	s := Secret(pw)
	creds := Credentials{Username: "root", Password: s}
	pbd := PBDRecord{UUID: "u", DeviceConfig: SecretMap{"server": "nfs1", "password": pw}}

	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%10s", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, creds), fmt.Sprintf(verb, &creds), fmt.Sprintf(verb, pbd), fmt.Sprintf(verb, pbd.DeviceConfig))
	}
	outs = append(outs, fmt.Sprint(s), fmt.Sprintln(creds), s.String(), s.GoString())
	for _, v := range []any{s, creds, pbd, pbd.DeviceConfig} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, string(b))
	}
	var buf bytes.Buffer
	for _, jsonFormat := range []bool{false, true} {
		log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Trace, JSONFormat: jsonFormat})
		log.Info("creds", "secret", s, "creds", creds, "pbd", pbd, "dc", pbd.DeviceConfig)
	}
	outs = append(outs, buf.String())

	for _, o := range outs {
		if strings.Contains(o, pw) || strings.Contains(o, fmt.Sprintf("%x", pw)) {
			t.Fatalf("secret leaked: %s", o)
		}
	}
	if !strings.Contains(fmt.Sprintf("%v", creds), "[redacted]") {
		t.Fatalf("redaction marker missing: %v", creds)
	}
	if !strings.Contains(fmt.Sprintf("%v", pbd.DeviceConfig), "server") {
		t.Fatalf("SecretMap should keep its keys: %v", pbd.DeviceConfig)
	}
	if s.Reveal() != pw {
		t.Fatal("Reveal must return the secret")
	}
	if pbd.DeviceConfig["password"] != pw {
		t.Fatal("SecretMap must stay usable as a map")
	}
}

func TestSecretMapDecodes(t *testing.T) {
	var rec PBDRecord
	if err := json.Unmarshal([]byte(`{"uuid":"u","device_config":{"server":"nfs1"},"other_field":1}`), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.DeviceConfig["server"] != "nfs1" {
		t.Fatalf("got %#v", map[string]string(rec.DeviceConfig))
	}
}
