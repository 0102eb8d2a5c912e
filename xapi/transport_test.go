package xapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
)

func TestDecodeResponse(t *testing.T) {
	for name, tc := range map[string]struct {
		body      string
		result    string // expected raw result, when no error
		code      string // expected *Error code
		params    []string
		malformed bool
	}{
		"success":              {body: `{"jsonrpc":"2.0","result":"OpaqueRef:abc","id":1}`, result: `"OpaqueRef:abc"`},
		"void success":         {body: `{"jsonrpc":"2.0","result":"","id":1}`, result: `""`},
		"null result":          {body: `{"jsonrpc":"2.0","result":null,"id":1}`, result: `null`},
		"v1 success":           {body: `{"result":{"a":1},"error":null,"id":"x"}`, result: `{"a":1}`},
		"v2 error":             {body: `{"jsonrpc":"2.0","error":{"code":1,"message":"HOST_IS_SLAVE","data":["10.0.0.1"]},"id":0}`, code: "HOST_IS_SLAVE", params: []string{"10.0.0.1"}},
		"v2 error empty data":  {body: `{"jsonrpc":"2.0","error":{"code":1,"message":"HA_NOT_ENABLED","data":[]},"id":3}`, code: "HA_NOT_ENABLED", params: []string{}},
		"v2 error no data":     {body: `{"jsonrpc":"2.0","error":{"code":1,"message":"HA_NOT_ENABLED"},"id":3}`, code: "HA_NOT_ENABLED", params: []string{}},
		"v2 error odd data":    {body: `{"jsonrpc":"2.0","error":{"code":1,"message":"X","data":["a",7,true]},"id":3}`, code: "X", params: []string{"a", "7", "true"}},
		"v2 error scalar data": {body: `{"jsonrpc":"2.0","error":{"code":1,"message":"X","data":"lone"},"id":3}`, code: "X", params: []string{"lone"}},
		"emergency array":      {body: `{"jsonrpc":"2.0","error":["HOST_STILL_BOOTING"],"id":0}`, code: "HOST_STILL_BOOTING", params: []string{}},
		"v1 error":             {body: `{"result":null,"error":["SESSION_INVALID","OpaqueRef:dead"],"id":"x"}`, code: "SESSION_INVALID", params: []string{"OpaqueRef:dead"}},
		"error and result":     {body: `{"result":"x","error":["HOST_OFFLINE","OpaqueRef:h"],"id":1}`, code: "HOST_OFFLINE", params: []string{"OpaqueRef:h"}},
		"bare string error":    {body: `{"error":"HA_IS_ENABLED","id":1}`, code: "HA_IS_ENABLED"},
		"empty error array":    {body: `{"jsonrpc":"2.0","error":[],"id":0}`, malformed: true},
		"error no message":     {body: `{"jsonrpc":"2.0","error":{"code":-32601},"id":0}`, malformed: true},
		"error number":         {body: `{"jsonrpc":"2.0","error":42,"id":0}`, malformed: true},
		"no result no error":   {body: `{"jsonrpc":"2.0","id":0}`, malformed: true},
		"null body":            {body: `null`, malformed: true},
		"array body":           {body: `[1,2]`, malformed: true},
		"empty body":           {body: ``, malformed: true},
		"truncated":            {body: `{"jsonrpc":"2.0","result":{"OpaqueRef:a":{"uuid":"x"`, malformed: true},
		"html 500":             {body: `<html><body><h1>HTTP 500 internal server error</h1></body></html>`, malformed: true},
	} {
		t.Run(name, func(t *testing.T) {
			res, err := DecodeResponse([]byte(tc.body))
			switch {
			case tc.malformed:
				if !errors.Is(err, ErrMalformedResponse) {
					t.Fatalf("err = %v, want ErrMalformedResponse", err)
				}
				if _, ok := AsError(err); ok {
					t.Fatalf("malformed body decoded as an API error: %v", err)
				}
			case tc.code != "":
				e, ok := AsError(err)
				if !ok {
					t.Fatalf("err = %v (%T), want *Error", err, err)
				}
				if e.Code != tc.code || !reflect.DeepEqual(nonNil(e.Params), nonNil(tc.params)) {
					t.Fatalf("got %q %q, want %q %q", e.Code, e.Params, tc.code, tc.params)
				}
				if res != nil {
					t.Fatalf("result %s returned with an error", res)
				}
			default:
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if string(res) != tc.result {
					t.Fatalf("result = %s, want %s", res, tc.result)
				}
			}
		})
	}
}

func TestEncodeRequest(t *testing.T) {
	for name, tc := range map[string]struct {
		params []any
		want   string
	}{
		"no params": {nil, `{"jsonrpc":"2.0","method":"m","params":[],"id":7}`},
		"params":    {[]any{"OpaqueRef:s", true, 1.5, map[string]string{"k": "v"}}, `{"jsonrpc":"2.0","method":"m","params":["OpaqueRef:s",true,1.5,{"k":"v"}],"id":7}`},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := encodeRequest("m", tc.params, 7)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Fatalf("got %s, want %s", b, tc.want)
			}
		})
	}
	if _, err := encodeRequest("m", []any{func() {}}, 1); err == nil {
		t.Fatal("unencodable param accepted")
	}
}

func TestDecodeResponseResultIsRaw(t *testing.T) {
	res, err := DecodeResponse([]byte(`{"jsonrpc":"2.0","result":{"OpaqueRef:h1":{"uuid":"u1","name_label":"h1","future_field":{"x":1}}},"id":1}`))
	if err != nil {
		t.Fatal(err)
	}
	var hosts map[HostRef]HostRecord
	if err := json.Unmarshal(res, &hosts); err != nil {
		t.Fatal(err)
	}
	if hosts["OpaqueRef:h1"].UUID != "u1" {
		t.Fatalf("got %+v", hosts)
	}
}

func TestReplayable(t *testing.T) {
	for method, want := range map[string]bool{
		"host.get_all_records":                    true,
		"VM.get_record":                           true,
		"event.from":                              true,
		"session.login_with_password":             true,
		"session.slave_local_login_with_password": true,
		"pool.join":                               false,
		"VM.power_state_reset":                    false,
		"session.logout":                          false,
		"pool.designate_new_master":               false,
		"nodot":                                   false,
	} {
		if got := replayable(method); got != want {
			t.Errorf("replayable(%q) = %v, want %v", method, got, want)
		}
	}
}

// A host that drops a kept-alive connection: read-only calls are resent on
// a fresh connection, calls with side effects are not.
func TestReplayOnDroppedConnection(t *testing.T) {
	var mu sync.Mutex
	served := map[string]int{} // requests answered per connection
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		served[r.RemoteAddr]++
		n := served[r.RemoteAddr]
		mu.Unlock()
		if n > 1 { // second request on this connection: drop it unanswered
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		io.WriteString(w, `{"jsonrpc":"2.0","result":"OpaqueRef:s","id":1}`)
	}))
	defer srv.Close()
	c, err := NewClient(srv.URL, testCreds(), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Login(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Call(ctx, "host.get_all_records"); err != nil {
		t.Fatalf("read-only call not resent: %v", err)
	}
	if _, err := c.Call(ctx, "VM.power_state_reset", "OpaqueRef:vm"); !IsUnreachable(err) {
		t.Fatalf("a call with side effects must not be resent: err = %v", err)
	}
}
