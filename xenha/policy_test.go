package xenha

import (
	"strings"
	"testing"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/xapi"
)

func TestPolicyTable(t *testing.T) {
	cases := []struct {
		policy   Policy
		observed bool
		ha       bool
		want     Controller
	}{
		{PolicyAuto, true, true, ControllerXenHA},
		{PolicyAuto, true, false, ControllerCloudStack},
		{"", true, false, ControllerCloudStack},
		{PolicyRequireXenHA, true, true, ControllerXenHA},
		{PolicyRequireXenHA, true, false, ControllerNone},
		{PolicyRequireCloudStack, true, true, ControllerNone},
		{PolicyRequireCloudStack, true, false, ControllerCloudStack},
		{PolicyObserve, true, true, ControllerNone},
		{PolicyObserve, true, false, ControllerNone},
		{PolicyAuto, false, true, ControllerNone},
		{PolicyAuto, false, false, ControllerNone},
	}
	for _, tc := range cases {
		if got := Decide(tc.policy, tc.observed, tc.ha); got != tc.want {
			t.Errorf("Decide(%q, observed=%v, ha=%v) = %v, want %v", tc.policy, tc.observed, tc.ha, got, tc.want)
		}
	}
	if _, err := ParsePolicy("yolo"); err == nil {
		t.Error("an unknown policy was accepted")
	}
}

// fakeState builds a pool state of n hosts (UUIDs h0 < h1 < ...), all live,
// with one shared SR plugged everywhere.
func fakeState(n int, ha bool, timeout string) *poolState {
	st := newPoolState()
	st.poolRef = "OpaqueRef:pool"
	st.pool = xapi.PoolRecord{UUID: "pool-uuid", Master: "OpaqueRef:h0", HAEnabled: ha}
	if ha {
		st.pool.HAConfiguration = map[string]string{"timeout": timeout}
	}
	st.srs["OpaqueRef:sr"] = xapi.SRRecord{UUID: "sr-uuid", Shared: true}
	for i := range n {
		id := string(rune('0' + i))
		ref := xapi.HostRef("OpaqueRef:h" + id)
		st.hosts[ref] = xapi.HostRecord{UUID: "h" + id, NameLabel: "host-" + id, Address: "10.0.0." + id,
			Enabled: true, Metrics: xapi.HostMetricsRef("OpaqueRef:m" + id)}
		st.metrics[xapi.HostMetricsRef("OpaqueRef:m"+id)] = xapi.HostMetricsRecord{Live: true}
		st.pbds[xapi.PBDRef("OpaqueRef:pbd"+id)] = xapi.PBDRecord{Host: ref, SR: "OpaqueRef:sr", CurrentlyAttached: true}
	}
	return st
}

func codes(ws []Warning) []WarningCode {
	var out []WarningCode
	for _, w := range ws {
		out = append(out, w.Code)
	}
	return out
}

func has(ws []Warning, c WarningCode) (Warning, bool) {
	for _, w := range ws {
		if w.Code == c {
			return w, true
		}
	}
	return Warning{}, false
}

