package xapi

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestTypedCallsWire(t *testing.T) {
	f := newFakeHost(t, "")
	c := newTestClient(t, f)
	ctx := context.Background()
	for name, tc := range map[string]struct {
		method string
		params string // JSON of the params after the session ref
		result any
		call   func() (any, error)
		want   any
	}{
		"designate": {"pool.designate_new_master", `["OpaqueRef:h2"]`, "", func() (any, error) {
			return nil, c.PoolDesignateNewMaster(ctx, "OpaqueRef:h2")
		}, nil},
		"transition": {"pool.emergency_transition_to_master", `[]`, "", func() (any, error) {
			return nil, c.PoolEmergencyTransitionToMaster(ctx)
		}, nil},
		"reset master": {"pool.emergency_reset_master", `["10.0.0.2"]`, "", func() (any, error) {
			return nil, c.PoolEmergencyResetMaster(ctx, "10.0.0.2")
		}, nil},
		"recover slaves": {"pool.recover_slaves", `[]`, []string{"OpaqueRef:h1", "OpaqueRef:h3"}, func() (any, error) {
			return c.PoolRecoverSlaves(ctx)
		}, []HostRef{"OpaqueRef:h1", "OpaqueRef:h3"}},
		"enable ha": {"pool.enable_ha", `[["OpaqueRef:sr1"],{"timeout":"60"}]`, "", func() (any, error) {
			return nil, c.PoolEnableHA(ctx, []SRRef{"OpaqueRef:sr1"}, map[string]string{"timeout": "60"})
		}, nil},
		"enable ha nils": {"pool.enable_ha", `[[],{}]`, "", func() (any, error) {
			return nil, c.PoolEnableHA(ctx, nil, nil)
		}, nil},
		"disable ha": {"pool.disable_ha", `[]`, "", func() (any, error) { return nil, c.PoolDisableHA(ctx) }, nil},
		"join": {"pool.join", `["10.0.0.1","root","joinpw"]`, "", func() (any, error) {
			return nil, c.PoolJoin(ctx, "10.0.0.1", "root", Secret("joinpw"))
		}, nil},
		"eject":    {"pool.eject", `["OpaqueRef:h3"]`, "", func() (any, error) { return nil, c.PoolEject(ctx, "OpaqueRef:h3") }, nil},
		"ha off":   {"host.emergency_ha_disable", `[true]`, "", func() (any, error) { return nil, c.HostEmergencyHADisable(ctx, true) }, nil},
		"enable":   {"host.enable", `["OpaqueRef:h1"]`, "", func() (any, error) { return nil, c.HostEnable(ctx, "OpaqueRef:h1") }, nil},
		"disable":  {"host.disable", `["OpaqueRef:h1"]`, "", func() (any, error) { return nil, c.HostDisable(ctx, "OpaqueRef:h1") }, nil},
		"shutdown": {"host.shutdown", `["OpaqueRef:h1"]`, "", func() (any, error) { return nil, c.HostShutdown(ctx, "OpaqueRef:h1") }, nil},
		"plugin": {"host.call_plugin", `["OpaqueRef:h1","vmops","check",{"vm":"v1"}]`, "True", func() (any, error) {
			return c.HostCallPlugin(ctx, "OpaqueRef:h1", "vmops", "check", map[string]string{"vm": "v1"})
		}, "True"},
		"plugin nil args": {"host.call_plugin", `["OpaqueRef:h1","p","f",{}]`, "", func() (any, error) {
			return c.HostCallPlugin(ctx, "OpaqueRef:h1", "p", "f", nil)
		}, ""},
		"power reset": {"VM.power_state_reset", `["OpaqueRef:vm1"]`, "", func() (any, error) {
			return nil, c.VMPowerStateReset(ctx, "OpaqueRef:vm1")
		}, nil},
		"get record": {"host.get_record", `["OpaqueRef:h1"]`, map[string]any{"uuid": "u1"}, func() (any, error) {
			r, err := c.HostGetRecord(ctx, "OpaqueRef:h1")
			return r.UUID, err
		}, "u1"},
		"event.from": {"event.from", `[["vm","host"],"tok",1.5]`, map[string]any{"events": []any{}, "token": "t2"}, func() (any, error) {
			b, err := c.EventFrom(ctx, []string{"vm", "host"}, "tok", 1500*time.Millisecond)
			if err != nil {
				return nil, err
			}
			return b.Token, nil
		}, "t2"},
		"event.from whole seconds": {"event.from", `[["*"],"t",30.0]`, map[string]any{"events": []any{}, "token": "t"}, func() (any, error) {
			_, err := c.EventFrom(ctx, []string{"*"}, "t", 30*time.Second)
			return nil, err
		}, nil},
		"event.from nil classes": {"event.from", `[[],"",0.0]`, map[string]any{"events": []any{}, "token": "t"}, func() (any, error) {
			_, err := c.EventFrom(ctx, nil, "", 0)
			return nil, err
		}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			seen := make(chan []json.RawMessage, 1) // the handler runs on the server's goroutine
			f.handle(tc.method, func(p []json.RawMessage) (any, error) { seen <- p; return tc.result, nil })
			res, err := tc.call()
			if err != nil {
				t.Fatal(err)
			}
			gotJSON, _ := json.Marshal(<-seen)
			if string(gotJSON) != tc.params {
				t.Fatalf("params %s, want %s", gotJSON, tc.params)
			}
			if tc.want != nil && !reflect.DeepEqual(res, tc.want) {
				t.Fatalf("result %#v, want %#v", res, tc.want)
			}
		})
	}
}

