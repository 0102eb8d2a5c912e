package journaltest

import (
	"errors"

	"github.com/cloudstack-xenha/xenha-bridge/journal"
)

// ErrUnreadable is what FailReads's Entries returns.
var ErrUnreadable = errors.New("read tcp 10.0.0.5:3306: i/o timeout")

// FailReads is a journal whose history cannot be read, as a shared store
// behind a failing network; writes go to Store.
type FailReads struct {
	journal.Store
}

// Entries fails.
func (f FailReads) Entries(string, uint64, int) ([]journal.Entry, error) {
	return nil, ErrUnreadable
}

// Last fails.
func (f FailReads) Last(string, string, string, bool) (journal.Entry, bool, error) {
	return journal.Entry{}, false, ErrUnreadable
}
