package server

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/cloudstack-xenha/xenha-bridge/fencing"
	pb "github.com/cloudstack-xenha/xenha-bridge/proto/cloudstack/xenha/v1"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xapisim"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// fakeBook records what AttachPool hands over; its Build refuses plain
// http unless allowed, as the real drivers do.
type fakeBook struct {
	mu  sync.Mutex
	set map[string][]HostDevice
}

type fakeDevice struct{ fencing.Device }

func (b *fakeBook) Build(driver, address, username, password string, allowPlainHTTP bool) (fencing.Device, error) {
	if driver != "ipmi" && driver != "redfish" {
		return nil, errors.New("unknown BMC driver " + driver)
	}
	if strings.HasPrefix(address, "http://") && !allowPlainHTTP {
		return nil, errors.New("plain http refused")
	}
	return fakeDevice{}, nil
}

func (b *fakeBook) Set(pool string, bmcs []HostDevice) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.set == nil {
		b.set = map[string][]HostDevice{}
	}
	b.set[pool] = bmcs
}

func (b *fakeBook) hosts(pool string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, d := range b.set[pool] {
		out = append(out, d.Host)
	}
	return out
}

func bmcClient(t *testing.T, opts ...Option) pb.XenHAServiceClient {
	t.Helper()
	m := xenha.NewManager(xenha.Options{XAPI: xapi.Options{Timeout: 2 * time.Second, ProbeTimeout: 300 * time.Millisecond}})
	t.Cleanup(m.Close)
	srv := New(NewService(m, nil, opts...), Options{})
	conn := dialServer(t, srv)
	return pb.NewXenHAServiceClient(conn)
}

