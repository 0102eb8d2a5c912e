package mysqlstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/internal/mariadbtest"
	"github.com/cloudstack-xenha/xenha-bridge/journal"
	"github.com/cloudstack-xenha/xenha-bridge/journal/journaltest"
	"github.com/cloudstack-xenha/xenha-bridge/lease"
)

func TestMain(m *testing.M) { mariadbtest.Main(m) }

func open(t testing.TB, db mariadbtest.Database, bridge string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{DSN: db.DSN(), Password: db.Password, Bridge: bridge, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Two bridges on one database are what the journal contract means here.
func TestConformance(t *testing.T) {
	journaltest.Conformance(t, func(t *testing.T) (journal.Store, journal.Store) {
		db := mariadbtest.New(t)
		return open(t, db, "a"), open(t, db, "b")
	})
}

func TestAnyBridgeShowsTheWholeHistory(t *testing.T) {
	db := mariadbtest.New(t)
	a, b := open(t, db, "mgmt-a"), open(t, db, "mgmt-b")
	a.Append(journal.Entry{Pool: "p", Kind: "elect", Step: "promote", Detail: "by a"})
	b.Append(journal.Entry{Pool: "p", Kind: "fence", Step: "level:bmc", Detail: "by b"})
	for _, s := range []*Store{a, b} {
		es, err := s.Entries("p", 0, 0)
		if err != nil || len(es) != 2 || es[0].Detail != "by a" || es[1].Detail != "by b" {
			t.Fatalf("%+v %v", es, err)
		}
	}
	var bridges []string
	rows, err := a.db.Query(`SELECT bridge FROM xenha_journal ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		rows.Scan(&s)
		bridges = append(bridges, s)
	}
	if strings.Join(bridges, ",") != "mgmt-a,mgmt-b" {
		t.Fatalf("writers %v", bridges)
	}
}

func TestSchemaIsMigratedOnceAndRefusedWhenNewer(t *testing.T) {
	db := mariadbtest.New(t)
	// Bridges starting together: the schema lock lets one migrate.
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := Open(context.Background(), Config{DSN: db.DSN(), Password: db.Password})
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	s := open(t, db, "a")
	var v int
	if err := s.db.QueryRow(`SELECT version FROM xenha_schema`).Scan(&v); err != nil || v != SchemaVersion {
		t.Fatalf("version %d %v", v, err)
	}
	s.db.Exec(`UPDATE xenha_schema SET version = ?`, SchemaVersion+1)
	_, err := Open(context.Background(), Config{DSN: db.DSN(), Password: db.Password})
	if err == nil || !strings.Contains(err.Error(), "newer than this bridge") {
		t.Fatalf("a newer schema: %v", err)
	}
}

func TestBadCredentialsAndDSNsSayWhatIsWrongWithoutTheSecret(t *testing.T) {
	db := mariadbtest.New(t)
	const wrong = "not-the-password-8c1f"
	_, err := Open(context.Background(), Config{DSN: db.DSN(), Password: wrong, Timeout: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "Access denied") || strings.Contains(err.Error(), wrong) {
		t.Fatalf("wrong password: %v", err)
	}
	_, err = Open(context.Background(), Config{DSN: "xenha:" + wrong + "@tcp(127.0.0.1:1)/x?badopt", Timeout: time.Second})
	if err == nil || strings.Contains(err.Error(), wrong) {
		t.Fatalf("bad dsn: %v", err)
	}
}

func TestAStatementOnACutConnectionEndsAtItsDeadline(t *testing.T) {
	db := mariadbtest.New(t)
	p := mariadbtest.NewProxy(t, db.Addr)
	s, err := Open(context.Background(), Config{DSN: db.DSNVia(p.Addr), Password: db.Password, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p.Cut(true)
	start := time.Now()
	if _, err := s.Append(journal.Entry{Pool: "p", Kind: "fence"}); err == nil {
		t.Fatal("an append through a cut link succeeded")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the append hung for %s", took)
	}
	p.Cut(false)
	// The pool recovers once the link is back.
	var err2 error
	for range 50 {
		if _, err2 = s.Append(journal.Entry{Pool: "p", Kind: "fence"}); err2 == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err2 != nil {
		t.Fatalf("after the cut: %v", err2)
	}
}

func TestStats(t *testing.T) {
	s := open(t, mariadbtest.New(t), "a")
	for _, pool := range []string{"a", "a", "b", "a"} {
		if _, err := s.Append(journal.Entry{Pool: pool, Kind: "fence", Step: "request"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AdvanceEpoch("c", "s", 3); err != nil { // an epoch is not an entry
		t.Fatal(err)
	}
	st, err := s.Stats()
	if err != nil || len(st.Entries) != 2 || st.Entries["a"] != 3 || st.Entries["b"] != 1 || st.Bytes <= 0 {
		t.Fatalf("stats: %+v %v", st, err)
	}
}

// docs/several-management-servers.md's GRANT is enough: the schema, the journal, results, epochs,
// leases and the metrics' size query.
func TestTheDocumentedPrivilegesSuffice(t *testing.T) {
	db := mariadbtest.New(t)
	dsn, pw := db.User(t, "CREATE, ALTER, SELECT, INSERT, UPDATE")
	s, err := Open(context.Background(), Config{DSN: dsn, Password: pw, Bridge: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Append(journal.Entry{Pool: "p", Kind: "fence", Step: "request"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveResult("fence", "p", "r", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AdvanceEpoch("p", "s", 2); err != nil {
		t.Fatal(err)
	}
	c := lease.Claim{Pool: lease.Pool{UUID: "uuid", Name: "p"}, ID: "a", Instance: "1", Address: "a:1"}
	if rec, err := s.Acquire(context.Background(), c, time.Second); err != nil || rec.Holder != "a" {
		t.Fatalf("%+v %v", rec, err)
	}
	if err := s.Release(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Stats(); err != nil || st.Entries["p"] != 1 {
		t.Fatalf("%+v %v", st, err)
	}
	// Without CREATE the schema cannot be made, and the error says so.
	db2 := mariadbtest.New(t)
	dsn2, pw2 := db2.User(t, "SELECT, INSERT, UPDATE")
	if _, err := Open(context.Background(), Config{DSN: dsn2, Password: pw2}); err == nil || !strings.Contains(err.Error(), "denied") {
		t.Fatalf("no CREATE: %v", err)
	}
}
