package xapisim

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// apiError is a XenAPI failure: a code and string parameters. preDispatch
// errors are the ones xapi raises before dispatch on a host in emergency
// mode; they travel in the bare-array shape.
type apiError struct {
	code        string
	params      []string
	preDispatch bool
	delay       time.Duration // xapi's pause before an authentication failure
}

func (e *apiError) Error() string { return e.code + " " + strings.Join(e.params, " ") }

func fail(code string, params ...string) *apiError {
	if params == nil {
		params = []string{}
	}
	return &apiError{code: code, params: params}
}

// errHostGone makes the HTTP layer drop the connection: xapi restarted
// under the request (or the host refuses while down), so no answer comes.
var errHostGone = &apiError{code: "__host_gone__"}

// errHostSilent makes the HTTP layer hold the connection and never answer:
// the host lost power under the request, and a dead host on a real network
// sends nothing, not even a reset.
var errHostSilent = &apiError{code: "__host_silent__"}

// downErr is what a request to a powered-off host gets.
func downErr(h *simHost) *apiError {
	if h.refuseDown {
		return errHostGone
	}
	return errHostSilent
}

// emergencyCalls work on any slave, in emergency mode too, with a
// slave-local session (api_server.ml callback1 lets only these through in
// emergency mode).
var emergencyCalls = map[string]bool{
	"pool.emergency_transition_to_master": true,
	"pool.emergency_reset_master":         true,
	"host.emergency_ha_disable":           true,
	"session.local_logout":                true,
}

// handle runs one API call arriving at host h from the network.
func (s *Sim) handle(ctx context.Context, h *simHost, method string, params []any) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errHostGone
	}
	if !h.powered {
		return nil, downErr(h)
	}
	switch method {
	case "session.login_with_password":
		return s.login(h, params)
	case "session.slave_local_login_with_password":
		return s.slaveLocalLogin(h, params)
	}
	if emergencyCalls[method] {
		sess, err := s.checkSession(h, params, true)
		if err != nil {
			return nil, err
		}
		var rec *AuditRecord
		if auditable[method] {
			rec = s.auditStart(h, method, params[1:])
		}
		res, apiErr := s.emergencyCall(h, sess, method, params[1:])
		s.auditEnd(rec, h, apiErr)
		return res, apiErr
	}
	if err := s.assertMaster(h); err != nil {
		return nil, err
	}
	sess, err := s.checkSession(h, params, false)
	if err != nil {
		return nil, err
	}
	args := params[1:]
	if method == "event.from" {
		return s.eventFrom(ctx, h, args)
	}
	var rec *AuditRecord
	if auditable[method] {
		rec = s.auditStart(h, method, args)
	}
	res, err := s.masterCall(h, sess, method, args)
	if err == nil && !isGetter(method) {
		s.settleAll()
	}
	s.auditEnd(rec, h, err)
	return res, err
}

// assertMaster answers what a slave answers to a normal call or a login.
func (s *Sim) assertMaster(h *simHost) *apiError {
	if h.booting {
		code := "HOST_STILL_BOOTING"
		if h.storageCut {
			code = "HA_HOST_CANNOT_ACCESS_STATEFILE"
		}
		return &apiError{code: code, params: []string{}, preDispatch: true}
	}
	if h.isMaster {
		return nil
	}
	if h.emergency {
		// api_server.ml callback1: in slave emergency mode every call but
		// the emergency ones raises the emergency-mode error (set to
		// HOST_STILL_BOOTING by wait_for_management_ip_address in xapi.ml).
		return &apiError{code: "HOST_STILL_BOOTING", params: []string{}, preDispatch: true}
	}
	// xapi_session.ml login_with_password: a slave raises HOST_IS_SLAVE
	// with Pool_role.get_master_address (), i.e. pool.conf, whether or not
	// that master is alive. (For normal calls xapi finds the address in the
	// database through Session_check, which on a slave reads the master's
	// database; the simulator answers them from pool.conf as well.)
	return fail("HOST_IS_SLAVE", h.masterAddr)
}

