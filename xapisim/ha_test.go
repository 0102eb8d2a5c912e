package xapisim

import (
	"slices"
	"testing"
	"time"
)

const T = 30 * time.Second

// TestXenHASurvivorRules drives xhad's decision table on the fake clock.
func TestXenHASurvivorRules(t *testing.T) {
	cases := map[string]struct {
		hosts int
		// fault is applied with host indexes sorted by UUID: order[0] has the
		// lowest UUID.
		fault func(ts *tsim, order []int)
		// wantFenced / wantMaster name positions in that order.
		wantFenced []int
		wantMaster int
	}{
		"3 hosts, partition 2+1: the single host fences": {
			hosts: 3,
			fault: func(ts *tsim, o []int) {
				ts.must(ts.CutLink(o[0], o[2], true))
				ts.must(ts.CutLink(o[1], o[2], true))
			},
			wantFenced: []int{2}, wantMaster: -1,
		},
		"2 hosts, partition: the higher UUID fences": {
			hosts:      2,
			fault:      func(ts *tsim, o []int) { ts.must(ts.CutLink(o[0], o[1], true)) },
			wantFenced: []int{1}, wantMaster: -1,
		},
		"storage lost everywhere, network intact: all survive": {
			hosts: 3,
			fault: func(ts *tsim, o []int) {
				for _, i := range o {
					ts.must(ts.CutStorage(i, true))
				}
			},
			wantFenced: nil, wantMaster: -1,
		},
		"one host loses the statefile: it fences": {
			hosts:      3,
			fault:      func(ts *tsim, o []int) { ts.must(ts.CutStorage(o[1], true)) },
			wantFenced: []int{1}, wantMaster: -1,
		},
		"4 hosts split 2+2: the half with the lowest UUID survives": {
			hosts: 4,
			fault: func(ts *tsim, o []int) {
				for _, a := range []int{o[0], o[3]} {
					for _, b := range []int{o[1], o[2]} {
						ts.must(ts.CutLink(a, b, true))
					}
				}
			},
			wantFenced: []int{1, 2}, wantMaster: -1,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ts := newTestSim(t, Config{Hosts: tc.hosts, DisableHeartbeatSelfFence: true})
			ts.must(ts.EnableHA(0, T))
			order := ts.byUUIDOrder()
			tc.fault(ts, order)
			ts.clock.Advance(T - time.Second)
			for _, h := range ts.State().Hosts {
				if !h.Powered {
					t.Fatalf("%s fenced before T", h.Name)
				}
			}
			ts.clock.Advance(2 * time.Second)
			st := ts.State()
			var fenced []int
			for pos, i := range order {
				if !st.Hosts[i].Powered {
					fenced = append(fenced, pos)
				}
			}
			if !slices.Equal(fenced, tc.wantFenced) {
				t.Fatalf("fenced positions %v, want %v (decisions %+v)", fenced, tc.wantFenced, st.Pools[0].Decisions)
			}
			if m := ts.LiveMasters(); len(m) != 1 {
				t.Fatalf("live masters %v", m)
			}
		})
	}
}

func TestXenHAMasterCrash(t *testing.T) {
	ts := newTestSim(t, Config{Hosts: 3, DisableHeartbeatSelfFence: true})
	protected, err := ts.AddVM(0, "db", true)
	ts.must(err)
	ts.must(ts.EnableHA(0, T))
	ts.must(ts.PowerOff(0))

	// Until xhad decides, slaves are normal slaves of the dead master: they
	// still name it (pool.conf), and none is in emergency mode.
	_, e := ts.call(1, "session.login_with_password", "root", "xenroot", "1.0", "t")
	ts.wantErr(e, "HOST_IS_SLAVE")
	if e.Array || e.Params[0] != ts.info.Hosts[0].Address {
		t.Fatalf("a slave of a dead master still names it: %+v", e)
	}
	if ts.hostState(1).Emergency || ts.hostState(2).Emergency {
		t.Fatal("a running slave entered emergency mode on its own")
	}
	// The bridge must not be able to promote anyone in an HA pool.
	_, e = ts.call(1, "pool.emergency_transition_to_master", ts.localLogin(1))
	ts.wantErr(e, "HA_IS_ENABLED")
	_, e = ts.call(2, "pool.emergency_reset_master", ts.localLogin(2), ts.info.Hosts[1].Address)
	ts.wantErr(e, "HA_IS_ENABLED")

	ts.clock.Advance(T + time.Second)
	order := ts.byUUIDOrder()
	var want int
	for _, i := range order {
		if i != 0 {
			want = i
			break
		}
	}
	if m := ts.LiveMasters(); len(m) != 1 || m[0] != ts.info.Hosts[want].UUID {
		t.Fatalf("new master %v, want host %d (lowest surviving UUID)", m, want)
	}
	sess := ts.login(want)
	st := ts.State()
	if st.Hosts[0].Live {
		t.Fatal("the dead master is still live after XenHA's decision")
	}
	for _, vm := range st.Pools[0].VMs {
		switch {
		case vm.UUID == protected:
			if vm.PowerState != "Running" || vm.ResidentOn == ts.info.Hosts[0].UUID || vm.ResidentOn == "" {
				t.Fatalf("protected VM not restarted on a survivor: %+v", vm)
			}
		case vm.ResidentOn == ts.info.Hosts[0].UUID:
			t.Fatalf("VM still resident on the dead master: %+v", vm)
		}
	}
	// The other survivor follows the new master.
	other := 3 - want
	_, e = ts.call(other, "session.login_with_password", "root", "xenroot", "1.0", "t")
	ts.wantErr(e, "HOST_IS_SLAVE")
	if e.Params[0] != ts.info.Hosts[want].Address {
		t.Fatalf("survivor follows %v", e.Params)
	}
	_ = sess

	// The old master boots back as a slave of the new one: XenHA never has two.
	ts.must(ts.PowerOn(0))
	if m := ts.LiveMasters(); len(m) != 1 {
		t.Fatalf("after the old master returned: %v", m)
	}
	_, e = ts.call(0, "session.login_with_password", "root", "xenroot", "1.0", "t")
	ts.wantErr(e, "HOST_IS_SLAVE")
}

