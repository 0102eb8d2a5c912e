package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cloudstack-xenha/xenha-bridge/journal"
	pb "github.com/cloudstack-xenha/xenha-bridge/proto/cloudstack/xenha/v1"
)

// bridge is a `serve --simulate` running in the test.
type bridge struct {
	addr string
	logs *lockedBuffer
	stop func() error
}

// startBridge runs serve with a journal and waits until it serves; it
// fails the test if serve refuses to start.
func startBridge(t *testing.T, journalPath string, extra ...string) *bridge {
	t.Helper()
	b, err := tryBridge(t, journalPath, extra...)
	if err != nil {
		t.Fatalf("serve: %v\n%s", err, b.logs)
	}
	return b
}

func tryBridge(t *testing.T, journalPath string, extra ...string) (*bridge, error) {
	t.Helper()
	b := &bridge{addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), logs: &lockedBuffer{}}
	control := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	args := append([]string{"serve", "--simulate", "--listen", b.addr, "--sim-control", control, "--sim-port", "0",
		"--journal", journalPath}, extra...)
	go func() { served <- run(ctx, args, io.Discard, b.logs) }()
	var once sync.Once
	var stopped error
	b.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopped = <-served:
			case <-time.After(15 * time.Second):
				stopped = errors.New("serve did not stop")
			}
		})
		return stopped
	}
	t.Cleanup(func() { b.stop() })
	// Up, or refused.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-served:
			served <- err
			return b, err
		default:
		}
		if out, err := command(t, 5*time.Second, "health", "--addr", b.addr, "--timeout", "500ms"); err == nil && strings.HasSuffix(out, " SERVING\n") {
			return b, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return b, errors.New("serve did not start serving")
}

// epochOf reads a pool's epoch from a bridge once the pool is observed.
func epochOf(t *testing.T, addr, pool string) uint64 {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := pb.NewXenHAServiceClient(conn).HAMode(ctx, &pb.HAModeRequest{Pool: pool})
		cancel()
		if err == nil && r.GetObserved() && r.GetEpoch() > 0 {
			return r.GetEpoch()
		}
		if time.Now().After(deadline) {
			t.Fatalf("HAMode %s: %v %v", pool, r, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// spoilJournal writes 0xff over every page of a journal but its two meta
// pages, and returns what was there.
func spoilJournal(t *testing.T, path string) (restore func()) {
	t.Helper()
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xff}, len(orig)-2*page), 2*page); err != nil {
		t.Fatal(err)
	}
	return func() {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt(orig[2*page:], 2*page); err != nil {
			t.Fatal(err)
		}
	}
}

func TestServeRefusesADamagedJournalAndStartsANewOneOnlyWhenTold(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	b := startBridge(t, path)
	epochOf(t, b.addr, "sim")
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	spoilJournal(t, path)

	_, err := tryBridge(t, path)
	if err == nil {
		t.Fatal("serve started on a damaged journal")
	}
	for _, want := range []string{path, "damaged", "--new-journal", "backup", "epochs"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("serve's refusal does not say %q: %v", want, err)
		}
	}

	// The operator says so: a new journal, the damaged one kept beside.
	b = startBridge(t, path, "--new-journal")
	if n := epochOf(t, b.addr, "sim"); n != 1 {
		t.Errorf("a new journal's epoch is %d", n)
	}
	if kept, _ := filepath.Glob(path + ".damaged-*"); len(kept) != 1 {
		t.Errorf("the damaged journal was not kept: %v", kept)
	}
	if !strings.Contains(b.logs.String(), "started a new journal") {
		t.Errorf("the log does not say a new journal was started:\n%s", b.logs)
	}
}

func TestServeRefusesAnEmptiedOrRemovedJournal(t *testing.T) {
	for _, how := range []string{"emptied", "removed"} {
		t.Run(how, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "journal.db")
			b := startBridge(t, path)
			epochOf(t, b.addr, "sim")
			b.stop()
			if how == "emptied" {
				os.Truncate(path, 0)
			} else {
				os.Remove(path)
			}
			_, err := tryBridge(t, path)
			if err == nil || !strings.Contains(err.Error(), how) || !strings.Contains(err.Error(), "--new-journal") {
				t.Fatalf("serve on an %s journal: %v", how, err)
			}
			startBridge(t, path, "--new-journal")
		})
	}
}