func (s *Sim) newSession(h *simHost, user string, local bool) string {
	ref := "OpaqueRef:" + s.uuid()
	s.sessions[ref] = &session{ref: ref, host: h, instance: h.instance, local: local, user: user}
	return ref
}

func (s *Sim) credentialsOK(user, pw string) bool {
	return user == s.cfg.Username && pw == s.cfg.Password
}

func (s *Sim) login(h *simHost, params []any) (any, *apiError) {
	if err := wantArgs("session.login_with_password", params, 2, 3, 4); err != nil {
		return nil, err
	}
	if err := s.assertMaster(h); err != nil {
		return nil, err
	}
	user, _ := params[0].(string)
	pw, _ := params[1].(string)
	if !s.credentialsOK(user, pw) {
		e := fail("SESSION_AUTHENTICATION_FAILED", user, "Authentication failure")
		e.delay = s.cfg.AuthFailureDelay
		return nil, e
	}
	return s.newSession(h, user, false), nil
}

func (s *Sim) slaveLocalLogin(h *simHost, params []any) (any, *apiError) {
	if err := wantArgs("session.slave_local_login_with_password", params, 2); err != nil {
		return nil, err
	}
	user, _ := params[0].(string)
	pw, _ := params[1].(string)
	if !s.credentialsOK(user, pw) {
		e := fail("SESSION_AUTHENTICATION_FAILED", user, "Authentication failure")
		e.delay = s.cfg.AuthFailureDelay
		return nil, e
	}
	return s.newSession(h, user, true), nil
}

// checkSession validates params[0]. Sessions belong to the xapi instance
// that issued them: a restart or a change of role invalidates them.
func (s *Sim) checkSession(h *simHost, params []any, allowLocal bool) (*session, *apiError) {
	if len(params) == 0 {
		return nil, fail("SESSION_INVALID", "")
	}
	ref, _ := params[0].(string)
	sess := s.sessions[ref]
	if sess == nil || sess.host != h || sess.instance != h.instance || sess.local && !allowLocal {
		return nil, fail("SESSION_INVALID", ref)
	}
	return sess, nil
}

func (s *Sim) emergencyCall(h *simHost, sess *session, method string, args []any) (any, *apiError) {
	p := h.pool
	switch method {
	case "session.local_logout":
		delete(s.sessions, sess.ref)
		return "", nil
	case "pool.emergency_transition_to_master":
		if err := wantArgs(method, args, 0); err != nil {
			return nil, err
		}
		if h.haArmed {
			return nil, fail("HA_IS_ENABLED")
		}
		if !h.isMaster || p.master != h {
			s.log.Info("emergency transition to master", "host", h.name)
			s.promote(h)
		}
	case "pool.emergency_reset_master":
		if err := wantArgs(method, args, 1); err != nil {
			return nil, err
		}
		if h.haArmed {
			return nil, fail("HA_IS_ENABLED")
		}
		addr, ok := args[0].(string)
		if !ok || addr == "" {
			return nil, fail("INVALID_VALUE", "master_address", fmt.Sprint(args[0]))
		}
		s.demote(h, addr)
		if m := s.hostByAddress(addr); m != nil && m.pool == p && m.isMaster {
			p.master = m
		}
	case "host.emergency_ha_disable":
		if err := wantArgs(method, args, 0, 1); err != nil {
			return nil, err
		}
		h.haArmed, h.haDisarmed = false, true
		if h.booting { // its xapi start goes on without xhad
			h.booting = false
			s.xapiStart(h)
		}
	}
	s.settleAll()
	return "", nil
}