func TestXenHAShortStorageOutageFencesNobody(t *testing.T) {
	ts := newTestSim(t, Config{Hosts: 3, DisableHeartbeatSelfFence: true})
	ts.must(ts.EnableHA(0, T))
	ts.must(ts.CutStorage(1, true))
	ts.clock.Advance(T / 2)
	ts.must(ts.CutStorage(1, false))
	ts.clock.Advance(2 * T)
	for _, h := range ts.State().Hosts {
		if !h.Powered {
			t.Fatalf("%s fenced for an outage shorter than T", h.Name)
		}
	}
}

func TestXenHAFencedHostRejoinsAfterReboot(t *testing.T) {
	ts := newTestSim(t, Config{Hosts: 3, DisableHeartbeatSelfFence: true, RebootTime: 90 * time.Second})
	ts.must(ts.EnableHA(0, T))
	ts.must(ts.CutStorage(2, true))
	ts.clock.Advance(T + time.Second)
	if ts.hostState(2).Powered {
		t.Fatal("host without statefile not fenced")
	}
	ts.clock.Advance(90 * time.Second)
	st := ts.hostState(2)
	if !st.Powered || !st.Booting {
		t.Fatalf("back from reboot without storage it waits, booting: %+v", st)
	}
	_, e := ts.call(2, "session.login_with_password", "root", "xenroot", "1.0", "t")
	ts.wantErr(e, "HA_HOST_CANNOT_ACCESS_STATEFILE")
	ts.must(ts.CutStorage(2, false))
	if st := ts.hostState(2); st.Booting || !st.InLiveset || !st.Live {
		t.Fatalf("with storage back it rejoins the liveset: %+v", st)
	}
}

func TestHAPlanComputedWithoutProtectedVMs(t *testing.T) {
	ts := newTestSim(t, Config{Hosts: 3})
	ts.must(ts.EnableHA(0, 60*time.Second))
	sess := ts.login(0)
	for _, p := range ts.mustCall(0, "pool.get_all_records", sess).(map[string]any) {
		rec := p.(map[string]any)
		if rec["ha_enabled"] != true || rec["ha_plan_exists_for"] != 1.0 ||
			rec["ha_configuration"].(map[string]any)["timeout"] != "60" || len(rec["ha_statefiles"].([]any)) != 1 {
			t.Fatalf("pool record %v", rec)
		}
	}
	ts.must(ts.DisableHA(0))
	_, e := ts.call(0, "pool.disable_ha", sess)
	ts.wantErr(e, "HA_NOT_ENABLED")
}

func TestEmergencyHADisableDisarmsOneHost(t *testing.T) {
	ts := newTestSim(t, Config{Hosts: 3, DisableHeartbeatSelfFence: true})
	ts.must(ts.EnableHA(0, T))
	ts.mustCall(2, "host.emergency_ha_disable", ts.localLogin(2), true)
	ts.must(ts.CutStorage(2, true))
	ts.clock.Advance(2 * T)
	if !ts.hostState(2).Powered {
		t.Fatal("a disarmed host fenced itself")
	}
	// The pool still says HA is on: the ha_armed / ha_enabled mismatch.
	if !ts.State().Pools[0].HAEnabled {
		t.Fatal("pool.ha_enabled changed by a host-local disarm")
	}
}
