// Package membership is the add-host flow and XenHA enablement from the
// proposal: classify a host before CloudStack adds it, join a standalone
// host to an attached pool, eject a member (never the master), and enable
// or disable XenHA on a pool that qualifies, each with a dry run that says
// what would happen and why.
package membership

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/journal"
	"github.com/cloudstack-xenha/xenha-bridge/lease"
	"github.com/cloudstack-xenha/xenha-bridge/xapi"
	"github.com/cloudstack-xenha/xenha-bridge/xenha"
)

// Class is what a host is, seen from CloudStack's add-host dialog.
type Class string

const (
	PoolMember Class = "pool_member"
	Standalone Class = "standalone"
	Conflict   Class = "conflict"
	Managed    Class = "managed"
)

// Member is one host.
type Member struct{ UUID, Name, Address, URL string }

// Classification is ClassifyHost's answer.
type Classification struct {
	Class     Class
	PoolUUID  string
	PoolLabel string
	Master    Member
	Members   []Member
	ManagedAs string
	Message   string
}

// RefusedError is an operation the pool's state does not allow
// (FAILED_PRECONDITION), in a sentence.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return e.Reason }

func refuse(format string, args ...any) error {
	return &RefusedError{Reason: fmt.Sprintf(format, args...)}
}

// ErrUnreachable: the host's XAPI does not answer, or its master is lost
// (UNAVAILABLE).
var ErrUnreachable = errors.New("XAPI unreachable")

// Service does the work; it needs the pool manager to know which pools
// are attached and to update their members.
type Service struct {
	Pools *xenha.Manager
	XAPI  xapi.Options // timeouts; TLS comes per request or per pool
	// Wait bounds how long a change may take to show (a join listed by the
	// master, XenHA's state in the bridge's view). Default 60 s.
	Wait time.Duration
	// Poll is how often it looks (default 200 ms).
	Poll time.Duration
	// Journal records every change made to a pool (nil: none).
	Journal journal.Store
	// Lease, with several management servers, says whether this bridge
	// holds the pool's lease; only the holder changes a pool (nil: one
	// management server, always).
	Lease lease.Guard
}

// leased tells whether this bridge may change the pool now: it holds the
// pool's lease (several management servers), or it is the only bridge.
// A change is refused up front by a bridge without the lease, and checked
// again right before it is made (begin).
func (s *Service) leased(ctx context.Context, h *xenha.Handle, dryRun bool) error {
	if s.Lease == nil || dryRun {
		return nil
	}
	return s.Lease.Check(ctx, h.View().UUID) // "" (not observed) is refused
}

// begin journals why a change is about to be made, then checks the lease
// once more, right before the change. A change the journal cannot
// record, or by a bridge that no longer holds the pool's lease, is not
// made. (The XAPI call itself is not bounded by the lease, unlike a
// fence's: pool.join and pool.enable_ha may take longer than a lease.)
func (s *Service) begin(ctx context.Context, h *xenha.Handle, step, host, detail string) error {
	if err := s.record(h, step, host, detail, true); err != nil {
		return refuse("refusing the %s: the journal cannot record it: %v", step, err)
	}
	if err := s.leased(ctx, h, false); err != nil {
		s.record(h, step, host, "not made: "+err.Error(), false)
		return err
	}
	return nil
}

// end journals what came of a change. The change is made by then, so a
// journal that fails is reported in the answer's steps, not as a failed call
// (which would invite a retry of a change already made).
func (s *Service) end(h *xenha.Handle, step, host, detail string, ok bool, steps *[]string) {
	if err := s.record(h, step, host, detail, ok); err != nil {
		*steps = append(*steps, fmt.Sprintf("warning: the journal could not record this %s: %v", step, err))
	}
}

func (s *Service) record(h *xenha.Handle, step, host, detail string, ok bool) error {
	if s.Journal == nil {
		return nil
	}
	v := h.View()
	_, err := s.Journal.Append(journal.Entry{Pool: v.Name, Kind: "membership", Step: step, Host: host, Epoch: v.Epoch, OK: ok, Detail: detail})
	return err
}

func (s *Service) wait() time.Duration {
	if s.Wait <= 0 {
		return 60 * time.Second
	}
	return s.Wait
}

func (s *Service) poll() time.Duration {
	if s.Poll <= 0 {
		return 200 * time.Millisecond
	}
	return s.Poll
}