// masterCall runs a normal call on a master.
func (s *Sim) masterCall(h *simHost, sess *session, method string, args []any) (any, *apiError) {
	p := h.pool
	switch method {
	case "session.logout":
		delete(s.sessions, sess.ref)
		return "", nil
	case "pool.designate_new_master":
		if err := wantArgs(method, args, 1); err != nil {
			return nil, err
		}
		t, err := s.memberArg(p, "host", args[0])
		if err != nil {
			return nil, err
		}
		return "", s.designate(h, t)
	case "pool.recover_slaves":
		if err := wantArgs(method, args, 0); err != nil {
			return nil, err
		}
		if p.haEnabled && h.haArmed {
			return nil, fail("HA_IS_ENABLED")
		}
		reset := []string{}
		for _, o := range p.hosts {
			if o == h || o.haArmed || !s.reaches(h, o) || (!o.isMaster && o.masterAddr == h.address) {
				continue
			}
			s.demote(o, h.address)
			reset = append(reset, o.ref)
		}
		p.master = h
		return reset, nil
	case "pool.enable_ha":
		if err := wantArgs(method, args, 2); err != nil {
			return nil, err
		}
		return "", s.enableHA(h, args[0], args[1])
	case "pool.disable_ha":
		if err := wantArgs(method, args, 0); err != nil {
			return nil, err
		}
		if !p.haEnabled {
			return nil, fail("HA_NOT_ENABLED")
		}
		s.haDisable(p)
		return "", nil
	case "pool.join":
		if err := wantArgs(method, args, 3); err != nil {
			return nil, err
		}
		return "", s.join(h, args[0], args[1], args[2])
	case "pool.eject":
		if err := wantArgs(method, args, 1); err != nil {
			return nil, err
		}
		t, err := s.memberArg(p, "host", args[0])
		if err != nil {
			return nil, err
		}
		return "", s.eject(h, t)
	case "host.enable", "host.disable", "host.shutdown", "host.reboot":
		if err := wantArgs(method, args, 1); err != nil {
			return nil, err
		}
		t, err := s.memberArg(p, "host", args[0])
		if err != nil {
			return nil, err
		}
		return "", s.hostOp(h, t, strings.TrimPrefix(method, "host."))
	case "host.call_plugin":
		if err := wantArgs(method, args, 4); err != nil {
			return nil, err
		}
		t, err := s.memberArg(p, "host", args[0])
		if err != nil {
			return nil, err
		}
		plugin, _ := args[1].(string)
		fn, _ := args[2].(string)
		pargs, _ := asStringMap(args[3])
		return s.callPlugin(h, t, plugin, fn, pargs)
	case "VM.power_state_reset":
		if err := wantArgs(method, args, 1); err != nil {
			return nil, err
		}
		return "", s.powerStateReset(h, args[0])
	}
	return s.generic(h, method, args)
}

// isGetter tells read-only calls, which need no settling afterwards.
func isGetter(method string) bool {
	_, op, _ := strings.Cut(method, ".")
	return strings.HasPrefix(op, "get_")
}

// generic serves <class>.get_all, get_all_records, get_record, get_by_uuid
// and every per-field getter (the Python SDK calls pool.get_master and
// host.get_API_version_major right after login).
func (s *Sim) generic(h *simHost, method string, args []any) (any, *apiError) {
	cls, op, ok := strings.Cut(method, ".")
	name, known := className(cls)
	if !ok || !known {
		return nil, fail("MESSAGE_METHOD_UNKNOWN", method)
	}
	recs := s.records(h.pool, h)[name]
	lookup := func(v any) (record, *apiError) {
		ref, _ := v.(string)
		r, ok := recs[ref]
		if !ok {
			return nil, fail("HANDLE_INVALID", name, ref)
		}
		return r, nil
	}
	switch {
	case op == "get_all":
		if err := wantArgs(method, args, 0); err != nil {
			return nil, err
		}
		refs := []string{}
		for ref := range recs {
			refs = append(refs, ref)
		}
		sort.Strings(refs)
		return refs, nil
	case op == "get_all_records":
		if err := wantArgs(method, args, 0); err != nil {
			return nil, err
		}
		out := map[string]any{}
		for ref, r := range recs {
			out[ref] = r
		}
		return out, nil
	case op == "get_record":
		if err := wantArgs(method, args, 1); err != nil {
			return nil, err
		}
		return lookup(args[0])
	case op == "get_by_uuid":
		if err := wantArgs(method, args, 1); err != nil {
			return nil, err
		}
		for ref, r := range recs {
			if r["uuid"] == args[0] {
				return ref, nil
			}
		}
		return nil, fail("UUID_INVALID", name, fmt.Sprint(args[0]))
	case strings.HasPrefix(op, "get_"):
		if err := wantArgs(method, args, 1); err != nil {
			return nil, err
		}
		r, err := lookup(args[0])
		if err != nil {
			return nil, err
		}
		v, ok := r[strings.TrimPrefix(op, "get_")]
		if !ok {
			return nil, fail("MESSAGE_METHOD_UNKNOWN", method)
		}
		return v, nil
	}
	return nil, fail("MESSAGE_METHOD_UNKNOWN", method)
}