func TestABridgeWhoseJournalStopsReadingIsNotReadyUntilItReadsAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	b := startBridge(t, path)
	epochOf(t, b.addr, "sim")
	restore := spoilJournal(t, path)

	// A read fails: UNAVAILABLE, not INTERNAL; then health says NOT_SERVING.
	_, err := command(t, 10*time.Second, "journal", "--addr", b.addr, "--pool", "sim")
	if err == nil || !strings.Contains(err.Error(), "Unavailable") {
		t.Fatalf("journal of a spoiled file: %v", err)
	}
	for _, service := range []string{"", "cloudstack.xenha.v1.XenHAService"} {
		out, err := command(t, 10*time.Second, "health", "--addr", b.addr, "--service", service)
		var exit exitError
		if !errors.As(err, &exit) || !strings.Contains(out, "NOT_SERVING") {
			t.Fatalf("health %q of a bridge that cannot read its journal: %q %v", service, out, err)
		}
	}

	restore()
	if out, err := command(t, 20*time.Second, "health", "--addr", b.addr, "--wait", "15s"); err != nil {
		t.Fatalf("health once the journal reads again: %q %v\n%s", out, err, b.logs)
	}
	if out, err := command(t, 10*time.Second, "journal", "--addr", b.addr, "--pool", "sim"); err != nil {
		t.Fatalf("journal once it reads again: %q %v", out, err)
	}
	for _, want := range []string{"the journal cannot be read", "the journal reads again"} {
		if !strings.Contains(b.logs.String(), want) {
			t.Errorf("the log does not say %q", want)
		}
	}
}

func TestABackupTakenWhileServingRestores(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "journal.db")
	b := startBridge(t, path)
	epoch := epochOf(t, b.addr, "sim") // journaled when the pool was observed

	backup := filepath.Join(dir, "backups", "journal-1.db")
	os.Mkdir(filepath.Dir(backup), 0o700)
	out, err := command(t, 20*time.Second, "journal", "--addr", b.addr, "--backup", backup)
	if err != nil {
		t.Fatalf("journal --backup: %v", err)
	}
	if !strings.Contains(out, backup) || !strings.Contains(out, "sim") {
		t.Errorf("journal --backup says: %q", out)
	}
	if fi, err := os.Stat(backup); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the backup file: %v %v", fi, err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(backup), ".*")); len(left) > 0 {
		t.Errorf("temporary files left beside the backup: %v", left)
	}
	// Another backup over the first one is fine (a timer's job).
	if _, err := command(t, 20*time.Second, "journal", "--addr", b.addr, "--backup", backup); err != nil {
		t.Fatalf("a second backup: %v", err)
	}
	b.stop()

	// The journal is lost; the bridge refuses to start without it.
	os.Remove(path)
	if _, err := tryBridge(t, path); err == nil {
		t.Fatal("serve started without its journal")
	}
	// Restore, as docs/operations.md says: check the copy, put it back, start.
	out, err = command(t, 10*time.Second, "journal", "--check", backup)
	if err != nil || !strings.Contains(out, "sim") || !strings.Contains(out, fmt.Sprintf("epoch %d", epoch)) {
		t.Fatalf("journal --check: %q %v", out, err)
	}
	data, _ := os.ReadFile(backup)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	b = startBridge(t, path)
	if got := epochOf(t, b.addr, "sim"); got < epoch {
		t.Fatalf("the restored bridge's epoch %d is below the backup's %d", got, epoch)
	}

	// What the subcommand refuses.
	for name, args := range map[string][]string{
		"no mode":            {"journal", "--addr", b.addr},
		"two modes":          {"journal", "--addr", b.addr, "--pool", "sim", "--backup", backup},
		"check a held file":  {"journal", "--check", path},
		"check not journal":  {"journal", "--check", filepath.Join(dir, "backups")},
		"backup into a void": {"journal", "--addr", b.addr, "--backup", filepath.Join(dir, "none", "x.db")},
	} {
		if _, err := command(t, 10*time.Second, args...); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := journal.Check(backup); err != nil {
		t.Errorf("the backup no longer checks: %v", err)
	}
}

// The commands' --token-file follows the rules of the bridge's own secret
// files.
func TestTheCommandsTokenFileFollowsTheSecretFileRules(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		content string
		mode    os.FileMode
		want    string
	}{
		"group-writable": {"tok-cli-1\n", 0o660, "is writable by its group (mode 0660)"},
		"world-readable": {"tok-cli-1\n", 0o644, "is readable by other users (mode 0644)"},
		"blank":          {"  \n", 0o600, "is blank (nothing but whitespace)"},
	} {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(tc.content), tc.mode)
		os.Chmod(path, tc.mode)
		for _, args := range [][]string{
			{"journal", "--addr", "127.0.0.1:1", "--pool", "sim", "--token-file", path},
			{"status", "--addr", "127.0.0.1:1", "--token-file", path},
		} {
			_, err := command(t, 5*time.Second, args...)
			if err == nil || !strings.Contains(err.Error(), "--token-file: "+path+" "+tc.want) {
				t.Errorf("%s, %s: %v", name, args[0], err)
			}
			if err != nil && strings.Contains(err.Error(), "tok-cli-1") {
				t.Errorf("%s: the token is in the error", name)
			}
		}
	}
}