func TestRecordDecoding(t *testing.T) {
	f := newFakeHost(t, "")
	// Real-looking records with fields this package does not declare.
	f.handle("pool.get_all_records", func([]json.RawMessage) (any, error) {
		return rawJSON(`{"OpaqueRef:p1":{"uuid":"pu","name_label":"pool","master":"OpaqueRef:h1","default_SR":"OpaqueRef:NULL",
			"other_config":{"default_ha_timeout":"60"},"ha_enabled":true,"ha_configuration":{"timeout":"60"},
			"ha_statefiles":["OpaqueRef:vdi1"],"ha_host_failures_to_tolerate":1,"ha_plan_exists_for":1,
			"ha_allow_overcommit":false,"ha_overcommitted":false,"blobs":{},"tags":[],"gui_config":{},"ha_cluster_stack":"xhad"}}`), nil
	})
	f.handle("host.get_all_records", func([]json.RawMessage) (any, error) {
		return rawJSON(`{"OpaqueRef:h1":{"uuid":"hu","name_label":"xcp1","address":"10.0.0.1","hostname":"xcp1","enabled":true,
			"metrics":"OpaqueRef:m1","resident_VMs":["OpaqueRef:dom0","OpaqueRef:vm1"],"PBDs":["OpaqueRef:pbd1"],
			"ha_statefiles":["x"],"ha_network_peers":["hu2"],"software_version":{"xapi":"1.249"},"other_config":{},
			"control_domain":"OpaqueRef:dom0","API_version_major":2,"API_version_minor":21,"cpu_info":{"cpu_count":"8"},"bios_strings":{}}}`), nil
	})
	f.handle("host_metrics.get_all_records", func([]json.RawMessage) (any, error) {
		return rawJSON(`{"OpaqueRef:m1":{"uuid":"mu","live":true,"last_updated":"20240420T12:00:00Z","memory_total":274877906944,"memory_free":1073741824,"other_config":{}}}`), nil
	})
	f.handle("VM.get_all_records", func([]json.RawMessage) (any, error) {
		return rawJSON(`{"OpaqueRef:vm1":{"uuid":"vu","name_label":"web","power_state":"Running","resident_on":"OpaqueRef:h1",
			"is_control_domain":false,"is_a_template":false,"is_a_snapshot":false,"ha_restart_priority":"restart","ha_always_run":true,
			"other_config":{"k":"v"},"VCPUs_max":4,"memory_static_max":"4294967296"}}`), nil
	})
	f.handle("SR.get_all_records", func([]json.RawMessage) (any, error) {
		return rawJSON(`{"OpaqueRef:sr1":{"uuid":"su","name_label":"nfs","type":"nfs","shared":true,"PBDs":["OpaqueRef:pbd1"],"content_type":"user","other_config":{},"physical_size":1000}}`), nil
	})
	f.handle("PBD.get_all_records", func([]json.RawMessage) (any, error) {
		return rawJSON(`{"OpaqueRef:pbd1":{"uuid":"bu","host":"OpaqueRef:h1","SR":"OpaqueRef:sr1","currently_attached":true,"device_config":{"server":"nfs1","serverpath":"/x"}}}`), nil
	})
	f.handle("pool.get_record", func([]json.RawMessage) (any, error) { return rawJSON(`{"uuid":"pu","extra":1}`), nil })
	f.handle("host_metrics.get_record", func([]json.RawMessage) (any, error) { return rawJSON(`{"uuid":"mu","live":false}`), nil })
	f.handle("VM.get_record", func([]json.RawMessage) (any, error) { return rawJSON(`{"uuid":"vu","power_state":"Halted"}`), nil })
	f.handle("SR.get_record", func([]json.RawMessage) (any, error) { return rawJSON(`{"uuid":"su","shared":true}`), nil })
	f.handle("PBD.get_record", func([]json.RawMessage) (any, error) { return rawJSON(`{"uuid":"bu","currently_attached":false}`), nil })

	c := newTestClient(t, f)
	ctx := context.Background()
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	pools, err := c.PoolGetAllRecords(ctx)
	check(err)
	wantPool := PoolRecord{UUID: "pu", NameLabel: "pool", Master: "OpaqueRef:h1", DefaultSR: NullRef,
		OtherConfig: map[string]string{"default_ha_timeout": "60"}, HAEnabled: true, HAConfiguration: map[string]string{"timeout": "60"},
		HAStatefiles: []string{"OpaqueRef:vdi1"}, HAHostFailuresToTolerate: 1, HAPlanExistsFor: 1}
	if !reflect.DeepEqual(pools["OpaqueRef:p1"], wantPool) {
		t.Fatalf("pool %+v\nwant %+v", pools["OpaqueRef:p1"], wantPool)
	}

	hosts, err := c.HostGetAllRecords(ctx)
	check(err)
	wantHost := HostRecord{UUID: "hu", NameLabel: "xcp1", Address: "10.0.0.1", Hostname: "xcp1", Enabled: true, Metrics: "OpaqueRef:m1",
		ResidentVMs: []VMRef{"OpaqueRef:dom0", "OpaqueRef:vm1"}, PBDs: []PBDRef{"OpaqueRef:pbd1"}, HAStatefiles: []string{"x"},
		HANetworkPeers: []string{"hu2"}, SoftwareVersion: map[string]string{"xapi": "1.249"}, OtherConfig: map[string]string{},
		ControlDomain: "OpaqueRef:dom0", APIVersionMajor: 2, APIVersionMinor: 21}
	if !reflect.DeepEqual(hosts["OpaqueRef:h1"], wantHost) {
		t.Fatalf("host %+v\nwant %+v", hosts["OpaqueRef:h1"], wantHost)
	}

	metrics, err := c.HostMetricsGetAllRecords(ctx)
	check(err)
	if m := metrics["OpaqueRef:m1"]; !m.Live || m.MemoryTotal != 274877906944 || m.LastUpdated != "20240420T12:00:00Z" {
		t.Fatalf("metrics %+v", m)
	}

	vms, err := c.VMGetAllRecords(ctx)
	check(err)
	wantVM := VMRecord{UUID: "vu", NameLabel: "web", PowerState: PowerStateRunning, ResidentOn: "OpaqueRef:h1",
		HARestartPriority: "restart", HAAlwaysRun: true, OtherConfig: map[string]string{"k": "v"}}
	if !reflect.DeepEqual(vms["OpaqueRef:vm1"], wantVM) {
		t.Fatalf("vm %+v\nwant %+v", vms["OpaqueRef:vm1"], wantVM)
	}

	srs, err := c.SRGetAllRecords(ctx)
	check(err)
	if sr := srs["OpaqueRef:sr1"]; !sr.Shared || sr.Type != "nfs" || sr.ContentType != "user" || len(sr.PBDs) != 1 {
		t.Fatalf("sr %+v", sr)
	}

	pbds, err := c.PBDGetAllRecords(ctx)
	check(err)
	if p := pbds["OpaqueRef:pbd1"]; p.Host != "OpaqueRef:h1" || p.SR != "OpaqueRef:sr1" || !p.CurrentlyAttached || p.DeviceConfig["server"] != "nfs1" {
		t.Fatalf("pbd %v", p)
	}

	pr, err := c.PoolGetRecord(ctx, "OpaqueRef:p1")
	check(err)
	mr, err := c.HostMetricsGetRecord(ctx, "OpaqueRef:m1")
	check(err)
	vr, err := c.VMGetRecord(ctx, "OpaqueRef:vm1")
	check(err)
	sr, err := c.SRGetRecord(ctx, "OpaqueRef:sr1")
	check(err)
	br, err := c.PBDGetRecord(ctx, "OpaqueRef:pbd1")
	check(err)
	if pr.UUID != "pu" || mr.Live || vr.PowerState != PowerStateHalted || !sr.Shared || br.CurrentlyAttached || br.UUID != "bu" {
		t.Fatalf("get_record results %v %v %v %v %v", pr, mr, vr, sr, br)
	}
}

