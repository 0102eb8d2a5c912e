package xenha

import (
	"fmt"
	"time"
)

// EventType is what happened to a pool.
type EventType string

const (
	EventMasterChanged     EventType = "master_changed"
	EventMasterLost        EventType = "master_lost"
	EventHostDown          EventType = "host_down"
	EventHostUp            EventType = "host_up"
	EventHostFenced        EventType = "host_fenced"
	EventHAEnabled         EventType = "ha_enabled"
	EventHADisabled        EventType = "ha_disabled"
	EventControllerChanged EventType = "controller_changed"
	EventSplitBrain        EventType = "split_brain"
	EventWarningRaised     EventType = "warning_raised"
	EventWarningCleared    EventType = "warning_cleared"
)

// Cause says why a master changed.
type Cause string

const (
	CauseXenHAElection      Cause = "xenha_election"
	CauseCloudStackElection Cause = "cloudstack_election"
	CauseAdminDesignation   Cause = "admin_designation"
	CauseUnknown            Cause = "unknown"
)

// Event is one change, numbered by the Hub.
type Event struct {
	Seq         uint64
	Incarnation string
	Time        time.Time
	Pool        string
	PoolUUID    string
	Type        EventType
	Epoch       uint64
	Host        string // the host concerned (new master, host down/up/fenced)
	Previous    string // MASTER_CHANGED: the previous master
	Cause       Cause
	Controller  Controller
	Warning     *Warning
	Message     string
}

// diff lists what changed between two views of one pool, in the order a
// reader wants to learn it. cause explains a master change.
func diff(old, cur *PoolView, cause Cause) []Event {
	var evs []Event
	add := func(e Event) {
		e.Pool, e.PoolUUID, e.Epoch = cur.Name, cur.UUID, cur.Epoch
		evs = append(evs, e)
	}
	if old.Master.Reachable && !cur.Master.Reachable && cur.Observed {
		add(Event{Type: EventMasterLost, Host: cur.Master.UUID,
			Message: fmt.Sprintf("The bridge lost the pool master %s (%s).", cur.Master.Name, cur.Master.Address)})
	}
	if old.Observed && cur.Observed && old.Master.UUID != cur.Master.UUID {
		add(Event{Type: EventMasterChanged, Host: cur.Master.UUID, Previous: old.Master.UUID, Cause: cause,
			Message: fmt.Sprintf("The master is now %s (%s), was %s; cause: %s.", cur.Master.Name, cur.Master.UUID, old.Master.Name, cause)})
	}
	if old.Observed && cur.Observed && old.HAEnabled != cur.HAEnabled {
		if cur.HAEnabled {
			add(Event{Type: EventHAEnabled, Message: fmt.Sprintf("XenHA was enabled (T=%s).", cur.HATimeout)})
		} else {
			add(Event{Type: EventHADisabled, Message: "XenHA was disabled."})
		}
	}
	if old.Controller != cur.Controller {
		add(Event{Type: EventControllerChanged, Controller: cur.Controller,
			Message: fmt.Sprintf("The controller is now %s (was %s).", cur.Controller, old.Controller)})
	}
	if old.Observed && cur.Observed {
		was := map[string]bool{}
		for _, h := range old.Hosts {
			was[h.UUID] = h.Live
		}
		for _, h := range cur.Hosts {
			live, known := was[h.UUID]
			switch {
			case known && live && !h.Live:
				add(Event{Type: EventHostDown, Host: h.UUID, Message: fmt.Sprintf("Host %s is no longer live.", h.Name)})
			case known && !live && h.Live:
				add(Event{Type: EventHostUp, Host: h.UUID, Message: fmt.Sprintf("Host %s is live again.", h.Name)})
			}
		}
	}
	// Announced when it appears, and again when the controller changes
	// under it (a pool first observed during a split brain): whoever may
	// heal it hears of it once it may.
	if len(cur.Claimers) > 1 && (len(old.Claimers) <= 1 || old.Controller != cur.Controller) {
		add(Event{Type: EventSplitBrain, Message: splitBrain(cur.Claimers).Message})
	}
	before := map[WarningCode]bool{}
	for _, w := range old.Warnings {
		before[w.Code] = true
	}
	after := map[WarningCode]bool{}
	for _, w := range cur.Warnings {
		after[w.Code] = true
		if !before[w.Code] {
			w := w
			add(Event{Type: EventWarningRaised, Warning: &w, Message: w.Message})
		}
	}
	for _, w := range old.Warnings {
		if !after[w.Code] {
			w := w
			add(Event{Type: EventWarningCleared, Warning: &w, Message: "Cleared: " + w.Message})
		}
	}
	return evs
}
