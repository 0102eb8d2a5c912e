package xapisim

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoginOnMasterAndRedirectFromSlave(t *testing.T) {
	ts := newTestSim(t, Config{Hosts: 3})
	if s := ts.login(0); !strings.HasPrefix(s, "OpaqueRef:") {
		t.Fatalf("session ref %q", s)
	}
	_, e := ts.call(1, "session.login_with_password", "root", "xenroot", "1.0", "test")
	ts.wantErr(e, "HOST_IS_SLAVE")
	if e.Array || len(e.Params) != 1 || e.Params[0] != ts.info.Hosts[0].Address {
		t.Fatalf("redirect should name the master's address in the object shape: %+v", e)
	}
	_, e = ts.call(0, "session.login_with_password", "root", "wrong", "1.0", "test")
	ts.wantErr(e, "SESSION_AUTHENTICATION_FAILED")
	for _, p := range e.Params {
		if strings.Contains(p, "wrong") {
			t.Fatalf("the password leaked into the error: %v", e)
		}
	}
}

func TestMasterLossLeavesSlavesFollowingTheDeadMaster(t *testing.T) {
	ts := newTestSim(t, Config{Hosts: 3})
	ts.must(ts.PowerOff(0))
	// A running slave does not enter emergency mode when its master dies:
	// it keeps naming the master its pool.conf names.
	_, e := ts.call(1, "session.login_with_password", "root", "xenroot", "1.0", "test")
	ts.wantErr(e, "HOST_IS_SLAVE")
	if e.Array || e.Params[0] != ts.info.Hosts[0].Address {
		t.Fatalf("want HOST_IS_SLAVE naming the dead master, object shape: %+v", e)
	}
	// Emergency calls work on any slave with a slave-local session.
	local := ts.localLogin(1)
	ts.mustCall(1, "pool.emergency_transition_to_master", local)
	s1 := ts.login(1)
	// Host 2 still follows the dead master until recover_slaves.
	_, e = ts.call(2, "session.login_with_password", "root", "xenroot", "1.0", "test")
	ts.wantErr(e, "HOST_IS_SLAVE")
	if e.Params[0] != ts.info.Hosts[0].Address {
		t.Fatalf("host 2 follows %v, want the dead host 0", e.Params)
	}
	reset := ts.mustCall(1, "pool.recover_slaves", s1).([]any)
	if len(reset) != 1 || reset[0] != ts.refOf(2) {
		t.Fatalf("recover_slaves reset %v, want host 2 only (host 0 is off)", reset)
	}
	_, e = ts.call(2, "session.login_with_password", "root", "xenroot", "1.0", "test")
	ts.wantErr(e, "HOST_IS_SLAVE")
	if e.Params[0] != ts.info.Hosts[1].Address {
		t.Fatalf("host 2 follows %v, want host 1", e.Params)
	}
	// A normal session is refused for emergency-only sessions and vice versa.
	_, e = ts.call(1, "pool.get_all", local)
	ts.wantErr(e, "SESSION_INVALID")
	for _, h := range ts.State().Hosts {
		if h.Emergency {
			t.Fatalf("%s in emergency mode though no xapi restarted", h.Name)
		}
	}
}

func TestOldMasterReturnsAsSecondMaster(t *testing.T) {
	ts := newTestSim(t, Config{Hosts: 3})
	ts.must(ts.PowerOff(0))
	ts.mustCall(1, "pool.emergency_transition_to_master", ts.localLogin(1))
	ts.mustCall(1, "pool.recover_slaves", ts.login(1))
	ts.must(ts.PowerOn(0))
	if m := ts.LiveMasters(); len(m) != 2 {
		t.Fatalf("without XenHA an old master comes back believing it is master: %v", m)
	}
	// It answers as master and reports itself as pool.master: a second truth.
	s0 := ts.login(0)
	pools := ts.mustCall(0, "pool.get_all_records", s0).(map[string]any)
	for _, p := range pools {
		if p.(map[string]any)["master"] != ts.refOf(0) {
			t.Fatalf("old master's view: %v", p)
		}
	}
	ts.mustCall(0, "pool.emergency_reset_master", ts.localLogin(0), ts.info.Hosts[1].Address)
	if m := ts.LiveMasters(); len(m) != 1 || m[0] != ts.info.Hosts[1].UUID {
		t.Fatalf("after emergency_reset_master: %v", m)
	}
}