func (s *Sim) memberArg(p *simPool, class string, v any) (*simHost, *apiError) {
	ref, _ := v.(string)
	if h := p.member(ref); h != nil {
		return h, nil
	}
	return nil, fail("HANDLE_INVALID", class, ref)
}

// designate is pool.designate_new_master (and an admin's
// `xe pool-designate-new-master`): a clean handover to a live host.
func (s *Sim) designate(from, t *simHost) *apiError {
	p := t.pool
	if p.haEnabled {
		return fail("HA_IS_ENABLED")
	}
	if t == p.master && t.isMaster {
		return nil
	}
	if !t.live || !s.reaches(from, t) {
		return fail("HOST_OFFLINE", t.ref)
	}
	s.log.Info("designate new master", "host", t.name)
	s.promote(t)
	for _, o := range p.hosts {
		if o != t && (o.isMaster || s.reaches(t, o)) {
			s.demote(o, t.address)
		}
	}
	return nil
}

func (s *Sim) enableHA(h *simHost, rawSRs, rawConfig any) *apiError {
	p := h.pool
	if p.haEnabled {
		return fail("HA_IS_ENABLED")
	}
	srRefs, ok := asStrings(rawSRs)
	if !ok {
		return fail("FIELD_TYPE_ERROR", "heartbeat_srs")
	}
	config, ok := asStringMap(rawConfig)
	if !ok {
		return fail("FIELD_TYPE_ERROR", "configuration")
	}
	T := s.cfg.DefaultHATimeout
	if v, ok := config["timeout"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 10 {
			return fail("INVALID_VALUE", "timeout", v)
		}
		T = time.Duration(n) * time.Second
	}
	for _, o := range p.hosts {
		if !o.live || !s.reaches(h, o) {
			return fail("HOST_OFFLINE", o.ref)
		}
	}
	pluggedEverywhere := func(sr *simSR) bool {
		for _, o := range p.hosts {
			found := false
			for _, pbd := range p.pbds {
				if pbd.sr == sr && pbd.host == o && pbd.attached {
					found = true
				}
			}
			if !found {
				return false
			}
		}
		return true
	}
	var chosen *simSR
	for _, ref := range srRefs {
		var sr *simSR
		for _, x := range p.srs {
			if x.ref == ref {
				sr = x
			}
		}
		if sr == nil {
			return fail("HANDLE_INVALID", "SR", ref)
		}
		if !sr.shared {
			return fail("CANNOT_CREATE_STATE_FILE")
		}
		if !pluggedEverywhere(sr) {
			return fail("SR_NO_PBDS", ref)
		}
		if chosen == nil {
			chosen = sr
		}
	}
	if chosen == nil {
		for _, sr := range p.srs {
			if sr.shared && pluggedEverywhere(sr) {
				chosen = sr
				break
			}
		}
	}
	if chosen == nil {
		return fail("CANNOT_CREATE_STATE_FILE")
	}
	for _, o := range p.hosts {
		if o.storageCut {
			return fail("HA_HOST_CANNOT_ACCESS_STATEFILE", o.ref)
		}
	}
	s.log.Info("XenHA enabled", "pool", p.name, "timeout", T)
	s.haEnable(p, chosen, T)
	return nil
}

