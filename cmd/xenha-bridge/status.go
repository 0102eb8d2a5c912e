package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"golang.org/x/term"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/cloudstack-xenha/xenha-bridge/config"
	pb "github.com/cloudstack-xenha/xenha-bridge/proto/cloudstack/xenha/v1"
)

// connFlags are how a command reaches a running bridge.
type connFlags struct {
	addr, tokenFile, caFile, serverName *string
	timeout                             *time.Duration
}

func addConnFlags(fs *flag.FlagSet, timeout time.Duration) *connFlags {
	return &connFlags{
		addr:       fs.String("addr", config.DefaultListen, "the bridge's gRPC address"),
		tokenFile:  fs.String("token-file", "", "a file holding the bridge's bearer token (auth.token_file)"),
		caFile:     fs.String("ca-file", "", "use TLS, trusting this CA (PEM)"),
		serverName: fs.String("tls-server-name", "", "with --ca-file: the name the bridge's certificate must carry (default: the host of --addr)"),
		timeout:    fs.Duration("timeout", timeout, "how long to wait for the bridge's answers"),
	}
}

// dial connects (lazily, as grpc does) in plaintext on loopback, or over
// TLS with --ca-file.
func (c *connFlags) dial() (*grpc.ClientConn, error) {
	if err := loopbackOrTLS(*c.addr, *c.caFile); err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if *c.caFile != "" {
		pem, err := os.ReadFile(*c.caFile)
		if err != nil {
			return nil, err
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate", *c.caFile)
		}
		creds = credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: *c.serverName, MinVersion: tls.VersionTLS12})
	}
	return grpc.NewClient(*c.addr, grpc.WithTransportCredentials(creds))
}

// authorize adds the bearer token, if any, to the calls made with ctx.
func (c *connFlags) authorize(ctx context.Context) (context.Context, error) {
	if *c.tokenFile == "" {
		return ctx, nil
	}
	// The rules of the bridge's own secret files (config.ReadSecretFile).
	tok, err := config.ReadSecretFile("--token-file", *c.tokenFile, "the bridge's API token")
	if err != nil {
		return nil, err
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok), nil
}

// The operator's view, as --json prints it. Enum values are written as
// the configuration and the metrics write them: lower case, no prefix.
type statusReport struct {
	Addr  string       `json:"addr"`
	Time  time.Time    `json:"time"`
	Pools []poolStatus `json:"pools"`
}

type poolStatus struct {
	Name       string     `json:"name"`
	UUID       string     `json:"uuid"`
	Observed   bool       `json:"observed"`
	ObservedAt *time.Time `json:"observed_at,omitempty"`
	Controller string     `json:"controller"`
	Policy     string     `json:"policy"`
	HAEnabled  bool       `json:"ha_enabled"`
	HATimeout  string     `json:"ha_timeout,omitempty"`
	Epoch      uint64     `json:"epoch"`
	// Lease: several management servers; nil with one.
	Lease         *leaseStatus    `json:"lease,omitempty"`
	Master        masterStatus    `json:"master"`
	HostCount     int             `json:"host_count"`
	LiveHostCount int             `json:"live_host_count"`
	Hosts         []hostStatus    `json:"hosts"`
	Warnings      []warningStatus `json:"warnings"`
	// Journal holds the last entries, oldest first; JournalError says why
	// there are none when they could not be read.
	Journal      []journalLine `json:"journal"`
	JournalError string        `json:"journal_error,omitempty"`
}

type leaseStatus struct {
	Holder        string `json:"holder"`
	HolderAddress string `json:"holder_address"`
	HeldHere      bool   `json:"held_here"`
	Term          uint64 `json:"term"`
	Error         string `json:"error,omitempty"`
}

type masterStatus struct {
	UUID      string `json:"uuid"`
	Name      string `json:"name"`
	Address   string `json:"address"`
	Reachable bool   `json:"reachable"`
}

