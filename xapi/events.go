package xapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// EventBatch is the result of event.from.
type EventBatch struct {
	Events []Event `json:"events"`
	// ValidRefCounts is keyed by class. The JSON name is valid_ref_counts,
	// as xapi sends it (the official Go SDK reads validRefCounts, a bug).
	ValidRefCounts map[string]int64 `json:"valid_ref_counts"`
	// Token is passed to the next EventFrom; only the master that issued
	// it understands it.
	Token string `json:"token"`
}

// Event is one change to one object.
type Event struct {
	ID        string          `json:"id"`
	Timestamp string          `json:"timestamp"`
	Class     string          `json:"class"`     // lowercase class name: "vm", "host"...
	Operation string          `json:"operation"` // "add", "mod" or "del"
	Ref       string          `json:"ref"`
	Snapshot  json.RawMessage `json:"snapshot"` // the record after the change; absent for "del"
}

// ErrNoSnapshot is returned by DecodeSnapshot for an event without a
// record, such as a "del".
var ErrNoSnapshot = errors.New("xapi: event has no snapshot")

// UnmarshalJSON accepts id and timestamp as JSON strings or numbers: xapi
// has sent both over its versions.
func (e *Event) UnmarshalJSON(b []byte) error {
	type plain Event
	var raw struct {
		plain
		ID        json.RawMessage `json:"id"`
		Timestamp json.RawMessage `json:"timestamp"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*e = Event(raw.plain)
	e.ID = scalarString(raw.ID)
	e.Timestamp = scalarString(raw.Timestamp)
	return nil
}

// scalarString reads a JSON string or the text of a number; null or absent
// gives "".
func scalarString(raw json.RawMessage) string {
	if len(raw) == 0 || isNull(raw) {
		return ""
	}
	return looseString(raw)
}

// DecodeSnapshot decodes the event's record into v, for example a
// *VMRecord when Class is "vm".
func (e Event) DecodeSnapshot(v any) error {
	if len(bytes.TrimSpace(e.Snapshot)) == 0 || isNull(e.Snapshot) {
		return ErrNoSnapshot
	}
	if err := json.Unmarshal(e.Snapshot, v); err != nil {
		return fmt.Errorf("xapi: decode %s snapshot of %s: %w", e.Class, e.Ref, err)
	}
	return nil
}