func TestWarnings(t *testing.T) {
	spec := PoolSpec{Name: "p", Policy: PolicyAuto, StorageTimeout: 120 * time.Second}
	master := func(st *poolState) observation { return observation{state: st, connected: true} }
	protect := func(st *poolState) {
		st.vms["OpaqueRef:vm"] = xapi.VMRecord{UUID: "vm", HARestartPriority: "restart", PowerState: "Running"}
	}
	cases := map[string]struct {
		spec    func(*PoolSpec)
		ob      func() observation
		want    WarningCode
		absent  bool
		mention string
	}{
		"two-host XenHA pool names the higher UUID": {
			ob:   func() observation { st := fakeState(2, true, "180"); protect(st); return master(st) },
			want: WarnTwoHostPool, mention: "host-1 (h1)",
		},
		"T at the storage timeout is aggressive": {
			ob:   func() observation { st := fakeState(3, true, "120"); protect(st); return master(st) },
			want: WarnAggressiveFencing, mention: "T=2m0s",
		},
		"T above the storage timeout is fine": {
			ob:   func() observation { st := fakeState(3, true, "180"); protect(st); return master(st) },
			want: WarnAggressiveFencing, absent: true,
		},
		"XenHA without protected VMs": {
			ob:   func() observation { return master(fakeState(3, true, "180")) },
			want: WarnNoProtectedVMs,
		},
		"two hosts answer as master": {
			ob: func() observation {
				ob := master(fakeState(3, false, ""))
				ob.probes = []xapi.Probe{
					{URL: "https://10.0.0.0", State: xapi.ProbeMaster},
					{URL: "https://10.0.0.1", State: xapi.ProbeMaster},
					{URL: "https://10.0.0.2", State: xapi.ProbeSlave},
				}
				return ob
			},
			want: WarnSplitBrain, mention: "h0, h1",
		},
		"master unreachable": {
			ob:   func() observation { ob := master(fakeState(3, false, "")); ob.connected = false; return ob },
			want: WarnMasterUnreachable, mention: "host-0",
		},
		"a probe newer than the connection saying the master is gone beats it": {
			ob: func() observation {
				ob := master(fakeState(3, false, ""))
				ob.connectedAt = time.Unix(100, 0)
				ob.probes, ob.probedAt = []xapi.Probe{{URL: "https://10.0.0.0", State: xapi.ProbeUnreachable}}, time.Unix(200, 0)
				return ob
			},
			want: WarnMasterUnreachable,
		},
		"a probe older than the connection does not": {
			ob: func() observation {
				ob := master(fakeState(3, false, ""))
				ob.connectedAt = time.Unix(200, 0)
				ob.probes, ob.probedAt = []xapi.Probe{{URL: "https://10.0.0.0", State: xapi.ProbeEmergency}}, time.Unix(100, 0)
				return ob
			},
			want: WarnMasterUnreachable, absent: true,
		},
		"CloudStack wanted while XenHA is on": {
			spec: func(s *PoolSpec) { s.Policy = PolicyRequireCloudStack },
			ob:   func() observation { st := fakeState(3, true, "180"); protect(st); return master(st) },
			want: WarnPolicyConflict, mention: "two captains",
		},
		"XenHA required but off": {
			spec: func(s *PoolSpec) { s.Policy = PolicyRequireXenHA },
			ob:   func() observation { return master(fakeState(3, false, "")) },
			want: WarnXenHARequired,
		},
		"not observed yet": {
			ob:   func() observation { return observation{} },
			want: WarnNotObserved,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			sp := spec
			if tc.spec != nil {
				tc.spec(&sp)
			}
			v := derive(sp, tc.ob(), 1)
			w, ok := has(v.Warnings, tc.want)
			if tc.absent {
				if ok {
					t.Fatalf("unexpected %s: %s", tc.want, w.Message)
				}
				return
			}
			if !ok {
				t.Fatalf("want %s, got %v", tc.want, codes(v.Warnings))
			}
			if !strings.Contains(w.Message, tc.mention) {
				t.Fatalf("%q does not mention %q", w.Message, tc.mention)
			}
		})
	}
}

func TestEligibility(t *testing.T) {
	spec := PoolSpec{Name: "p", Policy: PolicyAuto, StorageTimeout: 120 * time.Second}
	ok := derive(spec, observation{state: fakeState(3, false, ""), connected: true}, 1)
	if !ok.Eligibility.Eligible {
		t.Fatalf("3 live hosts with shared storage: %v", ok.Eligibility.Reasons)
	}
	st := fakeState(2, false, "")
	delete(st.pbds, "OpaqueRef:pbd1")
	st.metrics["OpaqueRef:m0"] = xapi.HostMetricsRecord{Live: false}
	v := derive(spec, observation{state: st, connected: true}, 1)
	r := strings.Join(v.Eligibility.Reasons, " | ")
	if v.Eligibility.Eligible || !strings.Contains(r, "2 host(s)") || !strings.Contains(r, "No shared SR") || !strings.Contains(r, "host-0 (h0) is not live") {
		t.Fatalf("reasons: %s", r)
	}
}