// join is pool.join, called on the joining (standalone) host h.
func (s *Sim) join(h *simHost, rawAddr, rawUser, rawPw any) *apiError {
	addr, _ := rawAddr.(string)
	user, _ := rawUser.(string)
	pw, _ := rawPw.(string)
	old := h.pool
	m := s.hostByAddress(addr)
	if m == nil || !m.up() || !m.isMaster || m.bridgeCut {
		return fail("JOINING_HOST_CONNECTION_FAILED")
	}
	if m.pool == old {
		return fail("OPERATION_NOT_ALLOWED", "host is already a member of this pool")
	}
	if !s.credentialsOK(user, pw) {
		return fail("SESSION_AUTHENTICATION_FAILED", user, "Authentication failure")
	}
	if len(old.hosts) > 1 {
		return fail("JOINING_HOST_CANNOT_BE_MASTER_OF_OTHER_HOSTS")
	}
	for _, sr := range old.srs {
		if sr.shared {
			return fail("JOINING_HOST_CANNOT_CONTAIN_SHARED_SRS")
		}
	}
	if len(old.residentVMs(h)) > 0 {
		return fail("JOINING_HOST_CANNOT_HAVE_RUNNING_VMS")
	}
	target := m.pool
	if target.haEnabled {
		return fail("HA_IS_ENABLED")
	}
	s.log.Info("pool join", "host", h.name, "pool", target.name)
	s.movePool(h, old, target)
	s.removePool(old)
	for _, sr := range target.srs {
		if sr.shared {
			s.newPBD(target, h, sr)
		}
	}
	s.demote(h, m.address)
	h.instance++
	return nil
}

// eject is pool.eject: the host leaves, reboots and comes back as the
// master of a pool of its own.
func (s *Sim) eject(from, t *simHost) *apiError {
	p := t.pool
	if t == p.master || t.isMaster {
		return fail("OPERATION_NOT_ALLOWED", "Cannot eject the pool master")
	}
	if p.haEnabled {
		return fail("HA_IS_ENABLED")
	}
	if !s.reaches(from, t) {
		return fail("HOST_OFFLINE", t.ref)
	}
	if vms := p.residentVMs(t); len(vms) > 0 {
		return fail("HOST_IN_USE", t.ref, "VM", vms[0].ref)
	}
	s.log.Info("pool eject", "host", t.name, "pool", p.name)
	np := s.newPool("ejected-" + t.name)
	var keep []*simPBD
	for _, pbd := range p.pbds {
		if pbd.host == t && pbd.sr.shared {
			continue // its shared PBDs are forgotten
		}
		keep = append(keep, pbd)
	}
	p.pbds = keep
	s.movePool(t, p, np)
	np.master = t
	t.isMaster, t.masterAddr = true, t.address
	s.rebootLocked(t, "pool eject")
	return nil
}

// movePool moves a host with its control domain, local SR and PBDs.
func (s *Sim) movePool(h *simHost, from, to *simPool) {
	from.hosts = removeHost(from.hosts, h)
	to.hosts = append(to.hosts, h)
	h.pool = to
	var vms []*simVM
	for _, vm := range from.vms {
		if vm == h.dom0 || vm.residentOn == nil && from.master == h && len(from.hosts) == 0 {
			to.vms = append(to.vms, vm)
			continue
		}
		vms = append(vms, vm)
	}
	from.vms = vms
	var srs []*simSR
	for _, sr := range from.srs {
		if sr.local == h {
			to.srs = append(to.srs, sr)
			continue
		}
		srs = append(srs, sr)
	}
	from.srs = srs
	var pbds []*simPBD
	for _, pbd := range from.pbds {
		if pbd.host == h {
			to.pbds = append(to.pbds, pbd)
			continue
		}
		pbds = append(pbds, pbd)
	}
	from.pbds = pbds
	if from.master == h {
		from.master = nil
	}
}

func (s *Sim) removePool(p *simPool) {
	var keep []*simPool
	for _, x := range s.pools {
		if x != p {
			keep = append(keep, x)
		}
	}
	s.pools = keep
}

func removeHost(hs []*simHost, h *simHost) []*simHost {
	var out []*simHost
	for _, x := range hs {
		if x != h {
			out = append(out, x)
		}
	}
	return out
}

