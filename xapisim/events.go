package xapisim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// eventLog is one pool's event history for event.from. Events are found by
// diffing the pool's records after every change, so no mutation can forget
// to announce itself.
type eventLog struct {
	max    int
	gen    int64 // id of the newest event
	events []simEvent
	last   map[string][]byte // class + "\x00" + ref → last published record
	wake   chan struct{}     // closed and replaced when events arrive
}

type simEvent struct {
	id       int64
	at       time.Time
	class    string // API spelling
	op       string // add, mod, del
	ref      string
	snapshot record
}

func newEventLog(max int) *eventLog {
	return &eventLog{max: max, last: map[string][]byte{}, wake: make(chan struct{})}
}

// commit publishes the difference between the pool's records now and at
// the previous commit.
func (s *Sim) commit(p *simPool) {
	l := p.events
	now := s.clock.Now()
	recs := s.records(p, nil)
	seen := map[string]bool{}
	var fresh []simEvent
	for _, c := range classes {
		refs := make([]string, 0, len(recs[c]))
		for ref := range recs[c] {
			refs = append(refs, ref)
		}
		sort.Strings(refs)
		for _, ref := range refs {
			key := c + "\x00" + ref
			seen[key] = true
			b, _ := json.Marshal(recs[c][ref])
			old, ok := l.last[key]
			switch {
			case !ok:
				fresh = append(fresh, simEvent{class: c, op: "add", ref: ref, snapshot: recs[c][ref]})
			case !bytes.Equal(old, b):
				fresh = append(fresh, simEvent{class: c, op: "mod", ref: ref, snapshot: recs[c][ref]})
			default:
				continue
			}
			l.last[key] = b
		}
	}
	var gone []string
	for key := range l.last {
		if !seen[key] {
			gone = append(gone, key)
		}
	}
	sort.Strings(gone)
	for _, key := range gone {
		c, ref, _ := strings.Cut(key, "\x00")
		fresh = append(fresh, simEvent{class: c, op: "del", ref: ref})
		delete(l.last, key)
	}
	if len(fresh) == 0 {
		return
	}
	for i := range fresh {
		l.gen++
		fresh[i].id, fresh[i].at = l.gen, now
	}
	l.events = append(l.events, fresh...)
	if over := len(l.events) - l.max; over > 0 {
		l.events = append([]simEvent(nil), l.events[over:]...)
	}
	close(l.wake)
	l.wake = make(chan struct{})
}

// Tokens name the generation and the xapi instance that issued them: a
// token from another master, or from before a restart, is refused, as
// tokens are only meaningful to the master that issued them.
func eventToken(h *simHost, gen int64) string {
	return fmt.Sprintf("%016d,%s,%d", gen, h.uuid[:8], h.instance)
}

func parseToken(tok string) (gen int64, hostID string, instance int, ok bool) {
	parts := strings.Split(tok, ",")
	if len(parts) != 3 {
		return 0, "", 0, false
	}
	g, err1 := strconv.ParseInt(parts[0], 10, 64)
	i, err2 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || g < 0 {
		return 0, "", 0, false
	}
	return g, parts[1], i, true
}

// eventFrom implements event.from. Called with s.mu held; it releases the
// lock while it waits and holds it again when it returns.
func (s *Sim) eventFrom(ctx context.Context, h *simHost, args []any) (any, *apiError) {
	if err := wantArgs("event.from", args, 3); err != nil {
		return nil, err
	}
	rawClasses, ok := asStrings(args[0])
	if !ok {
		return nil, fail("FIELD_TYPE_ERROR", "classes")
	}
	want := map[string]bool{}
	all := false
	for _, c := range rawClasses {
		if c == "*" {
			all = true
			continue
		}
		name, ok := className(strings.SplitN(c, "/", 2)[0])
		if !ok {
			return nil, fail("EVENT_SUBSCRIPTION_PARSE_FAILURE", c)
		}
		want[name] = true
	}
	match := func(c string) bool { return all || want[c] }
	tok, _ := args[1].(string)
	timeout, ok := asFloat(args[2])
	if !ok || timeout < 0 {
		return nil, fail("FIELD_TYPE_ERROR", "timeout")
	}
	p, instance := h.pool, h.instance
	l := p.events

	if tok == "" { // from the start: an add for every object
		var evs []any
		recs := s.records(p, h)
		for _, c := range classes {
			if !match(c) {
				continue
			}
			refs := make([]string, 0, len(recs[c]))
			for ref := range recs[c] {
				refs = append(refs, ref)
			}
			sort.Strings(refs)
			for _, ref := range refs {
				evs = append(evs, eventRecord(simEvent{id: l.gen, at: s.clock.Now(), class: c, op: "add", ref: ref, snapshot: recs[c][ref]}))
			}
		}
		return s.eventBatch(p, h, evs, l.gen), nil
	}

	gen, hostID, inst, ok := parseToken(tok)
	if !ok || gen > l.gen {
		return nil, fail("EVENT_FROM_TOKEN_PARSE_FAILURE", tok)
	}
	if hostID != h.uuid[:8] || inst != h.instance {
		return nil, fail("EVENTS_LOST")
	}
	if len(l.events) > 0 && gen < l.events[0].id-1 || len(l.events) == 0 && gen < l.gen {
		return nil, fail("EVENTS_LOST")
	}

	expired := make(chan struct{})
	stop := s.clock.AfterFunc(time.Duration(timeout*float64(time.Second)), func() { close(expired) })
	defer stop()
	for {
		var evs []any
		for _, e := range l.events {
			if e.id > gen && match(e.class) {
				evs = append(evs, eventRecord(e))
			}
		}
		if len(evs) > 0 {
			return s.eventBatch(p, h, evs, l.gen), nil
		}
		// Nothing we were asked for up to here; only now may the timeout
		// end the call, so events that came with it are never skipped.
		gen = l.gen
		select {
		case <-expired:
			return s.eventBatch(p, h, nil, gen), nil
		default:
		}
		wake := l.wake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-expired:
		case <-ctx.Done():
		case <-s.done:
		}
		s.mu.Lock()
		switch {
		case ctx.Err() != nil || s.closed:
			return nil, errHostGone
		case !h.powered: // lost power under the call: silent
			return nil, downErr(h)
		case h.pool != p || h.instance != instance: // xapi restarted: connection reset
			return nil, errHostGone
		}
	}
}

func eventRecord(e simEvent) record {
	r := record{
		"id":        strconv.FormatInt(e.id, 10),
		"timestamp": strconv.FormatFloat(float64(e.at.UnixMilli())/1000, 'f', 3, 64),
		"class":     strings.ToLower(e.class),
		"operation": e.op,
		"ref":       e.ref,
	}
	if e.op != "del" {
		r["snapshot"] = e.snapshot
	}
	return r
}

func (s *Sim) eventBatch(p *simPool, h *simHost, evs []any, gen int64) record {
	counts := map[string]int64{}
	recs := s.records(p, h)
	for _, c := range classes {
		counts[strings.ToLower(c)] = int64(len(recs[c]))
	}
	if evs == nil {
		evs = []any{}
	}
	return record{"events": evs, "valid_ref_counts": counts, "token": eventToken(h, gen)}
}
