package redfish

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeBMC is a scripted Redfish service for the cases that neither the
// simulator nor sushy-emulator produce: BMC quirks and hostile answers.
type fakeBMC struct {
	mu         sync.Mutex
	user, pass string
	systems    []string // member ids of /redfish/v1/Systems (default "1")
	power      string   // PowerState served for every system
	noActions  bool     // the system resource names no reset target
	target     string   // the reset target named (default the standard one)
	offStatus  int      // status answered to ForceOff (default 204)
	offBody    string   // body of that answer
	powerAfter string   // PowerState after an accepted ForceOff (default "Off")
	resource   string   // when set, served as the system resource verbatim
	posts      []string // "path body" of each POST
	gets       int
}

func newFakeBMC() *fakeBMC {
	return &fakeBMC{user: "fence", pass: "s3cret-Pa55", systems: []string{"1"}, power: "On"}
}

func (f *fakeBMC) start(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv
}

func (f *fakeBMC) startTLS(t *testing.T) *httptest.Server {
	srv := httptest.NewUnstartedServer(f)
	// Refused handshakes are the point of the TLS tests: keep them quiet.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func (f *fakeBMC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, p, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(f.user)) != 1 ||
		subtle.ConstantTimeCompare([]byte(p), []byte(f.pass)) != 1 {
		w.Header().Set("WWW-Authenticate", `Basic realm="fake"`)
		writeErr(w, http.StatusUnauthorized, "Base.1.8.InsufficientPrivilege", "bad credentials")
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	if r.Method == http.MethodGet {
		f.gets++
		switch {
		case path == "/redfish/v1/Systems":
			var members []map[string]string
			for _, id := range f.systems {
				members = append(members, map[string]string{"@odata.id": "/redfish/v1/Systems/" + id})
			}
			writeJSONBody(w, map[string]any{"Members": members, "Members@odata.count": len(members)})
			return
		case strings.HasPrefix(path, "/redfish/v1/Systems/"):
			id := strings.TrimPrefix(path, "/redfish/v1/Systems/")
			if !f.has(id) {
				writeErr(w, http.StatusNotFound, "Base.1.8.ResourceMissingAtURI", "no such system")
				return
			}
			if f.resource != "" {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, f.resource)
				return
			}
			res := map[string]any{"@odata.id": path, "Id": id, "PowerState": f.power}
			if !f.noActions {
				target := f.target
				if target == "" {
					target = path + "/Actions/ComputerSystem.Reset"
				}
				res["Actions"] = map[string]any{"#ComputerSystem.Reset": map[string]any{"target": target}}
			}
			writeJSONBody(w, res)
			return
		}
	}
	if r.Method == http.MethodPost && strings.HasSuffix(path, "ComputerSystem.Reset") {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		f.posts = append(f.posts, path+" "+string(body))
		status := f.offStatus
		if status == 0 {
			status = http.StatusNoContent
		}
		if status >= 200 && status < 300 {
			f.power = f.powerAfter
			if f.power == "" {
				f.power = "Off"
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, f.offBody)
		return
	}
	writeErr(w, http.StatusNotFound, "Base.1.8.ResourceMissingAtURI", "no such resource")
}

func (f *fakeBMC) has(id string) bool {
	for _, s := range f.systems {
		if s == id {
			return true
		}
	}
	return false
}

func (f *fakeBMC) postLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.posts...)
}

func (f *fakeBMC) set(fn func(f *fakeBMC)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

func writeJSONBody(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
