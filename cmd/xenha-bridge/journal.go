package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/journal"
	pb "github.com/cloudstack-xenha/xenha-bridge/proto/cloudstack/xenha/v1"
)

const journalAbout = `Prints a pool's journal from a running bridge (--pool), copies the running
bridge's journal into a file (--backup), or verifies a journal file no
bridge holds (--check).`

// runJournal prints a pool's journal from a running bridge (the journal
// file is held by the bridge, so this goes through the API), copies the
// whole journal from a running bridge (--backup), or checks a journal file
// no bridge holds (--check: a backup before it is restored).
func runJournal(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("journal", flag.ContinueOnError)
	conn := addConnFlags(fs, time.Minute)
	pool := fs.String("pool", "", "print this pool's journal (name or UUID)")
	after := fs.Uint64("after", 0, "with --pool: entries after this sequence number")
	limit := fs.Int("limit", 0, "with --pool: at most this many entries (0: the whole journal, read in pages)")
	backup := fs.String("backup", "", "write a consistent copy of the running bridge's journal to this file (mode 0600; replaced if it exists)")
	check := fs.String("check", "", "verify this journal file, which no bridge may hold (a backup, before restoring it), and summarize it")
	if err := parseFlags(fs, args, stdout, journalAbout); err != nil {
		return err
	}
	modes := 0
	for _, s := range []string{*pool, *backup, *check} {
		if s != "" {
			modes++
		}
	}
	if modes != 1 {
		return errors.New("say what to do: --pool NAME (print a pool's journal), --backup FILE (copy the running bridge's journal) or --check FILE (verify a journal file)")
	}
	if *check != "" {
		sum, err := journal.Check(*check)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: a sound journal, %d bytes\n", *check, sum.Bytes)
		printSummary(stdout, sum)
		return nil
	}

	cc, err := conn.dial()
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, *conn.timeout)
	defer cancel()
	if ctx, err = conn.authorize(ctx); err != nil {
		return err
	}
	client := pb.NewXenHAServiceClient(cc)
	if *backup != "" {
		return conn.explain(backupJournal(ctx, client, *backup, stdout))
	}
	if *limit < 0 {
		return errors.New("--limit must not be negative")
	}
	entries, err := readJournal(ctx, client, *pool, *after, *limit)
	if err != nil {
		return conn.explain(err)
	}
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "SEQ\tTIME\tKIND\tSTEP\tOK\tEPOCH\tHOST\tREQUEST\tDETAIL")
	for _, e := range entries {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%v\t%d\t%s\t%s\t%s\n", e.GetSequence(), e.GetTime().AsTime().UTC().Format(time.RFC3339),
			e.GetKind(), e.GetStep(), e.GetOk(), e.GetEpoch(), short(e.GetHostUuid()), e.GetRequestId(), e.GetDetail())
	}
	return w.Flush()
}

// readJournal reads a pool's entries after a sequence number, page by
// page (the API answers at most 1000 at a time by default), up to limit
// (0: all of them).
func readJournal(ctx context.Context, client pb.XenHAServiceClient, pool string, after uint64, limit int) ([]*pb.JournalEntry, error) {
	const page = 1000
	var out []*pb.JournalEntry
	for {
		n := page
		if limit > 0 {
			n = min(page, limit-len(out))
		}
		resp, err := client.Journal(ctx, &pb.JournalRequest{Pool: pool, AfterSequence: after, Limit: int32(n)})
		if err != nil {
			return nil, err
		}
		got := resp.GetEntries()
		out = append(out, got...)
		if len(got) < n || limit > 0 && len(out) >= limit {
			return out, nil
		}
		after = got[len(got)-1].GetSequence()
	}
}

// backupJournal copies the running bridge's journal into path: received
// into a temporary file beside it, its size and SHA-256 compared with the
// bridge's, checked as a journal, synced, then renamed into place. A
// failed backup leaves path as it was.
func backupJournal(ctx context.Context, client pb.XenHAServiceClient, path string, stdout io.Writer) error {
	stream, err := client.BackupJournal(ctx, &pb.BackupJournalRequest{})
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-*")
	if err != nil {
		return fmt.Errorf("journal --backup: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("journal --backup: %w", err)
	}
	h := sha256.New()
	var size, got int64
	var sum []byte
	for first := true; ; first = false {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if first {
			size = r.GetSize()
		}
		if _, err := tmp.Write(r.GetData()); err != nil {
			return fmt.Errorf("journal --backup: %w", err)
		}
		h.Write(r.GetData())
		got += int64(len(r.GetData()))
		if r.GetSha256() != nil {
			sum = r.GetSha256()
		}
	}
	if got != size || sum == nil || !bytes.Equal(sum, h.Sum(nil)) {
		return fmt.Errorf("journal --backup: the copy arrived incomplete (%d of %d bytes, checksum %t): nothing written to %s",
			got, size, sum != nil && bytes.Equal(sum, h.Sum(nil)), path)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("journal --backup: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("journal --backup: %w", err)
	}
	summary, err := journal.Check(tmp.Name())
	if err != nil {
		return fmt.Errorf("journal --backup: the copy does not check, nothing written to %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("journal --backup: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	fmt.Fprintf(stdout, "journal backed up to %s: %d bytes, checked\n", path, size)
	printSummary(stdout, summary)
	return nil
}

// printSummary prints each pool of a journal: entries and epoch.
func printSummary(w io.Writer, s journal.Summary) {
	if len(s.Pools) == 0 {
		fmt.Fprintln(w, "  no pools")
	}
	for _, name := range s.Names() {
		p := s.Pools[name]
		fmt.Fprintf(w, "  pool %s: %d entries, epoch %d\n", name, p.Entries, p.Epoch)
	}
	for _, n := range s.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

func short(uuid string) string {
	if len(uuid) > 8 {
		return uuid[:8]
	}
	return uuid
}
