package xapisim

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Slaves whose master is gone, xapi restarts, emergency mode, silent dead
// hosts: xapi's real semantics (see state.go for the xen-api sources).

func (ts *tsim) wantSlaveOf(i, master int) {
	ts.t.Helper()
	_, e := ts.call(i, "session.login_with_password", "root", "xenroot", "1.0", "t")
	ts.wantErr(e, "HOST_IS_SLAVE")
	if e.Array || len(e.Params) != 1 || e.Params[0] != ts.info.Hosts[master].Address {
		ts.t.Fatalf("login on host %d: %+v, want HOST_IS_SLAVE naming host %d in the object shape", i, e, master)
	}
	_, e = ts.call(i, "pool.get_all", "OpaqueRef:whatever")
	ts.wantErr(e, "HOST_IS_SLAVE")
	if e.Array || e.Params[0] != ts.info.Hosts[master].Address {
		ts.t.Fatalf("normal call on host %d: %+v, want HOST_IS_SLAVE naming host %d", i, e, master)
	}
	if st := ts.hostState(i); st.Emergency {
		ts.t.Fatalf("host %d answers as a slave but its state says emergency: %+v", i, st)
	}
}

func (ts *tsim) wantEmergency(i int) {
	ts.t.Helper()
	for _, m := range []string{"session.login_with_password", "pool.get_all"} {
		params := []any{"root", "xenroot", "1.0", "t"}
		if m == "pool.get_all" {
			params = []any{"OpaqueRef:whatever"}
		}
		_, e := ts.call(i, m, params...)
		ts.wantErr(e, "HOST_STILL_BOOTING")
		if !e.Array {
			ts.t.Fatalf("%s on host %d: emergency-mode errors travel as a bare array: %+v", m, i, e)
		}
	}
	if st := ts.hostState(i); !st.Emergency || !st.Powered {
		ts.t.Fatalf("host %d answers the emergency error but its state says %+v", i, st)
	}
}

func TestDeadMasterSlavesStaySlavesForHours(t *testing.T) {
	ts := newTestSim(t, Config{Hosts: 3})
	ts.must(ts.PowerOff(0))
	for hour := 0; hour <= 6; hour++ {
		for _, i := range []int{1, 2} {
			ts.wantSlaveOf(i, 0)
			local := ts.localLogin(i) // works on any slave
			ts.mustCall(i, "session.local_logout", local)
		}
		if lost := ts.hostState(1).MasterLostSince; lost != ts.clock.Now().Add(-time.Duration(hour)*time.Hour).Unix() {
			t.Fatalf("hour %d: master lost since %d", hour, lost)
		}
		ts.clock.Advance(time.Hour)
	}
	if w := ts.State(); w.MasterConnectionRetryTimeout != -1 {
		t.Fatalf("default master_connection_retry_timeout %v, want -1 (never)", w.MasterConnectionRetryTimeout)
	}
}

func TestXAPIStartWithDeadMasterEntersEmergencyMode(t *testing.T) {
	ts := newTestSim(t, Config{Hosts: 3, RebootTime: 90 * time.Second})
	before := ts.localLogin(1)
	ts.must(ts.PowerOff(0))

	// A toolstack restart is an xapi start: it cannot reach its master.
	ts.must(ts.RestartToolstack(1))
	ts.wantEmergency(1)
	_, e := ts.call(1, "session.local_logout", before)
	ts.wantErr(e, "SESSION_INVALID") // the restart killed every session
	local := ts.localLogin(1)        // emergency calls still work
	ts.wantSlaveOf(2, 0)             // its peer did not restart

	// So is a reboot.
	ts.must(ts.Reboot(2))
	ts.clock.Advance(90 * time.Second)
	ts.wantEmergency(2)

	// Emergency mode lasts while the master stays away.
	ts.clock.Advance(3 * time.Hour)
	ts.wantEmergency(1)
	ts.wantEmergency(2)

	// The master returns: at their next Pool.hello the slaves are slaves
	// again, without another restart (the local session survives).
	ts.must(ts.PowerOn(0))
	ts.wantEmergency(1)
	ts.clock.Advance(5 * time.Second)
	ts.wantSlaveOf(1, 0)
	ts.wantSlaveOf(2, 0)
	ts.mustCall(1, "session.local_logout", local)
	if m := ts.LiveMasters(); len(m) != 1 || m[0] != ts.info.Hosts[0].UUID {
		t.Fatalf("masters %v", m)
	}
}