func TestCallErrors(t *testing.T) {
	type env struct {
		ts   *tsim
		sess string
	}
	cases := map[string]struct {
		cfg    Config
		setup  func(e env)
		host   int
		method string
		args   func(e env) []any
		want   string
	}{
		"designate to an HA pool": {
			setup:  func(e env) { e.ts.must(e.ts.EnableHA(0, 30*time.Second)) },
			method: "pool.designate_new_master", args: func(e env) []any { return []any{e.sess, e.ts.refOf(1)} },
			want: "HA_IS_ENABLED",
		},
		"designate to a dead host": {
			setup:  func(e env) { e.ts.must(e.ts.PowerOff(2)) },
			method: "pool.designate_new_master", args: func(e env) []any { return []any{e.sess, e.ts.refOf(2)} },
			want: "HOST_OFFLINE",
		},
		"designate to an unknown host": {
			method: "pool.designate_new_master", args: func(e env) []any { return []any{e.sess, "OpaqueRef:nope"} },
			want: "HANDLE_INVALID",
		},
		"enable_ha twice": {
			setup:  func(e env) { e.ts.must(e.ts.EnableHA(0, 30*time.Second)) },
			method: "pool.enable_ha", args: func(e env) []any { return []any{e.sess, []any{}, map[string]any{}} },
			want: "HA_IS_ENABLED",
		},
		"enable_ha with a host down": {
			setup: func(e env) {
				e.ts.must(e.ts.PowerOff(2))
				e.ts.clock.Advance(601 * time.Second)
			},
			method: "pool.enable_ha", args: func(e env) []any { return []any{e.sess, []any{}, map[string]any{}} },
			want: "HOST_OFFLINE",
		},
		"enable_ha with an SR not plugged everywhere": {
			setup: func(e env) {
				e.ts.must(e.ts.SetPBDAttached(1, e.ts.State().Pools[0].SharedSRs[0], false))
			},
			method: "pool.enable_ha",
			args: func(e env) []any {
				return []any{e.sess, []any{"OpaqueRef:" + e.ts.State().Pools[0].SharedSRs[0]}, map[string]any{}}
			},
			want: "SR_NO_PBDS",
		},
		"enable_ha without shared storage": {
			cfg:    Config{SharedSRTypes: []string{}},
			method: "pool.enable_ha", args: func(e env) []any { return []any{e.sess, []any{}, map[string]any{}} },
			want: "CANNOT_CREATE_STATE_FILE",
		},
		"enable_ha with a timeout below 10 s": {
			method: "pool.enable_ha", args: func(e env) []any { return []any{e.sess, []any{}, map[string]any{"timeout": "5"}} },
			want: "INVALID_VALUE",
		},
		"disable_ha when off": {
			method: "pool.disable_ha", args: func(e env) []any { return []any{e.sess} },
			want: "HA_NOT_ENABLED",
		},
		"reset the control domain": {
			method: "VM.power_state_reset",
			args:   func(e env) []any { return []any{e.sess, e.ts.controlDomain(1)} },
			want:   "CANNOT_RESET_CONTROL_DOMAIN",
		},
		"reset a VM on a live host": {
			method: "VM.power_state_reset",
			args:   func(e env) []any { return []any{e.sess, e.ts.guestOn(1)} },
			want:   "HOST_IS_LIVE",
		},
		"reset a running VM on the master": {
			method: "VM.power_state_reset",
			args:   func(e env) []any { return []any{e.sess, e.ts.guestOn(0)} },
			want:   "DOMAIN_EXISTS",
		},
		"shutdown an enabled host": {
			method: "host.shutdown", args: func(e env) []any { return []any{e.sess, e.ts.refOf(1)} },
			want: "HOST_NOT_DISABLED",
		},
		"eject the master": {
			method: "pool.eject", args: func(e env) []any { return []any{e.sess, e.ts.refOf(0)} },
			want: "OPERATION_NOT_ALLOWED",
		},
		"eject a host running VMs": {
			method: "pool.eject", args: func(e env) []any { return []any{e.sess, e.ts.refOf(1)} },
			want: "HOST_IN_USE",
		},
		"unknown plugin": {
			method: "host.call_plugin",
			args:   func(e env) []any { return []any{e.sess, e.ts.refOf(1), "nope", "read", map[string]any{}} },
			want:   "XENAPI_MISSING_PLUGIN",
		},
		"plugin on a dead host": {
			setup:  func(e env) { e.ts.must(e.ts.PowerOff(1)) },
			method: "host.call_plugin",
			args: func(e env) []any {
				return []any{e.sess, e.ts.refOf(1), HeartbeatPlugin, "read", map[string]any{"host_uuid": e.ts.info.Hosts[2].UUID}}
			},
			want: "HOST_OFFLINE",
		},
		"unknown method": {
			method: "pool.frobnicate", args: func(e env) []any { return []any{e.sess} },
			want: "MESSAGE_METHOD_UNKNOWN",
		},
		"wrong argument count": {
			method: "VM.power_state_reset", args: func(e env) []any { return []any{e.sess} },
			want: "MESSAGE_PARAMETER_COUNT_MISMATCH",
		},
		"bogus session": {
			method: "pool.get_all", args: func(e env) []any { return []any{"OpaqueRef:bogus"} },
			want: "SESSION_INVALID",
		},
		"bad event token": {
			method: "event.from", args: func(e env) []any { return []any{e.sess, []any{"*"}, "garbage", 0.0} },
			want: "EVENT_FROM_TOKEN_PARSE_FAILURE",
		},
		"unknown event class": {
			method: "event.from", args: func(e env) []any { return []any{e.sess, []any{"toaster"}, "", 0.0} },
			want: "EVENT_SUBSCRIPTION_PARSE_FAILURE",
		},
		"join with a wrong password": {
			cfg: Config{Standalone: 1}, host: 3,
			method: "pool.join", args: func(e env) []any { return []any{e.sess, e.ts.info.Hosts[0].Address, "root", "bad"} },
			want: "SESSION_AUTHENTICATION_FAILED",
		},
		"join an HA pool": {
			cfg: Config{Standalone: 1}, host: 3,
			setup:  func(e env) { e.ts.must(e.ts.EnableHA(0, 30*time.Second)) },
			method: "pool.join", args: func(e env) []any { return []any{e.sess, e.ts.info.Hosts[0].Address, "root", "xenroot"} },
			want: "HA_IS_ENABLED",
		},
		"join with running VMs": {
			cfg: Config{Standalone: 1}, host: 3,
			setup: func(e env) {
				if _, err := e.ts.AddVM(3, "busy", false); err != nil {
					e.ts.t.Fatal(err)
				}
			},
			method: "pool.join", args: func(e env) []any { return []any{e.sess, e.ts.info.Hosts[0].Address, "root", "xenroot"} },
			want: "JOINING_HOST_CANNOT_HAVE_RUNNING_VMS",
		},
		"join an unreachable master": {
			cfg: Config{Standalone: 1}, host: 3,
			method: "pool.join", args: func(e env) []any { return []any{e.sess, "127.0.0.254", "root", "xenroot"} },
			want: "JOINING_HOST_CONNECTION_FAILED",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ts := newTestSim(t, tc.cfg)
			sess := ts.login(tc.host)
			e := env{ts: ts, sess: sess}
			if tc.setup != nil {
				tc.setup(e)
			}
			_, apiErr := ts.call(tc.host, tc.method, tc.args(e)...)
			ts.wantErr(apiErr, tc.want)
		})
	}
}