func TestTypedCallBadResult(t *testing.T) {
	f := newFakeHost(t, "")
	f.handle("host.get_all_records", func([]json.RawMessage) (any, error) { return "not a map", nil })
	_, err := newTestClient(t, f).HostGetAllRecords(context.Background())
	var te *TransportError
	if !errors.As(err, &te) || !errors.Is(err, ErrMalformedResponse) || te.Method != "host.get_all_records" {
		t.Fatalf("err = %v (%T)", err, err)
	}
}

func TestEventFromBatch(t *testing.T) {
	f := newFakeHost(t, "")
	f.handle("event.from", func([]json.RawMessage) (any, error) {
		return rawJSON(`{"events":[
			{"id":"17","timestamp":"1713614400.1","class":"vm","operation":"mod","ref":"OpaqueRef:vm1","snapshot":{"uuid":"vu","power_state":"Halted","unknown":1}},
			{"id":18,"timestamp":1713614401.5,"class":"vm","operation":"del","ref":"OpaqueRef:vm2"}],
			"valid_ref_counts":{"vm":12,"host":3},"token":"00000000000000000018,00000000000000000003"}`), nil
	})
	b, err := newTestClient(t, f).EventFrom(context.Background(), []string{"vm"}, "", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if b.Token != "00000000000000000018,00000000000000000003" || !reflect.DeepEqual(b.ValidRefCounts, map[string]int64{"vm": 12, "host": 3}) {
		t.Fatalf("batch %+v", b)
	}
	if len(b.Events) != 2 {
		t.Fatalf("events %+v", b.Events)
	}
	e0, e1 := b.Events[0], b.Events[1]
	if e0.ID != "17" || e1.ID != "18" || e0.Timestamp != "1713614400.1" || e1.Timestamp != "1713614401.5" {
		t.Fatalf("ids/timestamps: %+v %+v", e0, e1)
	}
	if e0.Class != "vm" || e0.Operation != "mod" || e0.Ref != "OpaqueRef:vm1" || e1.Operation != "del" {
		t.Fatalf("event fields: %+v %+v", e0, e1)
	}
	var vm VMRecord
	if err := e0.DecodeSnapshot(&vm); err != nil || vm.PowerState != PowerStateHalted {
		t.Fatalf("snapshot %+v, %v", vm, err)
	}
	if err := e1.DecodeSnapshot(&vm); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("del snapshot err = %v", err)
	}
	var n int
	if err := e0.DecodeSnapshot(&n); err == nil || !strings.Contains(err.Error(), "OpaqueRef:vm1") {
		t.Fatalf("bad snapshot target err = %v", err)
	}
}

// A long poll must outlive Options.Timeout: its deadline is the event
// timeout plus a margin.
func TestEventFromLongPoll(t *testing.T) {
	f := newFakeHost(t, "")
	slow := func([]json.RawMessage) (any, error) {
		time.Sleep(600 * time.Millisecond)
		return rawJSON(`{"events":[],"valid_ref_counts":{},"token":"t"}`), nil
	}
	f.handle("event.from", slow)
	f.handle("pool.get_all", slow)
	opts := testOpts()
	opts.Timeout = 300 * time.Millisecond
	c, err := NewClient(f.URL(), testCreds(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.EventFrom(ctx, []string{"*"}, "t0", time.Second); err != nil {
		t.Fatalf("long poll cut short: %v", err)
	}
	if _, err := c.Call(ctx, "pool.get_all"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("an ordinary call must still time out: %v", err)
	}
}
