package xapisim

import (
	"crypto/subtle"
	"encoding/json"
	"net"
	"net/http"
	"strings"
)

// bmcServer is a host's Redfish-style BMC: its own address and power, so it
// answers while the host is off, and a power-off through it really cuts the
// simulated host's power. A power loss takes it down with the host.
type bmcServer struct {
	url string
	srv *http.Server
	ln  net.Listener
}

const redfishSystem = "/redfish/v1/Systems/1"

func newBMCServer(s *Sim, h *simHost) (*bmcServer, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(h.bmcIP, "0"))
	if err != nil {
		return nil, err
	}
	b := &bmcServer{url: "http://" + ln.Addr().String(), ln: ln}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { b.serve(s, h, w, r) })}
	go b.srv.Serve(ln)
	return b, nil
}

func (b *bmcServer) close() { b.ln.Close(); b.srv.Close() }

func redfishError(w http.ResponseWriter, code int, msgID, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": "Base.1.8." + msgID, "message": msg,
	}})
}

func (b *bmcServer) serve(s *Sim, h *simHost, w http.ResponseWriter, r *http.Request) {
	if !s.enterRequest() {
		panic(http.ErrAbortHandler)
	}
	defer s.leaveRequest()
	s.mu.Lock()
	down := h.bmcDown
	s.mu.Unlock()
	if down { // gone with its host: never answers
		s.silent(r)
	}
	user, pw, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(s.cfg.BMCUsername)) != 1 ||
		subtle.ConstantTimeCompare([]byte(pw), []byte(s.cfg.BMCPassword)) != 1 {
		redfishError(w, http.StatusUnauthorized, "InsufficientPrivilege", "authentication required")
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case r.Method == http.MethodGet && path == "/redfish/v1":
		writeJSON(w, map[string]any{"@odata.id": "/redfish/v1", "Id": "RootService", "RedfishVersion": "1.11.0",
			"Systems": map[string]string{"@odata.id": "/redfish/v1/Systems"}})
	case r.Method == http.MethodGet && path == "/redfish/v1/Systems":
		writeJSON(w, map[string]any{"@odata.id": "/redfish/v1/Systems", "Members@odata.count": 1,
			"Members": []map[string]string{{"@odata.id": redfishSystem}}})
	case r.Method == http.MethodGet && path == redfishSystem:
		s.mu.Lock()
		state := "Off"
		if h.powered || h.rebootStop != nil { // a warm reboot keeps the chassis powered
			state = "On"
		}
		uuid, name := h.uuid, h.name
		s.mu.Unlock()
		writeJSON(w, map[string]any{"@odata.id": redfishSystem, "Id": "1", "Name": name, "UUID": uuid,
			"PowerState": state,
			"Actions": map[string]any{"#ComputerSystem.Reset": map[string]any{
				"target":                            redfishSystem + "/Actions/ComputerSystem.Reset",
				"ResetType@Redfish.AllowableValues": []string{"On", "ForceOff", "GracefulShutdown", "ForceRestart"},
			}}})
	case r.Method == http.MethodPost && path == redfishSystem+"/Actions/ComputerSystem.Reset":
		var req struct{ ResetType string }
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
			redfishError(w, http.StatusBadRequest, "MalformedJSON", "request body is not valid JSON")
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		rec := s.auditStart(h, "bmc:"+req.ResetType, nil)
		var auditErr *apiError
		defer func() { s.auditEnd(rec, h, auditErr) }()
		switch req.ResetType {
		case "ForceOff", "GracefulShutdown":
			if !h.powered && h.rebootStop == nil {
				// Many BMCs refuse to power off what is off (CloudStack #13377).
				auditErr = fail("ALREADY_OFF")
				redfishError(w, http.StatusConflict, "ActionNotSupported", "system is already powered off")
				return
			}
			s.powerOffLocked(h)
		case "On":
			if h.powered || h.rebootStop != nil {
				redfishError(w, http.StatusConflict, "ActionNotSupported", "system is already powered on")
				return
			}
			s.powerOnLocked(h)
		case "ForceRestart":
			s.rebootLocked(h, "BMC ForceRestart")
		default:
			redfishError(w, http.StatusBadRequest, "ActionParameterValueNotInList", "unsupported ResetType")
			return
		}
		s.settle(h.pool)
		w.WriteHeader(http.StatusNoContent)
	default:
		redfishError(w, http.StatusNotFound, "ResourceMissingAtURI", "no such resource")
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
