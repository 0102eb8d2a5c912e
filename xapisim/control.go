package xapisim

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"
)

// controlServer is the HTTP face of the fault API, for tests in other
// languages and for demos (curl -X POST .../hosts/0/power-off).
type controlServer struct {
	url string
	srv *http.Server
	ln  net.Listener
}

func newControlServer(s *Sim) (*controlServer, error) {
	addr := s.cfg.ControlAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.State()) })
	mux.HandleFunc("GET /info", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Info()) })
	mux.HandleFunc("POST /hosts/{id}/{action}", s.controlHost)
	mux.HandleFunc("POST /links/{a}/{b}/{action}", s.controlLink)
	mux.HandleFunc("POST /vms", s.controlAddVM)
	mux.HandleFunc("DELETE /vms/{uuid}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, s.RemoveVM(r.PathValue("uuid")))
	})
	mux.HandleFunc("POST /vms/{uuid}/{action}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("action") {
		case "protect":
			reply(w, s.ProtectVM(r.PathValue("uuid"), true))
		case "unprotect":
			reply(w, s.ProtectVM(r.PathValue("uuid"), false))
		default:
			http.Error(w, "unknown action; want protect or unprotect", http.StatusNotFound)
		}
	})
	mux.HandleFunc("POST /master-connection-retry-timeout", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("timeout"))
		if err != nil {
			http.Error(w, "timeout: want a duration such as 120s (0 or negative: never)", http.StatusBadRequest)
			return
		}
		s.SetMasterConnectionRetryTimeout(d)
		reply(w, nil)
	})
	mux.HandleFunc("POST /clock/advance", func(w http.ResponseWriter, r *http.Request) {
		fc, ok := s.clock.(*FakeClock)
		if !ok {
			http.Error(w, "the simulator runs on the real clock", http.StatusConflict)
			return
		}
		d, err := time.ParseDuration(r.URL.Query().Get("by"))
		if err != nil || d < 0 {
			http.Error(w, "by: want a positive duration such as 30s", http.StatusBadRequest)
			return
		}
		fc.Advance(d)
		writeJSON(w, map[string]any{"now": fc.Now()})
	})
	c := &controlServer{url: "http://" + ln.Addr().String(), ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go c.srv.Serve(ln)
	return c, nil
}

func (c *controlServer) close() { c.ln.Close(); c.srv.Close() }

func reply(w http.ResponseWriter, err error) {
	if err != nil {
		status := http.StatusConflict
		if errors.Is(err, ErrNoSuchHost) {
			status = http.StatusNotFound
		}
		http.Error(w, err.Error(), status)
		return
	}
	writeJSON(w, map[string]string{"status": "ok"})
}

// hostActions maps /hosts/{id}/{action} to the fault API.
var hostActions = map[string]func(s *Sim, i int, r *http.Request) error{
	"power-off":       func(s *Sim, i int, _ *http.Request) error { return s.PowerOff(i) },
	"power-loss":      func(s *Sim, i int, _ *http.Request) error { return s.PowerLoss(i) },
	"power-on":        func(s *Sim, i int, _ *http.Request) error { return s.PowerOn(i) },
	"reboot":          func(s *Sim, i int, _ *http.Request) error { return s.Reboot(i) },
	"cut-bridge":      func(s *Sim, i int, _ *http.Request) error { return s.CutBridge(i, true) },
	"restore-bridge":  func(s *Sim, i int, _ *http.Request) error { return s.CutBridge(i, false) },
	"isolate":         func(s *Sim, i int, _ *http.Request) error { return s.Isolate(i) },
	"reconnect":       func(s *Sim, i int, _ *http.Request) error { return s.Reconnect(i) },
	"cut-storage":     func(s *Sim, i int, _ *http.Request) error { return s.CutStorage(i, true) },
	"restore-storage": func(s *Sim, i int, _ *http.Request) error { return s.CutStorage(i, false) },
	"hang":            func(s *Sim, i int, _ *http.Request) error { return s.HangXAPI(i, true) },
	"unhang":          func(s *Sim, i int, _ *http.Request) error { return s.HangXAPI(i, false) },
	"bmc-down":        func(s *Sim, i int, _ *http.Request) error { return s.BMCDown(i, true) },
	"bmc-up":          func(s *Sim, i int, _ *http.Request) error { return s.BMCDown(i, false) },
	"designate":       func(s *Sim, i int, _ *http.Request) error { return s.Designate(i) },
	"disable-ha":      func(s *Sim, i int, _ *http.Request) error { return s.DisableHA(i) },

	"restart-toolstack": func(s *Sim, i int, _ *http.Request) error { return s.RestartToolstack(i) },
	"refuse-when-down":  func(s *Sim, i int, _ *http.Request) error { return s.SetRefuseWhenDown(i, true) },
	"silent-when-down":  func(s *Sim, i int, _ *http.Request) error { return s.SetRefuseWhenDown(i, false) },
	"slow": func(s *Sim, i int, r *http.Request) error {
		d, err := time.ParseDuration(r.URL.Query().Get("delay"))
		if err != nil {
			return errors.New("delay: want a duration such as 2s")
		}
		return s.SlowXAPI(i, d)
	},
	"enable-ha": func(s *Sim, i int, r *http.Request) error {
		T := 60 * time.Second
		if v := r.URL.Query().Get("timeout"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return errors.New("timeout: want a duration such as 60s")
			}
			T = d
		}
		return s.EnableHA(i, T)
	},
}

func (s *Sim) controlHost(w http.ResponseWriter, r *http.Request) {
	act, ok := hostActions[r.PathValue("action")]
	if !ok {
		http.Error(w, "unknown action "+strconv.Quote(r.PathValue("action")), http.StatusNotFound)
		return
	}
	i, err := s.HostIndex(r.PathValue("id"))
	if err != nil {
		reply(w, err)
		return
	}
	reply(w, act(s, i, r))
}

func (s *Sim) controlLink(w http.ResponseWriter, r *http.Request) {
	a, err := s.HostIndex(r.PathValue("a"))
	if err != nil {
		reply(w, err)
		return
	}
	b, err := s.HostIndex(r.PathValue("b"))
	if err != nil {
		reply(w, err)
		return
	}
	switch r.PathValue("action") {
	case "cut":
		reply(w, s.CutLink(a, b, true))
	case "restore":
		reply(w, s.CutLink(a, b, false))
	default:
		http.Error(w, "unknown action; want cut or restore", http.StatusNotFound)
	}
}

func (s *Sim) controlAddVM(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Host      string `json:"host"`
		Name      string `json:"name"`
		Protected bool   `json:"protected"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	i, err := s.HostIndex(req.Host)
	if err != nil {
		reply(w, err)
		return
	}
	uuid, err := s.AddVM(i, req.Name, req.Protected)
	if err != nil {
		reply(w, err)
		return
	}
	writeJSON(w, map[string]string{"uuid": uuid})
}