// hostStatus is a host as xapi records it (Live: host_metrics.live, which
// stays true for 600 s after a host dies) and as the bridge reaches it
// (Probe: what its last probe got; Reached: it answered).
type hostStatus struct {
	UUID    string `json:"uuid"`
	Name    string `json:"name"`
	Address string `json:"address"`
	Live    bool   `json:"live"`
	Probe   string `json:"probe"`
	Reached bool   `json:"reached"`
	Enabled bool   `json:"enabled"`
}

// reached says whether a probe's answer means the host's XAPI answered.
func reached(probe string) bool {
	return probe == "master" || probe == "slave" || probe == "emergency"
}

type warningStatus struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type journalLine struct {
	Sequence  uint64    `json:"sequence"`
	Time      time.Time `json:"time"`
	Kind      string    `json:"kind"`
	Step      string    `json:"step"`
	OK        bool      `json:"ok"`
	Epoch     uint64    `json:"epoch"`
	Host      string    `json:"host,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
	Detail    string    `json:"detail"`
}

const statusAbout = `Prints, for each pool the bridge attaches (or one), who controls it, its
master, its hosts (LIVE as xapi records it, PROBE as the bridge reaches
them), its warnings in full sentences, its epoch and its last journal
entries: a table for people, a JSON document with --json.`

// runStatus prints, for each pool (or one), who controls it, its master,
// its hosts, its warnings in full sentences, its epoch and its last
// journal entries: a table for people, a JSON document with --json.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	conn := addConnFlags(fs, 10*time.Second)
	pool := fs.String("pool", "", "only this pool (name or UUID)")
	jsonOut := fs.Bool("json", false, "print a JSON document (for scripts)")
	entries := fs.Int("entries", 5, "journal entries shown per pool")
	if err := parseFlags(fs, args, stdout, statusAbout); err != nil {
		return err
	}
	if *entries < 0 || *entries > 1000 {
		return errors.New("--entries must be between 0 and 1000")
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
	rep, err := gatherStatus(ctx, pb.NewXenHAServiceClient(cc), *pool, *entries)
	if err != nil {
		return conn.explain(err)
	}
	rep.Addr = *conn.addr
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return printStatus(stdout, rep, terminalWidth(stdout))
}

// gatherStatus asks HAMode and Journal for each pool.
func gatherStatus(ctx context.Context, c pb.XenHAServiceClient, only string, entries int) (*statusReport, error) {
	var names []string
	if only != "" {
		names = []string{only}
	} else {
		list, err := c.ListPools(ctx, &pb.ListPoolsRequest{})
		if err != nil {
			return nil, err
		}
		for _, p := range list.GetPools() {
			names = append(names, p.GetName())
		}
	}
	rep := &statusReport{Time: time.Now().UTC(), Pools: []poolStatus{}}
	for _, name := range names {
		m, err := c.HAMode(ctx, &pb.HAModeRequest{Pool: name})
		if status.Code(err) == codes.NotFound && only == "" {
			continue // detached since ListPools
		}
		if err != nil {
			return nil, err
		}
		ps := poolFromHAMode(m)
		if entries > 0 {
			lines, err := lastJournal(ctx, c, m.GetPool(), entries)
			switch {
			case err != nil && ctx.Err() != nil:
				return nil, err
			case err != nil:
				ps.JournalError = describeErr(err).Error()
			default:
				ps.Journal = lines
			}
		}
		rep.Pools = append(rep.Pools, ps)
	}
	return rep, nil
}

// describeErr keeps a gRPC error's code and message, not its wrapping.
func describeErr(err error) error {
	if st, ok := status.FromError(err); ok {
		return fmt.Errorf("%s: %s", st.Code(), st.Message())
	}
	return err
}

// enumName turns CONTROLLER_CLOUDSTACK into cloudstack.
func enumName(full, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(full, prefix))
}

func poolFromHAMode(m *pb.HAModeResponse) poolStatus {
	ps := poolStatus{
		Name: m.GetPool(), UUID: m.GetPoolUuid(), Observed: m.GetObserved(),
		Controller: enumName(m.GetController().String(), "CONTROLLER_"),
		Policy:     enumName(m.GetPolicy().String(), "POLICY_"),
		HAEnabled:  m.GetHaEnabled(), Epoch: m.GetEpoch(),
		Master: masterStatus{UUID: m.GetMaster().GetUuid(), Name: m.GetMaster().GetName(),
			Address: m.GetMaster().GetAddress(), Reachable: m.GetMaster().GetReachable()},
		HostCount: int(m.GetHostCount()), LiveHostCount: int(m.GetLiveHostCount()),
		Lease: leaseFromPB(m.GetLease()),
		Hosts: []hostStatus{}, Warnings: []warningStatus{}, Journal: []journalLine{},
	}
	if t := m.GetObservedAt(); t != nil && t.AsTime().Unix() > 0 {
		at := t.AsTime().UTC()
		ps.ObservedAt = &at
	}
	if ps.HAEnabled {
		ps.HATimeout = m.GetHaTimeout().AsDuration().String()
	}
	for _, h := range m.GetHosts() {
		ps.Hosts = append(ps.Hosts, hostStatus{UUID: h.GetUuid(), Name: h.GetName(), Address: h.GetAddress(),
			Live: h.GetLive(), Enabled: h.GetEnabled(), Probe: h.GetProbe(), Reached: reached(h.GetProbe())})
	}
	for _, w := range m.GetWarnings() {
		ps.Warnings = append(ps.Warnings, warningStatus{Code: enumName(w.GetCode().String(), "WARNING_CODE_"), Message: w.GetMessage()})
	}
	return ps
}

// journalPage is what lastJournal reads at once.
const journalPage = 1000

// lastJournal returns a pool's last n journal entries. The Journal RPC
// reads forwards from a sequence number, so a journal of more than a page
// is bisected for its newest sequence first (an entry after s exists
// exactly when s is below the newest): a few one-entry calls instead of
// reading it all.
func lastJournal(ctx context.Context, c pb.XenHAServiceClient, pool string, n int) ([]journalLine, error) {
	read := func(after uint64, limit int) ([]*pb.JournalEntry, error) {
		r, err := c.Journal(ctx, &pb.JournalRequest{Pool: pool, AfterSequence: after, Limit: int32(limit)})
		return r.GetEntries(), err
	}
	first, err := read(0, journalPage)
	if err != nil {
		return nil, err
	}
	tail := first
	if len(first) == journalPage {
		lo := first[len(first)-1].GetSequence() // the newest is at least lo ...
		hi := lo                                // ... and, once no entry is after hi, at most hi
		for {
			e, err := read(hi, 1)
			if err != nil {
				return nil, err
			}
			if len(e) == 0 {
				break
			}
			lo, hi = e[0].GetSequence(), e[0].GetSequence()*2
		}
		for lo < hi {
			mid := lo + (hi-lo)/2
			e, err := read(mid, 1)
			if err != nil {
				return nil, err
			}
			if len(e) == 0 {
				hi = mid
			} else {
				lo = e[0].GetSequence()
			}
		}
		if tail, err = read(lo-min(lo, uint64(n)), n); err != nil {
			return nil, err
		}
	}
	if len(tail) > n {
		tail = tail[len(tail)-n:]
	}
	out := make([]journalLine, 0, len(tail))
	for _, e := range tail {
		out = append(out, journalLine{Sequence: e.GetSequence(), Time: e.GetTime().AsTime().UTC(), Kind: e.GetKind(),
			Step: e.GetStep(), OK: e.GetOk(), Epoch: e.GetEpoch(), Host: e.GetHostUuid(), RequestID: e.GetRequestId(),
			Detail: e.GetDetail()})
	}
	return out, nil
}

// terminalWidth is the width of the terminal w writes to; 0 when it is not
// a terminal (then long text is not wrapped).
func terminalWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return 0
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil || width < 40 {
		return 80
	}
	return width
}

// printStatus writes the report for people: one summary line per pool,
// then each pool in detail. No colour: it reads the same in a terminal, a
// pipe or a log. width, when not 0, is what long text is fitted to.
func printStatus(w io.Writer, rep *statusReport, width int) error {
	if len(rep.Pools) == 0 {
		_, err := fmt.Fprintf(w, "no pool is attached to the bridge at %s\n", rep.Addr)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "POOL\tCONTROLLER\tMASTER\tLIVE\tEPOCH\tWARNINGS")
	for _, p := range rep.Pools {
		codes := make([]string, 0, len(p.Warnings))
		for _, wn := range p.Warnings {
			codes = append(codes, wn.Code)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d\t%s\n", p.Name, p.Controller, masterCell(p.Master),
			p.LiveHostCount, p.HostCount, p.Epoch, orDash(strings.Join(codes, ",")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range rep.Pools {
		fmt.Fprintln(w)
		printPool(w, p, rep.Time, width)
	}
	return nil
}

// reachedNote says how many hosts the bridge reaches beside xapi's live
// count (nothing before any probe), and whether a host xapi calls live
// does not answer the bridge.
func reachedNote(hosts []hostStatus) (note string, liveNotReached bool) {
	probed, got := 0, 0
	for _, h := range hosts {
		if h.Probe == "" {
			continue
		}
		probed++
		if reached(h.Probe) {
			got++
		} else if h.Live {
			liveNotReached = true
		}
	}
	if probed == 0 {
		return "", false
	}
	return fmt.Sprintf(" (xapi), %d reached by the bridge", got), liveNotReached
}

func masterCell(m masterStatus) string {
	if m.Name == "" && m.UUID == "" {
		return "-"
	}
	s := m.Name
	if !m.Reachable {
		s += " (unreachable)"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func printPool(w io.Writer, p poolStatus, now time.Time, width int) {
	fmt.Fprintf(w, "pool %s  %s\n", p.Name, orDash(p.UUID))
	xenha := "XenHA off"
	if p.HAEnabled {
		xenha = "XenHA on, T=" + p.HATimeout
	}
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintf(tw, "  controller:\t%s (policy %s, %s)\n", p.Controller, p.Policy, xenha)
	master := "-"
	if p.Master.Name != "" || p.Master.UUID != "" {
		reach := "reachable"
		if !p.Master.Reachable {
			reach = "NOT reachable"
		}
		master = fmt.Sprintf("%s  %s  %s, %s", p.Master.Name, p.Master.Address, short(p.Master.UUID), reach)
	}
	fmt.Fprintf(tw, "  master:\t%s\n", master)
	observed := "never observed"
	if p.ObservedAt != nil {
		observed = "last heard " + ago(now.Sub(*p.ObservedAt)) + " ago"
	}
	fmt.Fprintf(tw, "  epoch:\t%d (%s)\n", p.Epoch, observed)
	if l := p.Lease; l != nil {
		fmt.Fprintf(tw, "  lease:\t%s\n", leaseLine(l))
	}
	note, liveNotReached := reachedNote(p.Hosts)
	fmt.Fprintf(tw, "  hosts:\t%d of %d live%s\n", p.LiveHostCount, p.HostCount, note)
	tw.Flush()
	if len(p.Hosts) > 0 {
		// LIVE is xapi's word (a dead host stays live for 600 s), PROBE the
		// bridge's: side by side.
		ht := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(ht, "    NAME\tADDRESS\tLIVE\tPROBE\tENABLED\tUUID")
		for _, h := range p.Hosts {
			fmt.Fprintf(ht, "    %s\t%s\t%s\t%s\t%s\t%s\n", h.Name, h.Address, yesNo(h.Live), orDash(h.Probe), yesNo(h.Enabled), short(h.UUID))
		}
		ht.Flush()
		if liveNotReached {
			for _, line := range wrap("LIVE yes with PROBE unreachable: xapi has not declared the host dead yet "+
				"(it waits up to 600 s), but the bridge does not reach it.", width-4) {
				fmt.Fprintf(w, "    %s\n", line)
			}
		}
	}
	if len(p.Warnings) == 0 {
		fmt.Fprintln(w, "  warnings:   none")
	} else {
		fmt.Fprintf(w, "  warnings:   %d\n", len(p.Warnings))
		for _, wn := range p.Warnings {
			fmt.Fprintf(w, "    %s\n", wn.Code)
			for _, line := range wrap(wn.Message, width-6) {
				fmt.Fprintf(w, "      %s\n", line)
			}
		}
	}
	switch {
	case p.JournalError != "":
		fmt.Fprintf(w, "  journal:    cannot be read: %s\n", p.JournalError)
	case len(p.Journal) == 0:
		fmt.Fprintln(w, "  journal:    empty")
	default:
		fmt.Fprintf(w, "  journal:    last %d (all of them: xenha-bridge journal --pool %s)\n", len(p.Journal), p.Name)
		printJournal(w, p.Journal, width)
	}
}

// printJournal writes journal lines as a table, each entry's detail on
// the lines below it, wrapped to the width when there is one.
func printJournal(w io.Writer, lines []journalLine, width int) {
	const indent, detailIndent = "    ", "           "
	rows := [][]string{{"SEQ", "TIME (UTC)", "KIND", "STEP", "OK", "EPOCH", "HOST", "REQUEST"}}
	for _, e := range lines {
		rows = append(rows, []string{fmt.Sprint(e.Sequence), e.Time.UTC().Format(time.Stamp), e.Kind, e.Step, yesNo(e.OK),
			fmt.Sprint(e.Epoch), orDash(short(e.Host)), orDash(e.RequestID)})
	}
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, cell := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	for i, r := range rows {
		var b strings.Builder
		b.WriteString(indent)
		for j, cell := range r {
			b.WriteString(cell)
			if j < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[j]-utf8.RuneCountInString(cell)+2))
			}
		}
		fmt.Fprintln(w, b.String())
		if i == 0 {
			continue
		}
		detailWidth := 0
		if width > 0 {
			detailWidth = width - len(detailIndent)
		}
		for _, line := range wrap(lines[i-1].Detail, detailWidth) {
			fmt.Fprintln(w, detailIndent+line)
		}
	}
}

// wrap breaks text into lines of at most width characters at spaces;
// width <= 0 keeps it on one line.
func wrap(text string, width int) []string {
	if width <= 0 {
		return []string{text}
	}
	width = max(width, 30)
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		switch {
		case line == "":
			line = word
		case utf8.RuneCountInString(line)+1+utf8.RuneCountInString(word) > width:
			lines = append(lines, line)
			line = word
		default:
			line += " " + word
		}
	}
	return append(lines, line)
}

// ago says how long d is, roughly.
func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return d.Round(time.Minute).String()
	}
	return d.Round(time.Hour).String()
}

func leaseFromPB(l *pb.Lease) *leaseStatus {
	if l == nil {
		return nil
	}
	return &leaseStatus{Holder: l.GetHolder(), HolderAddress: l.GetHolderAddress(), HeldHere: l.GetHeldHere(), Term: l.GetTerm(), Error: l.GetError()}
}

// leaseLine says who may act on the pool, among several bridges.
func leaseLine(l *leaseStatus) string {
	switch {
	case l.HeldHere:
		return fmt.Sprintf("held by this bridge (%s), term %d: it acts on the pool", l.Holder, l.Term)
	case l.Error != "":
		return "unknown: " + l.Error + "; this bridge does not act"
	case l.Holder == "":
		return "nobody holds it yet"
	}
	return fmt.Sprintf("held by %s at %s, term %d: not acting here", l.Holder, orDash(l.HolderAddress), l.Term)
}
