package journal_test

import (
	"path/filepath"
	"testing"

	"github.com/cloudstack-xenha/xenha-bridge/journal"
	"github.com/cloudstack-xenha/xenha-bridge/journal/journaltest"
)

func TestBoltConformance(t *testing.T) {
	journaltest.Conformance(t, func(t *testing.T) (journal.Store, journal.Store) {
		j, err := journal.Open(filepath.Join(t.TempDir(), "j.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { j.Close() })
		return j, j // one process holds the file
	})
}
