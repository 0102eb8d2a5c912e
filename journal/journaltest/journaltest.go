// Package journaltest helps tests make the journal fail.
package journaltest

import (
	"errors"

	"github.com/cloudstack-xenha/xenha-bridge/journal"
)

// ErrDiskFull is what FailStep's Append returns.
var ErrDiskFull = errors.New("no space left on device")

// FailStep is a journal whose writes of one step fail, as a full disk would
// fail them; everything else goes to Store.
type FailStep struct {
	journal.Store
	Step string
}

// Append fails for entries of Step and stores the rest.
func (f FailStep) Append(e journal.Entry) (journal.Entry, error) {
	if e.Step == f.Step {
		return journal.Entry{}, ErrDiskFull
	}
	return f.Store.Append(e)
}
