package xmlrpc

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// pyClient drives the server with Python's own xmlrpc.client, which the
// XenAPI SDK is built on, configured like the SDK (allow_none, builtin types
// off, so dateTime arrives as xmlrpc.client.DateTime). show() prints what
// Python received; DateTime and Binary get a stable form because their
// repr() includes a memory address.
const pyClient = `
import sys, datetime, xmlrpc.client as x

def show(v):
    if isinstance(v, x.DateTime): return "DateTime(%r)" % v.value
    if isinstance(v, x.Binary): return "Binary(%r)" % v.data
    if isinstance(v, dict): return "{" + ", ".join("%r: %s" % (k, show(e)) for k, e in v.items()) + "}"
    if isinstance(v, list): return "[" + ", ".join(show(e) for e in v) + "]"
    return repr(v)

p = x.ServerProxy(sys.argv[1], allow_none=True)
arg = {
    "name": 'vm <1> & "dq" ünï ☃', "count": 2147483647, "neg": -5,
    "ha": True, "off": False, "ratio": 0.5,
    "when": datetime.datetime(2024, 4, 20, 12, 0, 0),
    "blob": x.Binary(b"\x00\x01<&>\xff"), "nothing": None,
    "list": [1, "two", [3.25]], "nested": {"k": "v", "empty": {}},
    "empty": "", "spaces": "  padded\tand\nnewline  ",
}
print(show(p.echo(arg)))
print(show(p.system.listMethods()))
print(show(p.session.login_with_password("root", "pw", "2.21", "xenha-test")))
print(show(p.VM.start("OpaqueRef:sess", "OpaqueRef:vm1", False, True)))
print(show(p.VM.get_all_records("OpaqueRef:sess")))
try:
    p.nope()
except x.Fault as f:
    print("Fault", f.faultCode, repr(f.faultString))
`

const sessionRef = "OpaqueRef:9bd0d1c6-3b65-4d3c-a1e1-4a7c5b1c9e10"

// fakeXAPI answers a handful of methods the way xapi would, and records the
// params it decoded so the test can check the Go side too.
type fakeXAPI struct {
	mu  sync.Mutex
	got map[string][]any
}

func (s *fakeXAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method, params, err := DecodeCall(r.Body)
	w.Header().Set("Content-Type", "text/xml")
	if err != nil {
		_ = EncodeFault(w, -32700, err.Error())
		return
	}
	s.mu.Lock()
	s.got[method] = params
	s.mu.Unlock()

	success := func(v any) any { return map[string]any{"Status": "Success", "Value": v} }
	var result any
	switch method {
	case "echo":
		if len(params) != 1 {
			_ = EncodeFault(w, -32602, "echo takes one param")
			return
		}
		result = success(params[0])
	case "system.listMethods":
		result = []string{"VM.get_all_records", "VM.start", "echo", "session.login_with_password", "system.listMethods"}
	case "session.login_with_password":
		result = success(sessionRef)
	case "VM.start":
		result = map[string]any{"Status": "Failure", "ErrorDescription": []string{"HOST_IS_SLAVE", "10.0.0.1"}}
	case "VM.get_all_records":
		result = success(map[string]any{
			"OpaqueRef:vm1": map[string]any{
				"name_label":        "web",
				"power_state":       "Running",
				"memory_static_max": int64(4294967296),
				"is_a_template":     false,
				"other_config":      map[string]string{"ha_restart_priority": "restart"},
				"tags":              []string{},
				"last_booted":       time.Date(2024, 4, 20, 12, 0, 0, 0, time.UTC),
			},
		})
	default:
		_ = EncodeFault(w, -32601, "method not found: "+method)
		return
	}
	if err := EncodeResponse(w, result); err != nil {
		_ = EncodeFault(w, -32603, err.Error())
	}
}

func TestPythonClient(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not on PATH")
	}
	s := &fakeXAPI{got: map[string][]any{}}
	srv := httptest.NewServer(s)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-c", pyClient, srv.URL+"/")
	cmd.Env = append(os.Environ(), "PYTHONIOENCODING=utf-8")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}

	// What Python saw. Integers come back as str, as from a real xapi.
	want := []string{
		`{'Status': 'Success', 'Value': {'blob': Binary(b'\x00\x01<&>\xff'), 'count': '2147483647', ` +
			`'empty': '', 'ha': True, 'list': ['1', 'two', [3.25]], 'name': 'vm <1> & "dq" ünï ☃', ` +
			`'neg': '-5', 'nested': {'empty': {}, 'k': 'v'}, 'nothing': '', 'off': False, 'ratio': 0.5, ` +
			`'spaces': '  padded\tand\nnewline  ', 'when': DateTime('20240420T12:00:00Z')}}`,
		`['VM.get_all_records', 'VM.start', 'echo', 'session.login_with_password', 'system.listMethods']`,
		`{'Status': 'Success', 'Value': '` + sessionRef + `'}`,
		`{'ErrorDescription': ['HOST_IS_SLAVE', '10.0.0.1'], 'Status': 'Failure'}`,
		`{'Status': 'Success', 'Value': {'OpaqueRef:vm1': {'is_a_template': False, ` +
			`'last_booted': DateTime('20240420T12:00:00Z'), 'memory_static_max': '4294967296', ` +
			`'name_label': 'web', 'other_config': {'ha_restart_priority': 'restart'}, ` +
			`'power_state': 'Running', 'tags': []}}}`,
		`Fault -32601 'method not found: nope'`,
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Errorf("python line %d:\ngot  %s\nwant %s", i+1, g, w)
		}
	}

	// What Go decoded from Python's requests.
	wantParams := map[string][]any{
		"echo": {map[string]any{
			"name": `vm <1> & "dq" ünï ☃`, "count": int64(2147483647), "neg": int64(-5),
			"ha": true, "off": false, "ratio": 0.5,
			"when":    time.Date(2024, 4, 20, 12, 0, 0, 0, time.UTC),
			"blob":    []byte("\x00\x01<&>\xff"),
			"nothing": nil,
			"list":    []any{int64(1), "two", []any{3.25}},
			"nested":  map[string]any{"k": "v", "empty": map[string]any{}},
			"empty":   "", "spaces": "  padded\tand\nnewline  ",
		}},
		"system.listMethods":          {},
		"session.login_with_password": {"root", "pw", "2.21", "xenha-test"},
		"VM.start":                    {"OpaqueRef:sess", "OpaqueRef:vm1", false, true},
		"VM.get_all_records":          {"OpaqueRef:sess"},
		"nope":                        {},
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for method, want := range wantParams {
		if got := s.got[method]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s params:\ngot  %#v\nwant %#v", method, got, want)
		}
	}
}
