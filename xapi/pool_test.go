package xapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sync"
	"testing"
	"time"
)

// newFakePool starts n hosts on 127.10.<net>.1..n (every member has its own
// loopback IP, like real pool members), the first one master.
func newFakePool(t *testing.T, subnet, n int) ([]*fakeHost, *Pool) {
	t.Helper()
	hosts := make([]*fakeHost, n)
	urls := make([]string, n)
	for i := range hosts {
		hosts[i] = newFakeHost(t, fmt.Sprintf("127.10.%d.%d", subnet, i+1))
		hosts[i].handle("pool.get_all", func([]json.RawMessage) (any, error) { return []string{"OpaqueRef:p"}, nil })
		urls[i] = hosts[i].URL()
	}
	for _, h := range hosts[1:] {
		h.setSlave(hosts[0].Addr())
	}
	p, err := NewPool(urls, testCreds(), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return hosts, p
}

func deadURL(t *testing.T, ip string) string {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}

func mustMaster(t *testing.T, p *Pool, want *fakeHost) *Client {
	t.Helper()
	c, err := p.Master(context.Background())
	if err != nil {
		t.Fatalf("Master: %v", err)
	}
	if c.URL() != want.URL() {
		t.Fatalf("master %s, want %s", c.URL(), want.URL())
	}
	if _, err := c.Call(context.Background(), "pool.get_all"); err != nil {
		t.Fatalf("call on master: %v", err)
	}
	return c
}

func TestNewPool(t *testing.T) {
	if _, err := NewPool(nil, testCreds(), testOpts()); err == nil {
		t.Fatal("empty member list accepted")
	}
	if _, err := NewPool([]string{"ftp://x"}, testCreds(), testOpts()); err == nil {
		t.Fatal("bad URL accepted")
	}
	p, err := NewPool([]string{"http://127.0.0.1:1/", "http://127.0.0.1:1", "http://127.0.0.2:1"}, testCreds(), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"http://127.0.0.1:1", "http://127.0.0.2:1"}; !reflect.DeepEqual(p.Members(), want) {
		t.Fatalf("members %q, want %q", p.Members(), want)
	}
}

func TestPoolProbe(t *testing.T) {
	hosts, _ := newFakePool(t, 1, 4)
	hosts[2].setEmergency(CodeHAHostCannotAccessStatefile)
	hosts[3].mu.Lock()
	hosts[3].pass = "something else" // a second master, with other credentials
	hosts[3].role = "master"
	hosts[3].mu.Unlock()
	dead := deadURL(t, "127.10.1.5")
	members := []string{hosts[0].URL(), hosts[1].URL(), hosts[2].URL(), hosts[3].URL(), dead}
	p, err := NewPool(members, testCreds(), testOpts())
	if err != nil {
		t.Fatal(err)
	}

	got := p.Probe(context.Background())
	want := []struct {
		state ProbeState
		name  string
	}{{ProbeMaster, "master"}, {ProbeSlave, "slave"}, {ProbeEmergency, "emergency"}, {ProbeAuthFailed, "auth-failed"}, {ProbeUnreachable, "unreachable"}}
	if len(got) != len(want) {
		t.Fatalf("probes %v", got)
	}
	for i, w := range want {
		if got[i].URL != members[i] || got[i].State != w.state || got[i].State.String() != w.name {
			t.Errorf("probe %d = %v, want %s", i, got[i], w.name)
		}
	}
	if got[0].Err != nil || got[1].MasterAddress != hosts[0].Addr() || !IsEmergency(got[2].Err) ||
		!IsAuthFailed(got[3].Err) || !IsUnreachable(got[4].Err) {
		t.Fatalf("probe details %v", got)
	}
	if n := hosts[0].liveSessions(); n != 0 {
		t.Fatalf("probe left %d sessions on the master", n)
	}
	if ProbeState(99).String() != "unknown" || ProbeError.String() != "error" {
		t.Fatal("ProbeState.String")
	}
}

func TestPoolMasterCachedAndSingleSearch(t *testing.T) {
	hosts, p := newFakePool(t, 2, 3)
	var wg sync.WaitGroup
	clients := make([]*Client, 20)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := p.Master(context.Background())
			if err != nil {
				t.Error(err)
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	for _, c := range clients {
		if c != clients[0] || c.URL() != hosts[0].URL() {
			t.Fatalf("different masters returned: %v", c)
		}
	}
	for i, h := range hosts {
		if n := h.loginTries.Load(); n != 1 {
			t.Fatalf("host %d probed %d times, want 1", i, n)
		}
	}
	// The probe's session is kept for the master: no second login.
	mustMaster(t, p, hosts[0])
	if n := hosts[0].loginTries.Load(); n != 1 {
		t.Fatalf("master logins = %d, want 1 (probe session adopted)", n)
	}
}

func TestPoolLastMasterDead(t *testing.T) {
	hosts, p := newFakePool(t, 3, 3)
	mustMaster(t, p, hosts[0])

	hosts[0].srv.Close() // the master dies; hosts[1] takes over
	hosts[1].setMaster()
	hosts[2].setSlave(hosts[1].Addr())
	p.Invalidate()
	mustMaster(t, p, hosts[1])
}

func TestPoolRedirectFollowed(t *testing.T) {
	hosts, p := newFakePool(t, 4, 3)
	mustMaster(t, p, hosts[0])
	before := hosts[2].loginTries.Load()

	// A designated master change: the old master now redirects.
	hosts[0].setSlave(hosts[1].Addr())
	hosts[1].setMaster()
	hosts[2].setSlave(hosts[1].Addr())
	p.Invalidate()
	mustMaster(t, p, hosts[1])
	if hosts[2].loginTries.Load() != before {
		t.Fatal("the redirect should have been followed without probing every member")
	}
}

func TestPoolRedirectToNonMember(t *testing.T) {
	hosts, p := newFakePool(t, 5, 2)
	// The master is not in the member list: it listens on 127.10.5.9 with
	// the port of the member that names it.
	m := newFakeHostAt(t, "127.10.5.9", hosts[0].Port())
	m.handle("pool.get_all", func([]json.RawMessage) (any, error) { return []string{}, nil })
	hosts[0].setSlave("127.10.5.9")
	hosts[1].setSlave("127.10.5.9")
	mustMaster(t, p, m)
	if !reflect.DeepEqual(p.Members(), []string{hosts[0].URL(), hosts[1].URL()}) {
		t.Fatalf("members changed: %v", p.Members())
	}
}

func TestPoolMasterLost(t *testing.T) {
	t.Run("slaves in emergency", func(t *testing.T) {
		hosts, p := newFakePool(t, 6, 3)
		hosts[0].srv.Close()
		hosts[1].setEmergency(CodeHostStillBooting)
		hosts[2].setEmergency(CodeHAHostCannotAccessStatefile)

		_, err := p.Master(context.Background())
		if !errors.Is(err, ErrMasterLost) {
			t.Fatalf("err = %v, want ErrMasterLost", err)
		}
		var lost *MasterLostError
		if !errors.As(err, &lost) || len(lost.Probes) != 3 {
			t.Fatalf("err %T %v", err, err)
		}
		states := []ProbeState{lost.Probes[0].State, lost.Probes[1].State, lost.Probes[2].State}
		if !reflect.DeepEqual(states, []ProbeState{ProbeUnreachable, ProbeEmergency, ProbeEmergency}) {
			t.Fatalf("states %v", states)
		}
	})
	t.Run("slaves still point at the dead master", func(t *testing.T) {
		hosts, p := newFakePool(t, 7, 3)
		hosts[0].srv.Close()
		_, err := p.Master(context.Background())
		var lost *MasterLostError
		if !errors.As(err, &lost) || lost.Probes[1].State != ProbeSlave || lost.Probes[1].MasterAddress != hosts[0].Addr() {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestPoolMultipleMasters(t *testing.T) {
	hosts, p := newFakePool(t, 8, 3)
	hosts[2].setMaster()
	_, err := p.Master(context.Background())
	if !errors.Is(err, ErrMultipleMasters) {
		t.Fatalf("err = %v, want ErrMultipleMasters", err)
	}
	var mm *MultipleMastersError
	if !errors.As(err, &mm) || !reflect.DeepEqual(mm.Masters, []string{hosts[0].URL(), hosts[2].URL()}) || len(mm.Probes) != 3 {
		t.Fatalf("err %v", err)
	}
	if hosts[0].liveSessions()+hosts[2].liveSessions() != 0 {
		t.Fatal("probe sessions must be logged out when no master is chosen")
	}
}

func TestPoolAuthFailed(t *testing.T) {
	hosts, _ := newFakePool(t, 9, 2)
	p, err := NewPool([]string{hosts[0].URL(), hosts[1].URL()}, Credentials{Username: "root", Password: "bad"}, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Master(context.Background()); !IsAuthFailed(err) {
		t.Fatalf("err = %v, want auth failure", err)
	}
}

func TestPoolDo(t *testing.T) {
	t.Run("retries once after HOST_IS_SLAVE", func(t *testing.T) {
		hosts, p := newFakePool(t, 10, 3)
		mustMaster(t, p, hosts[0])
		hosts[0].setSlave(hosts[1].Addr())
		hosts[1].setMaster()

		var used []string
		err := p.Do(context.Background(), func(c *Client) error {
			used = append(used, c.URL())
			_, err := c.Call(context.Background(), "pool.get_all")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(used, []string{hosts[0].URL(), hosts[1].URL()}) {
			t.Fatalf("fn ran on %v", used)
		}
	})
	t.Run("retries once after the master became unreachable", func(t *testing.T) {
		hosts, p := newFakePool(t, 11, 3)
		mustMaster(t, p, hosts[0])
		hosts[0].srv.Close()
		hosts[1].setMaster()
		hosts[2].setSlave(hosts[1].Addr())
		calls := 0
		err := p.Do(context.Background(), func(c *Client) error {
			calls++
			_, err := c.Call(context.Background(), "pool.get_all")
			return err
		})
		if err != nil || calls != 2 {
			t.Fatalf("err %v after %d calls", err, calls)
		}
	})
	t.Run("only once", func(t *testing.T) {
		_, p := newFakePool(t, 12, 2)
		calls := 0
		err := p.Do(context.Background(), func(*Client) error {
			calls++
			return &Error{Code: CodeHostIsSlave, Params: []string{"127.10.12.1"}}
		})
		if !IsCode(err, CodeHostIsSlave) || calls != 2 {
			t.Fatalf("err %v after %d calls, want HOST_IS_SLAVE after 2", err, calls)
		}
	})
	t.Run("API errors are not retried", func(t *testing.T) {
		_, p := newFakePool(t, 13, 2)
		calls := 0
		err := p.Do(context.Background(), func(*Client) error {
			calls++
			return &Error{Code: CodeHostOffline}
		})
		if !IsCode(err, CodeHostOffline) || calls != 1 {
			t.Fatalf("err %v after %d calls", err, calls)
		}
	})
	t.Run("no master", func(t *testing.T) {
		hosts, p := newFakePool(t, 14, 2)
		hosts[0].setEmergency(CodeHostStillBooting)
		hosts[1].setEmergency(CodeHostStillBooting)
		err := p.Do(context.Background(), func(*Client) error { t.Fatal("fn must not run"); return nil })
		if !errors.Is(err, ErrMasterLost) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestPoolSlaveLocalAndClose(t *testing.T) {
	hosts, p := newFakePool(t, 15, 2)
	ctx := context.Background()
	mustMaster(t, p, hosts[0])

	hosts[1].setEmergency(CodeHostStillBooting)
	hosts[1].handle("host.emergency_ha_disable", func([]json.RawMessage) (any, error) { return "", nil })
	sl, err := p.SlaveLocal(hosts[1].URL())
	if err != nil {
		t.Fatal(err)
	}
	if err := sl.HostEmergencyHADisable(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := sl.Close(ctx); err != nil {
		t.Fatal(err)
	}

	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := hosts[0].liveSessions(); n != 0 {
		t.Fatalf("Close left %d sessions on the master", n)
	}
	if _, err := p.Master(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Master after Close = %v", err)
	}
}

// Many goroutines share a Pool while the master moves back and forth; run
// with -race. Calls may fail during a switch, never panic or race, and the
// pool ends up on the final master.
func TestPoolConcurrentDoDuringSwitches(t *testing.T) {
	hosts, p := newFakePool(t, 16, 3)
	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := p.Do(ctx, func(c *Client) error {
					_, err := c.Call(ctx, "pool.get_all")
					return err
				})
				if err != nil && !errors.Is(err, ErrMasterLost) && !errors.Is(err, ErrMultipleMasters) && !IsCode(err, CodeHostIsSlave) {
					t.Errorf("unexpected error: %v", err)
					return
				}
			}
		}()
	}
	for i := 0; i < 10; i++ {
		from, to := hosts[i%2], hosts[(i+1)%2]
		from.setSlave(to.Addr())
		to.setMaster()
		hosts[2].setSlave(to.Addr())
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	p.Invalidate()
	mustMaster(t, p, hosts[0]) // i=9: hosts[1] → hosts[0]
}
