package xapisim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// tsim is a simulator on a fake clock with a raw JSON-RPC caller, so these
// tests see the wire exactly as a client does.
type tsim struct {
	*Sim
	t     *testing.T
	clock *FakeClock
	info  Info
}

func newTestSim(t *testing.T, cfg Config) *tsim {
	t.Helper()
	fc := NewFakeClock()
	cfg.Clock = fc
	if cfg.Seed == 0 {
		cfg.Seed = 42
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &tsim{Sim: s, t: t, clock: fc, info: s.Info()}
}

// wireErr is a failure as it came over the wire.
type wireErr struct {
	Code   string
	Params []string
	Array  bool // the bare-array (pre-dispatch) shape
}

func (e *wireErr) Error() string { return fmt.Sprintf("%s %v", e.Code, e.Params) }

var httpClient = &http.Client{Timeout: 5 * time.Second}

func rawCall(url, method string, params ...any) (any, *wireErr, error) {
	if params == nil {
		params = []any{}
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": method, "params": params, "id": 7})
	resp, err := httpClient.Post(url+"/jsonrpc", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Result any             `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, nil, fmt.Errorf("HTTP %d: %w", resp.StatusCode, err)
	}
	if len(out.Error) == 0 || string(out.Error) == "null" {
		return out.Result, nil, nil
	}
	var arr []string
	if json.Unmarshal(out.Error, &arr) == nil && len(arr) > 0 {
		return nil, &wireErr{Code: arr[0], Params: arr[1:], Array: true}, nil
	}
	var obj struct {
		Message string   `json:"message"`
		Data    []string `json:"data"`
	}
	if err := json.Unmarshal(out.Error, &obj); err != nil {
		return nil, nil, err
	}
	return nil, &wireErr{Code: obj.Message, Params: obj.Data}, nil
}

func (ts *tsim) url(i int) string { return ts.info.Hosts[i].URL }

// call sends method to host i and fails the test on transport errors.
func (ts *tsim) call(i int, method string, params ...any) (any, *wireErr) {
	ts.t.Helper()
	res, apiErr, err := rawCall(ts.hostURL(i), method, params...)
	if err != nil {
		ts.t.Fatalf("%s on host %d: %v", method, i, err)
	}
	return res, apiErr
}

// hostURL works for standalone hosts too.
func (ts *tsim) hostURL(i int) string {
	for _, h := range append(ts.info.Hosts, ts.info.Standalone...) {
		if h.Index == i {
			return h.URL
		}
	}
	ts.t.Fatalf("no host %d", i)
	return ""
}

func (ts *tsim) mustCall(i int, method string, params ...any) any {
	ts.t.Helper()
	res, e := ts.call(i, method, params...)
	if e != nil {
		ts.t.Fatalf("%s on host %d: %v", method, i, e)
	}
	return res
}

func (ts *tsim) login(i int) string {
	ts.t.Helper()
	return ts.mustCall(i, "session.login_with_password", "root", "xenroot", "1.0", "test").(string)
}

func (ts *tsim) localLogin(i int) string {
	ts.t.Helper()
	return ts.mustCall(i, "session.slave_local_login_with_password", "root", "xenroot").(string)
}

func (ts *tsim) wantErr(e *wireErr, code string) {
	ts.t.Helper()
	if e == nil || e.Code != code {
		ts.t.Fatalf("want %s, got %v", code, e)
	}
}

func (ts *tsim) hostState(i int) HostState {
	return ts.State().Hosts[i]
}

func (ts *tsim) must(err error) {
	ts.t.Helper()
	if err != nil {
		ts.t.Fatal(err)
	}
}

// lowestUUID returns the index of the main-pool member with the lowest UUID.
func (ts *tsim) byUUIDOrder() []int {
	hs := ts.info.Hosts
	idx := make([]int, len(hs))
	for i := range hs {
		idx[i] = i
	}
	for i := range idx {
		for j := i + 1; j < len(idx); j++ {
			if hs[idx[j]].UUID < hs[idx[i]].UUID {
				idx[i], idx[j] = idx[j], idx[i]
			}
		}
	}
	return idx
}

func (ts *tsim) refOf(i int) string { return "OpaqueRef:" + ts.info.Hosts[i].UUID }