func TestEmergencyModeEndsWithATransitionOrAReset(t *testing.T) {
	ts := newTestSim(t, Config{Hosts: 3})
	ts.must(ts.PowerOff(0))
	ts.must(ts.RestartToolstack(1))
	ts.must(ts.RestartToolstack(2))
	ts.wantEmergency(1)
	ts.wantEmergency(2)
	ts.mustCall(1, "pool.emergency_transition_to_master", ts.localLogin(1))
	if ts.hostState(1).Emergency {
		t.Fatal("a new master is not in emergency mode")
	}
	ts.login(1)
	ts.mustCall(2, "pool.emergency_reset_master", ts.localLogin(2), ts.info.Hosts[1].Address)
	ts.wantSlaveOf(2, 1)
	// Reset to an unreachable master: xapi restarts and cannot reach it.
	ts.mustCall(2, "pool.emergency_reset_master", ts.localLogin(2), ts.info.Hosts[0].Address)
	ts.wantEmergency(2)
}

func TestToolstackRestartWithLiveMaster(t *testing.T) {
	ts := newTestSim(t, Config{Hosts: 3})
	sess := ts.login(0)
	tok := ts.mustCall(0, "event.from", sess, []any{"host"}, "", 0.0).(map[string]any)["token"].(string)
	ts.must(ts.RestartToolstack(0))
	_, e := ts.call(0, "pool.get_all", sess)
	ts.wantErr(e, "SESSION_INVALID")
	sess = ts.login(0)
	_, e = ts.call(0, "event.from", sess, []any{"host"}, tok, 0.0)
	ts.wantErr(e, "EVENTS_LOST")
	ts.must(ts.RestartToolstack(1))
	ts.wantSlaveOf(1, 0)
	ts.must(ts.PowerOff(2))
	if err := ts.RestartToolstack(2); err == nil {
		t.Fatal("restarted the toolstack of a host without power")
	}
}

func TestMasterConnectionRetryTimeout(t *testing.T) {
	if got := masterConnectionGiveUp(60 * time.Second); got != 62*time.Second {
		t.Fatalf("60 s gives up at %v, want 62 s (retries at 2, 6, 14, 30, 62 s)", got)
	}
	if got := masterConnectionGiveUp(600 * time.Second); got != 766*time.Second {
		t.Fatalf("600 s gives up at %v, want 766 s (backoff capped at 256 s)", got)
	}

	t.Run("expires while the master stays away", func(t *testing.T) {
		ts := newTestSim(t, Config{Hosts: 3})
		ts.SetMasterConnectionRetryTimeout(60 * time.Second)
		before := ts.localLogin(1)
		ts.must(ts.PowerOff(0))
		ts.clock.Advance(61 * time.Second)
		ts.wantSlaveOf(1, 0)
		ts.clock.Advance(2 * time.Second)
		ts.wantEmergency(1)
		ts.wantEmergency(2)
		_, e := ts.call(1, "session.local_logout", before)
		ts.wantErr(e, "SESSION_INVALID") // xapi restarted
		ts.must(ts.PowerOn(0))
		ts.clock.Advance(5 * time.Second)
		ts.wantSlaveOf(1, 0)
		ts.wantSlaveOf(2, 0)
	})
	t.Run("the master returns in time", func(t *testing.T) {
		ts := newTestSim(t, Config{Hosts: 3, MasterConnectionRetryTimeout: 120 * time.Second})
		if w := ts.State(); w.MasterConnectionRetryTimeout != 120 {
			t.Fatalf("state says %v", w.MasterConnectionRetryTimeout)
		}
		ts.must(ts.PowerOff(0))
		ts.clock.Advance(100 * time.Second)
		ts.must(ts.PowerOn(0))
		ts.clock.Advance(time.Hour)
		ts.wantSlaveOf(1, 0)
		// A second outage counts from its own start.
		ts.must(ts.CutLink(0, 1, true))
		ts.clock.Advance(125 * time.Second)
		ts.wantSlaveOf(1, 0)
		ts.clock.Advance(2 * time.Second)
		ts.wantEmergency(1)
		ts.wantSlaveOf(2, 0)
	})
	t.Run("set after the loss counts from the loss", func(t *testing.T) {
		ts := newTestSim(t, Config{Hosts: 3})
		ts.must(ts.PowerOff(0))
		ts.clock.Advance(100 * time.Second)
		ts.SetMasterConnectionRetryTimeout(60 * time.Second)
		ts.wantEmergency(1)
		ts.wantEmergency(2)
	})
	t.Run("unset again: never", func(t *testing.T) {
		ts := newTestSim(t, Config{Hosts: 3, MasterConnectionRetryTimeout: time.Minute})
		ts.must(ts.PowerOff(0))
		ts.clock.Advance(30 * time.Second)
		ts.SetMasterConnectionRetryTimeout(0)
		ts.clock.Advance(5 * time.Hour)
		ts.wantSlaveOf(1, 0)
		ts.wantSlaveOf(2, 0)
	})
}