func (ts *tsim) vmRecords(sess string) map[string]any {
	ts.t.Helper()
	return ts.mustCall(0, "VM.get_all_records", sess).(map[string]any)
}

func (ts *tsim) controlDomain(i int) string {
	ts.t.Helper()
	for ref, r := range ts.vmRecords(ts.login(0)) {
		rec := r.(map[string]any)
		if rec["is_control_domain"] == true && rec["resident_on"] == ts.refOf(i) {
			return ref
		}
	}
	ts.t.Fatalf("no control domain on host %d", i)
	return ""
}

func (ts *tsim) guestOn(i int) string {
	ts.t.Helper()
	for ref, r := range ts.vmRecords(ts.login(0)) {
		rec := r.(map[string]any)
		if rec["is_control_domain"] == false && rec["resident_on"] == ts.refOf(i) {
			return ref
		}
	}
	ts.t.Fatalf("no guest VM on host %d", i)
	return ""
}

func TestPowerStateResetOnDeadHost(t *testing.T) {
	ts := newTestSim(t, Config{Hosts: 3})
	vm := ts.guestOn(2)
	sess := ts.login(0)
	ts.must(ts.PowerOff(2))
	// live is still true (600 s have not passed) but the host does not
	// answer: xapi treats it as dead.
	ts.mustCall(0, "VM.power_state_reset", sess, vm)
	rec := ts.mustCall(0, "VM.get_record", sess, vm).(map[string]any)
	if rec["power_state"] != "Halted" || rec["resident_on"] != "OpaqueRef:NULL" {
		t.Fatalf("after reset: %v", rec)
	}
	ts.mustCall(0, "VM.power_state_reset", sess, vm) // idempotent
}