// memberURL builds a member's URL from another's scheme and port.
func memberURL(like, address string) string {
	u, err := url.Parse(like)
	if err != nil {
		return "https://" + address
	}
	if p := u.Port(); p != "" {
		u.Host = net.JoinHostPort(address, p)
	} else {
		u.Host = address
	}
	u.Path = ""
	return u.String()
}

// login opens a client on url: on a master it is logged in; on a slave it
// returns the master's address instead.
func (s *Service) login(ctx context.Context, rawURL string, creds xapi.Credentials, tls xapi.TLSOptions) (*xapi.Client, string, error) {
	o := s.XAPI
	o.TLS = tls
	c, err := xapi.NewClient(rawURL, creds, o)
	if err != nil {
		return nil, "", &xenha.InvalidArgumentError{Field: "url", Reason: err.Error()}
	}
	err = c.Login(ctx)
	switch {
	case err == nil:
		return c, "", nil
	case xapi.IsCode(err, xapi.CodeHostIsSlave):
		addr, _ := xapi.MasterAddress(err)
		return nil, addr, nil
	case xapi.IsAuthFailed(err):
		return nil, "", refuse("the host refused the credentials for %s", creds.Username)
	case xapi.IsEmergency(err):
		return nil, "", fmt.Errorf("%w: the host's pool master is lost (%v): elect a master first", ErrUnreachable, err)
	case xapi.IsUnreachable(err):
		return nil, "", fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	return nil, "", err
}

// Classify tells what the host at url is.
func (s *Service) Classify(ctx context.Context, rawURL string, creds xapi.Credentials, tls xapi.TLSOptions, wantedName string) (*Classification, error) {
	c, masterAddr, err := s.login(ctx, rawURL, creds, tls)
	if err != nil {
		return nil, err
	}
	masterURL := rawURL
	if c == nil { // a slave: ask its master
		masterURL = memberURL(rawURL, masterAddr)
		if c, _, err = s.login(ctx, masterURL, creds, tls); err != nil {
			return nil, err
		}
		if c == nil {
			return nil, fmt.Errorf("%w: %s redirects to a master that redirects again", ErrUnreachable, masterAddr)
		}
	}
	defer c.Close(context.Background())
	pools, err := c.PoolGetAllRecords(ctx)
	if err != nil {
		return nil, err
	}
	hosts, err := c.HostGetAllRecords(ctx)
	if err != nil {
		return nil, err
	}
	out := &Classification{}
	for _, p := range pools {
		out.PoolUUID, out.PoolLabel = p.UUID, p.NameLabel
		if h, ok := hosts[p.Master]; ok {
			out.Master = Member{UUID: h.UUID, Name: h.NameLabel, Address: h.Address, URL: memberURL(rawURL, h.Address)}
		}
	}
	for _, h := range hosts {
		out.Members = append(out.Members, Member{UUID: h.UUID, Name: h.NameLabel, Address: h.Address, URL: memberURL(rawURL, h.Address)})
	}
	sort.Slice(out.Members, func(i, j int) bool { return out.Members[i].UUID < out.Members[j].UUID })
	if name, err := s.Pools.Resolve(out.PoolUUID); err == nil {
		out.ManagedAs = name
		if wantedName == "" || wantedName == name {
			out.Class = Managed
			out.Message = fmt.Sprintf("The host belongs to pool %s, already attached as %q: nothing to add.", out.PoolUUID, name)
		} else {
			out.Class = Conflict
			out.Message = fmt.Sprintf("The host belongs to pool %s, which this bridge already manages as %q: it cannot be added to %q as well.", out.PoolUUID, name, wantedName)
		}
		return out, nil
	}
	if len(hosts) == 1 {
		out.Class = Standalone
		out.Message = "The host is standalone: join it to a cluster's pool (JoinHost), or start a new cluster around it."
	} else {
		out.Class = PoolMember
		out.Message = fmt.Sprintf("The host is one of the %d members of pool %s (master %s): import the whole pool as one cluster and add every member.",
			len(hosts), out.PoolUUID, out.Master.Name)
	}
	return out, nil
}

// seconds renders a duration for xapi's configuration map.
func seconds(d time.Duration) string { return strconv.Itoa(int(d / time.Second)) }
