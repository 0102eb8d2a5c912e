package xapisim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/cloudstack-xenha/xenha-bridge/internal/xmlrpc"
)

// hostServer is one host's xapi listener. A powered-off host keeps it open
// and never answers (silent, as a real host's address is); with
// RefuseWhenDown, powering off closes the listener and every connection
// (callers see connection refused) and powering on binds the same address
// again.
type hostServer struct {
	host *simHost
	addr string // ip:port, fixed at the first bind

	mu  sync.Mutex
	srv *http.Server
	ln  net.Listener
}

const maxRequestBody = 8 << 20

func (h *simHost) startListeners(s *Sim) error {
	h.srv = &hostServer{host: h, addr: net.JoinHostPort(h.address, strconv.Itoa(s.cfg.Port))}
	if err := h.srv.up(s); err != nil {
		return err
	}
	bmc, err := newBMCServer(s, h)
	if err != nil {
		return err
	}
	h.bmc = bmc
	return nil
}

func (h *simHost) stopListeners() {
	if h.srv != nil {
		h.srv.down()
	}
	if h.bmc != nil {
		h.bmc.close()
	}
}

func (h *simHost) info() HostInfo {
	hi := HostInfo{Index: h.idx, UUID: h.uuid, Name: h.name, Address: h.address, Pool: h.pool.uuid}
	if h.srv != nil {
		hi.URL = "http://" + h.srv.addr
	}
	if h.bmc != nil {
		hi.BMCURL = h.bmc.url
	}
	return hi
}

func (hs *hostServer) up(s *Sim) error {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.srv != nil {
		return nil
	}
	ln, err := listenOn(hs.addr)
	if err != nil {
		return fmt.Errorf("xapisim: listen %s: %w", hs.addr, err)
	}
	hs.addr = ln.Addr().String()
	hs.ln = ln
	hs.srv = &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hs.serve(s, w, r) }),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go hs.srv.Serve(ln)
	return nil
}

func (hs *hostServer) down() {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.srv != nil {
		// Close the listener ourselves: Server.Close only closes listeners
		// its Serve goroutine has started tracking, and a host may be
		// powered off before that goroutine runs.
		hs.ln.Close()
		hs.srv.Close()
		hs.srv, hs.ln = nil, nil
	}
}

// serve applies the network faults, then speaks JSON-RPC at /jsonrpc and
// XML-RPC at / (and /RPC2), as xapi does.
func (hs *hostServer) serve(s *Sim, w http.ResponseWriter, r *http.Request) {
	if !s.enterRequest() {
		panic(http.ErrAbortHandler)
	}
	defer s.leaveRequest()
	h := hs.host
	s.mu.Lock()
	// A hung xapi, a host the bridge cannot reach, and a powered-off host
	// (unless it refuses) all accept and never answer.
	hang, slow := h.hang || h.bridgeCut || !h.powered && !h.refuseDown, h.slow
	s.mu.Unlock()
	if hang {
		s.silent(r)
	}
	if slow > 0 {
		t := time.NewTimer(slow)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-s.done:
			t.Stop()
			panic(http.ErrAbortHandler)
		}
	}
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody))
	if err != nil {
		return
	}
	switch r.URL.Path {
	case "/jsonrpc":
		hs.serveJSON(s, w, r, body)
	case "/", "/RPC2":
		hs.serveXML(s, w, r, body)
	default:
		http.NotFound(w, r)
	}
}

// internalError is what xapi sends for a body it cannot parse.
func internalError(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusInternalServerError)
	io.WriteString(w, "<html><body><h1>HTTP 500 internal server error</h1>An unexpected error occurred; please wait a while and try again.</body></html>")
}

type jsonRequest struct {
	JSONRPC string          `json:"jsonrpc"`
	Method  string          `json:"method"`
	Params  []any           `json:"params"`
	ID      json.RawMessage `json:"id"`
}

func (hs *hostServer) serveJSON(s *Sim, w http.ResponseWriter, r *http.Request, body []byte) {
	var req jsonRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil || req.Method == "" {
		internalError(w)
		return
	}
	if req.ID == nil {
		req.ID = json.RawMessage("null")
	}
	res, apiErr := s.handle(r.Context(), hs.host, req.Method, req.Params)
	if !s.finish(r, apiErr) {
		return
	}
	var resp any
	switch {
	case apiErr != nil && apiErr.preDispatch:
		// Raised before dispatch: a bare array and id 0, whatever was sent.
		resp = map[string]any{"jsonrpc": "2.0", "error": append([]string{apiErr.code}, apiErr.params...), "id": 0}
	case req.JSONRPC != "2.0" && apiErr != nil:
		resp = map[string]any{"result": nil, "error": append([]string{apiErr.code}, apiErr.params...), "id": req.ID}
	case req.JSONRPC != "2.0":
		resp = map[string]any{"result": res, "error": nil, "id": req.ID}
	case apiErr != nil:
		resp = map[string]any{"jsonrpc": "2.0", "error": map[string]any{"code": 1, "message": apiErr.code, "data": apiErr.params}, "id": req.ID}
	default:
		resp = map[string]any{"jsonrpc": "2.0", "result": res, "id": req.ID}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

func (hs *hostServer) serveXML(s *Sim, w http.ResponseWriter, r *http.Request, body []byte) {
	method, params, err := xmlrpc.DecodeCall(bytes.NewReader(body))
	if err != nil {
		internalError(w)
		return
	}
	res, apiErr := s.handle(r.Context(), hs.host, method, params)
	if !s.finish(r, apiErr) {
		return
	}
	var v map[string]any
	if apiErr != nil {
		desc := append([]string{apiErr.code}, apiErr.params...)
		v = map[string]any{"Status": "Failure", "ErrorDescription": desc}
	} else {
		if res == nil {
			res = ""
		}
		v = map[string]any{"Status": "Success", "Value": res}
	}
	w.Header().Set("Content-Type", "text/xml")
	xmlrpc.EncodeResponse(w, v)
}

// finish handles the answers that are not answers: a host whose xapi
// restarted under the request drops the connection, one that lost power
// goes silent (or drops it, when it refuses while down); an authentication
// failure is delayed.
func (s *Sim) finish(r *http.Request, e *apiError) bool {
	switch e {
	case errHostGone:
		panic(http.ErrAbortHandler)
	case errHostSilent:
		s.silent(r)
	}
	if e != nil && e.delay > 0 {
		t := time.NewTimer(e.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return false
		case <-s.done:
			panic(http.ErrAbortHandler)
		}
	}
	return true
}

// silent is an address that accepted the connection and never answers:
// only the caller's deadline, or Close, ends it; then the connection is
// dropped without a response. The body is read first, as a kernel would
// have buffered it, and because net/http only notices that the caller hung
// up (and cancels the request's context) once the body is consumed.
func (s *Sim) silent(r *http.Request) {
	io.Copy(io.Discard, io.LimitReader(r.Body, maxRequestBody))
	select {
	case <-r.Context().Done():
	case <-s.done:
	}
	panic(http.ErrAbortHandler)
}