func TestLivenessWithoutXenHAFallsAfterDeadInterval(t *testing.T) {
	ts := newTestSim(t, Config{Hosts: 3})
	ts.must(ts.PowerOff(2))
	ts.clock.Advance(599 * time.Second)
	if !ts.hostState(2).Live {
		t.Fatal("live fell before the 600 s dead interval")
	}
	ts.clock.Advance(2 * time.Second)
	if ts.hostState(2).Live {
		t.Fatal("live still true after the 600 s dead interval")
	}
	ts.must(ts.PowerOn(2))
	if !ts.hostState(2).Live {
		t.Fatal("a host back in touch with the master is live again")
	}
}

func TestEventFrom(t *testing.T) {
	ts := newTestSim(t, Config{Hosts: 3})
	sess := ts.login(0)
	first := ts.mustCall(0, "event.from", sess, []any{"host", "pool"}, "", 0.0).(map[string]any)
	evs := first["events"].([]any)
	if len(evs) != 4 { // three hosts and the pool
		t.Fatalf("initial batch has %d events, want 4 adds", len(evs))
	}
	for _, e := range evs {
		if e.(map[string]any)["operation"] != "add" {
			t.Fatalf("initial events are adds: %v", e)
		}
	}
	counts := first["valid_ref_counts"].(map[string]any)
	if counts["host"] != 3.0 {
		t.Fatalf("valid_ref_counts %v", counts)
	}
	tok := first["token"].(string)

	// A call with a timeout returns empty when nothing changes.
	done := make(chan map[string]any)
	go func() {
		res, _, _ := rawCall(ts.url(0), "event.from", sess, []any{"host"}, tok, 30.0)
		done <- res.(map[string]any)
	}()
	time.Sleep(50 * time.Millisecond)
	ts.clock.Advance(31 * time.Second)
	if got := (<-done)["events"].([]any); len(got) != 0 {
		t.Fatalf("timeout batch should be empty, got %v", got)
	}

	// A blocked call wakes on a change.
	go func() {
		res, _, _ := rawCall(ts.url(0), "event.from", sess, []any{"host"}, tok, 30.0)
		done <- res.(map[string]any)
	}()
	time.Sleep(50 * time.Millisecond)
	ts.mustCall(0, "host.disable", sess, ts.refOf(1))
	select {
	case b := <-done:
		got := b["events"].([]any)
		if len(got) != 1 || got[0].(map[string]any)["operation"] != "mod" || got[0].(map[string]any)["ref"] != ts.refOf(1) {
			t.Fatalf("want one mod of host 1, got %v", got)
		}
		snap := got[0].(map[string]any)["snapshot"].(map[string]any)
		if snap["enabled"] != false {
			t.Fatalf("snapshot %v", snap)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("event.from did not wake on a change")
	}

	// After a master change, the old token means nothing to the new master.
	ts.must(ts.Designate(1))
	s1 := ts.login(1)
	_, e := ts.call(1, "event.from", s1, []any{"host"}, tok, 0.0)
	ts.wantErr(e, "EVENTS_LOST")
}

func TestXAPIHangsAndSlowsDownOnDemand(t *testing.T) {
	ts := newTestSim(t, Config{Hosts: 2})
	ts.must(ts.HangXAPI(0, true))
	c := &http.Client{Timeout: 200 * time.Millisecond}
	start := time.Now()
	_, err := c.Post(ts.url(0)+"/jsonrpc", "application/json", strings.NewReader(`{"jsonrpc":"2.0","method":"pool.get_all","params":[],"id":1}`))
	if err == nil {
		t.Fatal("a hung xapi answered")
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("the client deadline did not bound the hang")
	}
	ts.must(ts.HangXAPI(0, false))
	ts.must(ts.SlowXAPI(0, 300*time.Millisecond))
	start = time.Now()
	ts.login(0)
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("slow xapi answered after %v", d)
	}
}