func TestAttachPoolCarriesTheMembersBMCs(t *testing.T) {
	book := &fakeBook{}
	c := bmcClient(t, WithPoolBMCs(book))
	sim, err := xapisim.New(xapisim.Config{Hosts: 2, Clock: xapisim.NewFakeClock(), Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	info := sim.Info()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const secret = "bmc-Pa55-0042"
	req := &pb.AttachPoolRequest{Name: "c1", Members: sim.MemberURLs(), Username: info.Username, Password: info.Password,
		Tls: &pb.XAPITLS{AllowPlainHttp: true},
		Bmcs: []*pb.HostBMC{
			{Host: info.Hosts[0].UUID, Bmc: &pb.BMC{Driver: "redfish", Address: "http://127.0.0.1:1", Username: "admin", Password: secret}},
			{Host: info.Hosts[1].UUID, Bmc: &pb.BMC{Driver: "ipmi", Address: "127.0.0.1:623", Username: "admin", Password: secret}},
		}}
	if _, err := c.AttachPool(ctx, req); err != nil {
		t.Fatal(err)
	}
	if got := book.hosts("c1"); len(got) != 2 || got[0] != info.Hosts[0].UUID || got[1] != info.Hosts[1].UUID {
		t.Fatalf("BMCs handed over: %v", got)
	}
	// Attaching again (same pool) replaces them.
	req.Bmcs = req.Bmcs[1:]
	if _, err := c.AttachPool(ctx, req); err != nil {
		t.Fatal(err)
	}
	if got := book.hosts("c1"); len(got) != 1 || got[0] != info.Hosts[1].UUID {
		t.Fatalf("after the second attach: %v", got)
	}
	// Refusals name the field, never the password, and attach nothing.
	for _, tc := range []struct {
		bmc   *pb.HostBMC
		plain bool
		field string
	}{
		{&pb.HostBMC{Bmc: &pb.BMC{Driver: "ipmi", Address: "a:623"}}, true, "bmcs[0].host"},
		{&pb.HostBMC{Host: "h", Bmc: &pb.BMC{Driver: "ipmi"}}, true, "bmcs[0].bmc"},
		{&pb.HostBMC{Host: "h", Bmc: &pb.BMC{Driver: "telnet", Address: "a", Password: secret}}, true, "bmcs[0].bmc"},
		{&pb.HostBMC{Host: "h", Bmc: &pb.BMC{Driver: "redfish", Address: "http://a", Password: secret}}, false, "bmcs[0].bmc"},
	} {
		bad := &pb.AttachPoolRequest{Name: "c2", Members: sim.MemberURLs(), Username: info.Username, Password: info.Password,
			Tls: &pb.XAPITLS{AllowPlainHttp: tc.plain}, Bmcs: []*pb.HostBMC{tc.bmc}}
		if !tc.plain {
			bad.Members = []string{"https://10.0.0.1"}
		}
		_, err := c.AttachPool(ctx, bad)
		st := wantCode(t, err, codes.InvalidArgument)
		if badField(st) != tc.field || strings.Contains(err.Error(), secret) {
			t.Fatalf("%v: field %q, error %v", tc.bmc, badField(st), err)
		}
	}
	if _, err := c.HAMode(ctx, &pb.HAModeRequest{Pool: "c2"}); err == nil {
		t.Fatal("a refused attach attached the pool")
	}
	// Detaching forgets them.
	if _, err := c.DetachPool(ctx, &pb.DetachPoolRequest{Pool: "c1"}); err != nil {
		t.Fatal(err)
	}
	if got := book.hosts("c1"); len(got) != 0 {
		t.Fatalf("after detach: %v", got)
	}
}

func TestAttachPoolWithBMCsNeedsDrivers(t *testing.T) {
	c := bmcClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.AttachPool(ctx, &pb.AttachPoolRequest{Name: "c", Members: []string{"https://10.0.0.1"}, Username: "u", Password: "p",
		Bmcs: []*pb.HostBMC{{Host: "h", Bmc: &pb.BMC{Driver: "ipmi", Address: "a:623"}}}})
	if st := wantCode(t, err, codes.InvalidArgument); badField(st) != "bmcs" {
		t.Fatalf("field %q", badField(st))
	}
}

// A pool from the configuration file, attached again with the same spec
// (the shim hands over a cluster under the name the file gives its pool):
// a no-op that leaves the file's BMCs alone.
func TestAttachPoolLeavesAConfiguredPoolsBMCsAlone(t *testing.T) {
	book := &fakeBook{}
	m := xenha.NewManager(xenha.Options{XAPI: xapi.Options{Timeout: 2 * time.Second, ProbeTimeout: 300 * time.Millisecond}})
	t.Cleanup(m.Close)
	c := pb.NewXenHAServiceClient(dialServer(t, New(NewService(m, nil, WithPoolBMCs(book)), Options{})))
	sim, err := xapisim.New(xapisim.Config{Hosts: 2, Clock: xapisim.NewFakeClock(), Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	info := sim.Info()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := m.Attach(ctx, xenha.PoolSpec{Name: "c1", Members: sim.MemberURLs(), Source: "config",
		Credentials: xapi.Credentials{Username: info.Username, Password: xapi.Secret(info.Password)},
		TLS:         xapi.TLSOptions{AllowPlainHTTP: true}}); err != nil {
		t.Fatal(err)
	}
	r, err := c.AttachPool(ctx, &pb.AttachPoolRequest{Name: "c1", Members: sim.MemberURLs(), Username: info.Username, Password: info.Password,
		Tls:  &pb.XAPITLS{AllowPlainHttp: true},
		Bmcs: []*pb.HostBMC{{Host: info.Hosts[0].UUID, Bmc: &pb.BMC{Driver: "redfish", Address: "https://10.0.1.1", Username: "u", Password: "p"}}}})
	if err != nil || r.GetCreated() || r.GetPool().GetSource() != "config" {
		t.Fatalf("attach of the configured pool: %v %v", r, err)
	}
	if got := book.hosts("c1"); len(got) != 0 {
		t.Fatalf("the configuration's pool took attached BMCs for %v", got)
	}
}