func TestXenHAElectionIsNotEmergencyMode(t *testing.T) {
	ts := newTestSim(t, Config{Hosts: 3, DisableHeartbeatSelfFence: true})
	ts.must(ts.EnableHA(0, T))
	ts.must(ts.PowerOff(0))
	ts.must(ts.RestartToolstack(1))
	ts.wantEmergency(1)
	_, e := ts.call(1, "pool.emergency_transition_to_master", ts.localLogin(1))
	ts.wantErr(e, "HA_IS_ENABLED")
	ts.wantSlaveOf(2, 0)

	ts.clock.Advance(T + time.Second) // xhad elects among 1 and 2
	m, other := 1, 2
	if ts.info.Hosts[2].UUID < ts.info.Hosts[1].UUID {
		m, other = 2, 1
	}
	if got := ts.LiveMasters(); len(got) != 1 || got[0] != ts.info.Hosts[m].UUID {
		t.Fatalf("masters %v, want host %d", got, m)
	}
	ts.login(m)
	ts.wantSlaveOf(other, m)
	for _, h := range ts.State().Hosts {
		if h.Emergency {
			t.Fatalf("%s still in emergency mode after xhad named the new master", h.Name)
		}
	}
}

// post sends a JSON-RPC call with its own client and returns the transport
// error, if any.
func post(c *http.Client, url, method string, params ...any) error {
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": method, "params": params, "id": 1})
	resp, err := c.Post(url+"/jsonrpc", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestPoweredOffHostIsSilent(t *testing.T) {
	ts := newTestSim(t, Config{Hosts: 2})
	ts.must(ts.PowerOff(1))
	c := &http.Client{Timeout: 300 * time.Millisecond}
	start := time.Now()
	err := post(c, ts.url(1), "session.login_with_password", "root", "xenroot", "1.0", "t")
	if d := time.Since(start); !isTimeout(err) || d < 300*time.Millisecond {
		t.Fatalf("a powered-off host answered %v after %v; want silence until the client's deadline", err, d)
	}

	// Opt in to refusal for this host: refused at once.
	ts.must(ts.SetRefuseWhenDown(1, true))
	slow := &http.Client{Timeout: 5 * time.Second}
	start = time.Now()
	err = post(slow, ts.url(1), "session.login_with_password", "root", "xenroot", "1.0", "t")
	if d := time.Since(start); !errors.Is(err, syscall.ECONNREFUSED) || d > 2*time.Second {
		t.Fatalf("refusing host: %v after %v, want connection refused at once", err, d)
	}
	if !ts.hostState(1).RefuseWhenDown {
		t.Fatal("state does not show the refusal")
	}
	ts.must(ts.SetRefuseWhenDown(1, false))
	if err := post(c, ts.url(1), "session.login_with_password", "root", "xenroot", "1.0", "t"); !isTimeout(err) {
		t.Fatalf("silent again: %v", err)
	}
	ts.must(ts.PowerOn(1))
	ts.wantSlaveOf(1, 0)
}

func TestRefuseWhenDownConfig(t *testing.T) {
	ts := newTestSim(t, Config{Hosts: 2, RefuseWhenDown: true})
	ts.must(ts.PowerOff(1))
	c := &http.Client{Timeout: 5 * time.Second}
	start := time.Now()
	err := post(c, ts.url(1), "session.login_with_password", "root", "xenroot", "1.0", "t")
	if d := time.Since(start); !errors.Is(err, syscall.ECONNREFUSED) || d > 2*time.Second {
		t.Fatalf("%v after %v, want connection refused at once", err, d)
	}
	ts.must(ts.PowerOn(1))
	ts.wantSlaveOf(1, 0)
}

// waitInFlight waits until the simulator serves n requests.
func waitInFlight(t *testing.T, s *Sim, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.reqCount.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests in flight, want %d", s.reqCount.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPowerLostUnderARequest(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		name := "silent"
		if refuse {
			name = "refused"
		}
		t.Run(name, func(t *testing.T) {
			ts := newTestSim(t, Config{Hosts: 2, RefuseWhenDown: refuse})
			sess := ts.login(0)
			tok := ts.mustCall(0, "event.from", sess, []any{"host"}, "", 0.0).(map[string]any)["token"].(string)
			c := &http.Client{Timeout: 700 * time.Millisecond}
			done := make(chan error, 1)
			start := time.Now()
			go func() { done <- post(c, ts.url(0), "event.from", sess, []any{"host"}, tok, 3600.0) }()
			waitInFlight(t, ts.Sim, 1)
			ts.must(ts.PowerOff(0))
			err := <-done
			d := time.Since(start)
			switch {
			case err == nil:
				t.Fatal("a host without power answered")
			case !refuse && (!isTimeout(err) || d < 700*time.Millisecond):
				t.Fatalf("%v after %v: want the request to hang until the client's deadline", err, d)
			case refuse && isTimeout(err):
				t.Fatalf("%v: want the connection dropped at once", err)
			}
		})
	}
}

func TestCloseReleasesHungRequests(t *testing.T) {
	base := runtime.NumGoroutine()
	fc := NewFakeClock()
	s, err := New(Config{Hosts: 4, Clock: fc, Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	info := s.Info()
	for _, f := range []error{s.PowerOff(1), s.HangXAPI(2, true), s.SlowXAPI(3, time.Hour), s.BMCDown(0, true)} {
		if f != nil {
			t.Fatal(f)
		}
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr} // no deadline: only Close can end these
	res, apiErr, err := rawCall(info.Hosts[0].URL, "session.login_with_password", "root", "xenroot", "1.0", "t")
	if err != nil || apiErr != nil {
		t.Fatal(err, apiErr)
	}
	sess := res.(string)
	res, _, _ = rawCall(info.Hosts[0].URL, "event.from", sess, []any{"host"}, "", 0.0)
	tok := res.(map[string]any)["token"].(string)

	const each = 5
	reqs := []func() error{
		func() error {
			return post(c, info.Hosts[1].URL, "session.login_with_password", "root", "xenroot", "1.0", "t")
		},
		func() error { return post(c, info.Hosts[2].URL, "pool.get_all", "OpaqueRef:x") },
		func() error { return post(c, info.Hosts[3].URL, "pool.get_all", "OpaqueRef:x") },
		func() error { return post(c, info.Hosts[0].URL, "event.from", sess, []any{"host"}, tok, 3600.0) },
		func() error {
			req, _ := http.NewRequest("POST", info.Hosts[0].BMCURL+redfishSystem+"/Actions/ComputerSystem.Reset",
				strings.NewReader(`{"ResetType":"ForceOff"}`))
			req.SetBasicAuth("admin", "bmcpass")
			resp, err := c.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			return err
		},
		func() error {
			resp, err := c.Get(info.Hosts[0].BMCURL + redfishSystem)
			if err == nil {
				resp.Body.Close()
			}
			return err
		},
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(reqs)*each)
	for _, r := range reqs {
		for range each {
			wg.Add(1)
			go func() { defer wg.Done(); errs <- r() }()
		}
	}
	waitInFlight(t, s, int64(len(reqs)*each))
	time.Sleep(50 * time.Millisecond)
	if len(errs) != 0 {
		t.Fatalf("%d requests ended before Close", len(errs))
	}

	s.Close()
	released := make(chan struct{})
	go func() { wg.Wait(); close(released) }()
	select {
	case <-released:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release the hung requests")
	}
	close(errs)
	for err := range errs {
		if err == nil {
			t.Fatal("a released request got an answer")
		}
	}
	if n := s.reqCount.Load(); n != 0 {
		t.Fatalf("%d requests still held after Close", n)
	}
	tr.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before New:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestControlEndpointRestartsAndTimeouts(t *testing.T) {
	ts := newTestSim(t, Config{Hosts: 3})
	post := func(path string) int {
		resp, err := http.Post(ts.info.ControlURL+path, "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	ts.must(ts.PowerOff(0))
	if code := post("/hosts/1/restart-toolstack"); code != 200 {
		t.Fatalf("restart-toolstack: HTTP %d", code)
	}
	ts.wantEmergency(1)
	if code := post("/hosts/0/restart-toolstack"); code != 409 {
		t.Fatalf("restart-toolstack of a host without power: HTTP %d", code)
	}
	if code := post("/master-connection-retry-timeout?timeout=60s"); code != 200 {
		t.Fatalf("retry timeout: HTTP %d", code)
	}
	if w := ts.State(); w.MasterConnectionRetryTimeout != 60 {
		t.Fatalf("retry timeout in state: %v", w.MasterConnectionRetryTimeout)
	}
	ts.clock.Advance(63 * time.Second)
	ts.wantEmergency(2)
	if code := post("/master-connection-retry-timeout?timeout=soon"); code != 400 {
		t.Fatalf("bad timeout: HTTP %d", code)
	}
	if code := post("/master-connection-retry-timeout?timeout=0"); code != 200 || ts.State().MasterConnectionRetryTimeout != -1 {
		t.Fatalf("unset: HTTP %d", code)
	}
	if code := post("/hosts/0/refuse-when-down"); code != 200 || !ts.hostState(0).RefuseWhenDown {
		t.Fatalf("refuse-when-down: HTTP %d", code)
	}
	if code := post("/hosts/0/silent-when-down"); code != 200 || ts.hostState(0).RefuseWhenDown {
		t.Fatalf("silent-when-down: HTTP %d", code)
	}
}