func TestStorageHeartbeatAndSelfFence(t *testing.T) {
	ts := newTestSim(t, Config{Hosts: 3})
	sess := ts.login(0)
	read := func() int64 {
		out := ts.mustCall(0, "host.call_plugin", sess, ts.refOf(1), HeartbeatPlugin, "read",
			map[string]any{"host_uuid": ts.info.Hosts[2].UUID}).(string)
		var r struct {
			Now   int64 `json:"now"`
			Beats []struct {
				Timestamp int64 `json:"timestamp"`
			} `json:"beats"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Beats) == 0 {
			t.Fatalf("plugin output %q: %v", out, err)
		}
		return r.Now - r.Beats[0].Timestamp
	}
	ts.clock.Advance(90 * time.Second)
	if age := read(); age != 30 {
		t.Fatalf("heartbeat age %d s, want 30 (written every 60 s)", age)
	}
	ts.must(ts.CutStorage(2, true))
	ts.clock.Advance(60 * time.Second)
	if age := read(); age != 90 {
		t.Fatalf("a host without storage stops beating: age %d, want 90", age)
	}
	// xenheartbeat.sh reboots it 120 s after its last write (at 60 s).
	ts.clock.Advance(29 * time.Second)
	if !ts.hostState(2).Powered {
		t.Fatal("self-fenced too early")
	}
	ts.clock.Advance(2 * time.Second)
	if ts.hostState(2).Powered {
		t.Fatal("no self-fence 120 s after the last heartbeat")
	}
}

func TestBMC(t *testing.T) {
	ts := newTestSim(t, Config{Hosts: 2})
	bmc := ts.info.Hosts[1].BMCURL
	do := func(method, path, body string, auth bool) (int, map[string]any) {
		req, _ := http.NewRequest(method, bmc+path, strings.NewReader(body))
		if auth {
			req.SetBasicAuth("admin", "bmcpass")
		}
		resp, err := (&http.Client{Timeout: time.Second}).Do(req)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if code, _ := do("GET", "/redfish/v1/Systems/1", "", false); code != 401 {
		t.Fatalf("no credentials: HTTP %d", code)
	}
	if _, sys := do("GET", "/redfish/v1/Systems/1", "", true); sys["PowerState"] != "On" {
		t.Fatalf("system %v", sys)
	}
	reset := "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset"
	if code, _ := do("POST", reset, `{"ResetType":"ForceOff"}`, true); code != 204 {
		t.Fatalf("ForceOff: HTTP %d", code)
	}
	if ts.hostState(1).Powered {
		t.Fatal("ForceOff through the BMC left the host powered")
	}
	if code, _ := do("POST", reset, `{"ResetType":"ForceOff"}`, true); code != 409 {
		t.Fatalf("ForceOff of an off host: HTTP %d, want 409", code)
	}
	if code, _ := do("POST", reset, `{"ResetType":"On"}`, true); code != 204 || !ts.hostState(1).Powered {
		t.Fatalf("On: HTTP %d", code)
	}
	ts.must(ts.PowerLoss(1))
	if code, _ := do("GET", "/redfish/v1/Systems/1", "", true); code != 0 {
		t.Fatalf("a BMC without power answered HTTP %d", code)
	}
}

func TestControlEndpoint(t *testing.T) {
	ts := newTestSim(t, Config{Hosts: 3})
	post := func(path string) int {
		resp, err := http.Post(ts.info.ControlURL+path, "application/json", strings.NewReader(`{"host":"1","name":"web","protected":true}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("/hosts/" + ts.info.Hosts[2].UUID + "/power-off"); code != 200 {
		t.Fatalf("power-off: HTTP %d", code)
	}
	if code := post("/hosts/9/power-off"); code != 404 {
		t.Fatalf("unknown host: HTTP %d", code)
	}
	if code := post("/hosts/1/explode"); code != 404 {
		t.Fatalf("unknown action: HTTP %d", code)
	}
	if code := post("/vms"); code != 200 {
		t.Fatalf("add VM: HTTP %d", code)
	}
	if code := post("/clock/advance?by=601s"); code != 200 {
		t.Fatalf("advance: HTTP %d", code)
	}
	resp, err := http.Get(ts.info.ControlURL + "/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var w WorldState
	if err := json.NewDecoder(resp.Body).Decode(&w); err != nil {
		t.Fatal(err)
	}
	if w.Hosts[2].Powered || w.Hosts[2].Live {
		t.Fatalf("host 2 after power-off and 601 s: %+v", w.Hosts[2])
	}
	if !slices.ContainsFunc(w.Pools[0].VMs, func(v VMState) bool { return v.Name == "web" && v.Protected }) {
		t.Fatal("the VM added through the control endpoint is missing")
	}
}

func TestJoinAndEject(t *testing.T) {
	ts := newTestSim(t, Config{Hosts: 2, Standalone: 1})
	alone := 2
	ts.mustCall(alone, "pool.join", ts.login(alone), ts.info.Hosts[0].Address, "root", "xenroot")
	sess := ts.login(0)
	hosts := ts.mustCall(0, "host.get_all", sess).([]any)
	if len(hosts) != 3 {
		t.Fatalf("after join the master lists %d hosts", len(hosts))
	}
	_, e := ts.call(alone, "session.login_with_password", "root", "xenroot", "1.0", "t")
	ts.wantErr(e, "HOST_IS_SLAVE")
	ref := "OpaqueRef:" + ts.info.Standalone[0].UUID
	ts.mustCall(0, "pool.eject", sess, ref)
	if n := len(ts.mustCall(0, "host.get_all", sess).([]any)); n != 2 {
		t.Fatalf("after eject the master lists %d hosts", n)
	}
	ts.clock.Advance(121 * time.Second) // the ejected host reboots into a pool of its own
	s := ts.login(alone)
	if n := len(ts.mustCall(alone, "host.get_all", s).([]any)); n != 1 {
		t.Fatalf("the ejected host's pool has %d hosts", n)
	}
}