func (s *Sim) hostOp(from, t *simHost, op string) *apiError {
	if !s.reaches(from, t) {
		return fail("HOST_OFFLINE", t.ref)
	}
	switch op {
	case "enable":
		t.enabled = true
	case "disable":
		t.enabled = false
	case "shutdown", "reboot":
		if t.enabled {
			return fail("HOST_NOT_DISABLED")
		}
		// A clean shutdown stops its VMs; the database follows.
		for _, vm := range t.pool.residentVMs(t) {
			vm.powerState, vm.residentOn = "Halted", nil
		}
		if op == "shutdown" {
			s.powerOffLocked(t)
		} else {
			s.rebootLocked(t, "host.reboot")
		}
	}
	return nil
}

// HeartbeatPlugin is the XAPI plugin (in /etc/xapi.d/plugins on real hosts)
// that reads CloudStack's storage heartbeat files from a peer.
const HeartbeatPlugin = "xenha-heartbeat"

func (s *Sim) callPlugin(from, t *simHost, plugin, fn string, args map[string]string) (any, *apiError) {
	if plugin != HeartbeatPlugin {
		return nil, fail("XENAPI_MISSING_PLUGIN", plugin)
	}
	if !s.reaches(from, t) {
		return nil, fail("HOST_OFFLINE", t.ref)
	}
	if fn != "read" {
		return nil, fail("XENAPI_PLUGIN_FAILURE", fn, "UnknownFunction", "no such function")
	}
	if t.storageCut {
		return nil, fail("XENAPI_PLUGIN_FAILURE", fn, "StorageError", "heartbeat storage unreachable")
	}
	var target *simHost
	for _, h := range s.hosts {
		if h.uuid == args["host_uuid"] {
			target = h
		}
	}
	if target == nil {
		return nil, fail("XENAPI_PLUGIN_FAILURE", fn, "NotFound", "no heartbeat file for host")
	}
	now := s.clock.Now()
	type beat struct {
		SR        string `json:"sr_uuid"`
		Timestamp int64  `json:"timestamp"`
	}
	out := struct {
		Now      int64  `json:"now"`
		HostUUID string `json:"host_uuid"`
		Beats    []beat `json:"beats"`
	}{Now: now.Unix(), HostUUID: target.uuid, Beats: []beat{}}
	for _, sr := range t.pool.srs {
		if sr.shared {
			out.Beats = append(out.Beats, beat{SR: sr.uuid, Timestamp: s.lastBeat(target, now).Unix()})
		}
	}
	b, _ := json.Marshal(out)
	return string(b), nil
}

// powerStateReset is VM.power_state_reset, with xapi's guards.
func (s *Sim) powerStateReset(h *simHost, raw any) *apiError {
	ref, _ := raw.(string)
	var vm *simVM
	for _, x := range h.pool.vms {
		if x.ref == ref {
			vm = x
		}
	}
	if vm == nil {
		return fail("HANDLE_INVALID", "VM", ref)
	}
	if vm.isControlDomain {
		return fail("CANNOT_RESET_CONTROL_DOMAIN", ref)
	}
	if r := vm.residentOn; r != nil {
		if r == h && vm.powerState == "Running" {
			return fail("DOMAIN_EXISTS", ref, "1")
		}
		if r.live && s.reaches(h, r) {
			return fail("HOST_IS_LIVE", r.ref)
		}
	}
	vm.powerState, vm.residentOn = "Halted", nil
	return nil
}

func wantArgs(method string, args []any, counts ...int) *apiError {
	for _, n := range counts {
		if len(args) == n {
			return nil
		}
	}
	return fail("MESSAGE_PARAMETER_COUNT_MISMATCH", method, strconv.Itoa(counts[0]), strconv.Itoa(len(args)))
}

func asStrings(v any) ([]string, bool) {
	switch x := v.(type) {
	case []string:
		return x, true
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	return nil, false
}

func asStringMap(v any) (map[string]string, bool) {
	switch x := v.(type) {
	case map[string]string:
		return x, true
	case map[string]any:
		out := map[string]string{}
		for k, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out[k] = s
		}
		return out, true
	}
	return nil, false
}

func asFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
