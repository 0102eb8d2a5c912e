package journal

import (
	"path/filepath"
	"testing"
)

func TestStats(t *testing.T) {
	j, err := Open(filepath.Join(t.TempDir(), "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	st, err := j.Stats()
	if err != nil || len(st.Entries) != 0 || st.Bytes <= 0 {
		t.Fatalf("empty journal: %+v %v", st, err)
	}
	for _, pool := range []string{"a", "a", "b", "a"} {
		if _, err := j.Append(Entry{Pool: pool, Kind: "fence", Step: "request"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := j.AdvanceEpoch("c", "s", 3); err != nil { // an epoch is not an entry
		t.Fatal(err)
	}
	st, err = j.Stats()
	if err != nil || len(st.Entries) != 2 || st.Entries["a"] != 3 || st.Entries["b"] != 1 {
		t.Fatalf("stats: %+v %v", st, err)
	}
}
