package xapi

import (
	"context"
	"fmt"
	"sync"
)

// ProbeState is what a pool member said when asked to log in.
type ProbeState int

const (
	ProbeUnknown     ProbeState = iota // not probed
	ProbeMaster                        // login succeeded: it is a master
	ProbeSlave                         // HOST_IS_SLAVE; MasterAddress names its master
	ProbeEmergency                     // a slave in emergency mode (its master is gone)
	ProbeAuthFailed                    // credentials rejected (only a master checks them)
	ProbeUnreachable                   // no XenAPI answer
	ProbeError                         // some other API failure
)

func (s ProbeState) String() string {
	switch s {
	case ProbeMaster:
		return "master"
	case ProbeSlave:
		return "slave"
	case ProbeEmergency:
		return "emergency"
	case ProbeAuthFailed:
		return "auth-failed"
	case ProbeUnreachable:
		return "unreachable"
	case ProbeError:
		return "error"
	}
	return "unknown"
}

// Probe is the outcome of probing one member.
type Probe struct {
	URL           string
	State         ProbeState
	MasterAddress string // for ProbeSlave
	Err           error  // the failure behind every state but ProbeMaster
}

func (p Probe) String() string {
	switch {
	case p.State == ProbeSlave && p.MasterAddress != "":
		return fmt.Sprintf("%s: slave of %s", p.URL, p.MasterAddress)
	case p.Err != nil && p.State != ProbeSlave:
		return fmt.Sprintf("%s: %s: %v", p.URL, p.State, p.Err)
	}
	return fmt.Sprintf("%s: %s", p.URL, p.State)
}

// probed is a probe plus what is needed to keep its session.
type probed struct {
	Probe
	client  *Client
	session SessionRef // set for ProbeMaster
}

// probeOne tries a login on c, bounded by ProbeTimeout. On success the
// session is returned, not installed: the caller adopts or drops it.
func (p *Pool) probeOne(ctx context.Context, c *Client) probed {
	pctx, cancel := context.WithTimeout(ctx, p.opts.ProbeTimeout)
	defer cancel()
	sess, err := c.login(pctx)
	r := probed{Probe: Probe{URL: c.URL(), Err: err}, client: c, session: sess}
	_, isAPI := AsError(err)
	switch {
	case err == nil:
		r.State = ProbeMaster
	case IsCode(err, CodeHostIsSlave):
		r.State = ProbeSlave
		r.MasterAddress, _ = MasterAddress(err)
	case IsEmergency(err):
		r.State = ProbeEmergency
	case IsAuthFailed(err):
		r.State = ProbeAuthFailed
	case isAPI:
		r.State = ProbeError
	default:
		r.State = ProbeUnreachable
	}
	p.log.Debug("probed pool member", "url", r.URL, "state", r.State.String())
	return r
}

// probeClients probes concurrently; results keep the order of clients.
func (p *Pool) probeClients(ctx context.Context, clients []*Client) []probed {
	out := make([]probed, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = p.probeOne(ctx, c)
		}()
	}
	wg.Wait()
	return out
}

// dropSessions logs out the probe sessions not kept. It does not use the
// caller's context: a cancelled caller must not leak sessions on the hosts.
func (p *Pool) dropSessions(results []probed, keep *probed) {
	var wg sync.WaitGroup
	for i := range results {
		r := &results[i]
		if r.session == "" || (keep != nil && r.session == keep.session) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.logoutQuietly(r.client, r.session)
		}()
	}
	wg.Wait()
}

func (p *Pool) logoutQuietly(c *Client, sess SessionRef) {
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.ProbeTimeout)
	defer cancel()
	if err := c.logoutSession(ctx, sess); err != nil {
		p.log.Debug("logout of probe session failed", "url", c.URL(), "error", err.Error())
	}
}

func probes(results []probed) []Probe {
	out := make([]Probe, len(results))
	for i, r := range results {
		out[i] = r.Probe
	}
	return out
}
