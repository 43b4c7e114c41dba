package consul

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAgent is an in-process stand-in for a Consul agent's HTTP API. It
// serves exactly the endpoints this adapter calls, with the request and
// response shapes of Consul's HTTP API documentation:
//
//	PUT /v1/agent/service/register           (AgentServiceRegistration body)
//	PUT /v1/agent/service/deregister/:id     (404 for an unknown ID)
//	PUT /v1/agent/check/update/:check_id     ({"Status","Output"} body; 404 for an unknown check)
//	GET /v1/health/service/:service?passing&tag&dc&index&wait
//
// The health endpoint answers a JSON array of {Node, Service, Checks} with
// an X-Consul-Index header, and blocks while the index parameter is at or
// ahead of the current index, until a change or the wait elapses (an index
// ahead of the agent's waits the full time and returns the lower index, as
// a real agent does). A TTL check starts critical unless registered with a
// Status, and turns critical when it is not updated within its TTL.
//
// It records the ACL tokens (X-Consul-Token) and requests it saw, and can
// be made to fail endpoints, to answer health queries with arbitrary
// bytes, or to move its index backwards.
type fakeAgent struct {
	t    testing.TB
	srv  *httptest.Server
	quit chan struct{} // closed by close: ends blocking queries

	mu       sync.Mutex
	index    uint64
	changed  chan struct{} // closed and replaced at every change
	services map[string]*fakeService
	requests []fakeRequest
	failing  map[string]int // endpoint ("health", "register", "deregister", "update" or "*") → status
	health   http.HandlerFunc
	lastReg  map[string]any // the last registration body, decoded generically
	history  map[string][]string
	closed   bool
}

// fakeRequest is one request the fake saw.
type fakeRequest struct {
	Method, Path string
	Query        url.Values
	Token        string
}

// fakeService is a registered service instance.
type fakeService struct {
	ID, Name, Address string
	Port              int
	Tags              []string
	Meta              map[string]string
	Node, NodeAddr    string
	Checks            []*fakeCheck
}

// fakeCheck is a service's health check.
type fakeCheck struct {
	ID, Name, Status, Output string
	TTL                      time.Duration
	timer                    *time.Timer
	gen                      int // bumped when the timer is replaced
}

const (
	fakeNodeName = "fake-node"
	fakeNodeAddr = "127.0.0.1"
)

// newFakeAgent starts a fake agent (over HTTPS with tls) and registers its
// shutdown with t.Cleanup.
func newFakeAgent(t testing.TB, tls bool) *fakeAgent {
	t.Helper()
	// The api reads these; a developer's own settings must not leak in.
	for _, v := range []string{
		"CONSUL_HTTP_ADDR", "CONSUL_HTTP_TOKEN", "CONSUL_HTTP_TOKEN_FILE", "CONSUL_HTTP_AUTH",
		"CONSUL_HTTP_SSL", "CONSUL_HTTP_SSL_VERIFY", "CONSUL_CACERT", "CONSUL_CAPATH",
		"CONSUL_CLIENT_CERT", "CONSUL_CLIENT_KEY", "CONSUL_TLS_SERVER_NAME", "CONSUL_NAMESPACE", "CONSUL_PARTITION",
	} {
		t.Setenv(v, "")
	}
	f := &fakeAgent{
		t:        t,
		quit:     make(chan struct{}),
		index:    10,
		changed:  make(chan struct{}),
		services: make(map[string]*fakeService),
		failing:  make(map[string]int),
		history:  make(map[string][]string),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/agent/service/register", f.serveRegister)
	mux.HandleFunc("/v1/agent/service/deregister/{id}", f.serveDeregister)
	mux.HandleFunc("/v1/agent/check/update/{check}", f.serveCheckUpdate)
	mux.HandleFunc("/v1/health/service/{service}", f.serveHealth)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		f.record(r)
		t.Errorf("fake agent: unexpected request %s %s", r.Method, r.URL)
		http.Error(w, "fake agent: no such endpoint", http.StatusNotFound)
	})
	f.srv = httptest.NewUnstartedServer(mux)
	// Handshake failures are what the TLS tests provoke; keep them quiet.
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tls {
		f.srv.StartTLS()
	} else {
		f.srv.Start()
	}
	t.Cleanup(f.close)
	return f
}

// addr returns the agent's "host:port".
func (f *fakeAgent) addr() string { return f.srv.Listener.Addr().String() }

// close ends blocking queries, stops TTL timers and shuts the server down.
func (f *fakeAgent) close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	close(f.quit)
	for _, s := range f.services {
		stopChecks(s)
	}
	f.mu.Unlock()
	f.srv.Close()
}

// fail makes endpoint ("health", "register", "deregister", "update" or "*"
// for all) answer with status; 0 heals it.
func (f *fakeAgent) fail(endpoint string, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if status == 0 {
		delete(f.failing, endpoint)
	} else {
		f.failing[endpoint] = status
	}
}

// setHealthHandler makes h answer health queries instead of the fake's
// state (nil restores it).
func (f *fakeAgent) setHealthHandler(h http.HandlerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.health = h
}

// setInstances replaces the instances added by earlier calls with one per
// "ip:port", each on a node of its own, with a passing check and no TTL.
func (f *fakeAgent) setInstances(t testing.TB, addrs []string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, s := range f.services {
		if strings.HasPrefix(id, "inst-") {
			stopChecks(s)
			delete(f.services, id)
		}
	}
	for i, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatalf("fake agent: instance %q: %v", a, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			t.Fatalf("fake agent: instance %q: %v", a, err)
		}
		f.addLocked(&fakeService{
			ID: "inst-" + a, Name: "mycorrizal", Address: host, Port: p,
			Node: fmt.Sprintf("node-%d", i), NodeAddr: host,
		})
	}
	f.bumpLocked()
}

// add adds s with a passing check and no TTL.
func (f *fakeAgent) add(s *fakeService) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addLocked(s)
	f.bumpLocked()
}

func (f *fakeAgent) addLocked(s *fakeService) {
	if s.Node == "" {
		s.Node, s.NodeAddr = fakeNodeName, fakeNodeAddr
	}
	if s.Checks == nil {
		s.Checks = []*fakeCheck{{ID: "service:" + s.ID, Name: "direct", Status: "passing"}}
	}
	f.services[s.ID] = s
}

// remove drops the service id as if Consul had reaped it.
func (f *fakeAgent) remove(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.services[id]; ok {
		stopChecks(s)
		delete(f.services, id)
		f.bumpLocked()
	}
}

// rewind moves the index back to idx, as a snapshot restore does.
func (f *fakeAgent) rewind(idx uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index = idx
}

// checkStatus returns the status of check id ("" when unknown).
func (f *fakeAgent) checkStatus(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, c := f.findCheckLocked(id); c != nil {
		return c.Status
	}
	return ""
}

// statusHistory returns the statuses check id went through.
func (f *fakeAgent) statusHistory(id string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.history[id])
}

// hasService reports whether the service id is registered.
func (f *fakeAgent) hasService(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.services[id]
	return ok
}

// seen returns the requests seen so far.
func (f *fakeAgent) seen() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// count returns how many requests to paths starting with prefix were seen.
func (f *fakeAgent) count(prefix string) int {
	n := 0
	for _, r := range f.seen() {
		if strings.HasPrefix(r.Path, prefix) {
			n++
		}
	}
	return n
}

// lastRegistration returns the last registration body.
func (f *fakeAgent) lastRegistration() map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastReg
}

func (f *fakeAgent) record(r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, fakeRequest{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Token: r.Header.Get("X-Consul-Token"),
	})
}

// begin records r and answers it with a failure when endpoint is failing
// or the method is not method; it reports whether the handler goes on.
func (f *fakeAgent) begin(w http.ResponseWriter, r *http.Request, endpoint, method string) bool {
	f.record(r)
	f.mu.Lock()
	status := f.failing[endpoint]
	if status == 0 {
		status = f.failing["*"]
	}
	f.mu.Unlock()
	if status != 0 {
		http.Error(w, "fake agent: failing on purpose", status)
		return false
	}
	if r.Method != method {
		http.Error(w, fmt.Sprintf("method %s not allowed", r.Method), http.StatusMethodNotAllowed)
		return false
	}
	return true
}

func (f *fakeAgent) serveRegister(w http.ResponseWriter, r *http.Request) {
	if !f.begin(w, r, "register", http.MethodPut) {
		return
	}
	body, err := readAll(w, r)
	if err != nil {
		http.Error(w, "Request decode failed: "+err.Error(), http.StatusBadRequest)
		return
	}
	var reg wireRegistration
	var generic map[string]any
	if err := json.Unmarshal(body, &reg); err != nil {
		http.Error(w, "Request decode failed: "+err.Error(), http.StatusBadRequest)
		return
	}
	_ = json.Unmarshal(body, &generic)
	if reg.Name == "" {
		http.Error(w, "Missing service name", http.StatusBadRequest)
		return
	}
	if reg.ID == "" {
		reg.ID = reg.Name
	}
	defs := reg.Checks
	if reg.Check != nil {
		defs = append([]*wireCheckDef{reg.Check}, defs...)
	}
	s := &fakeService{
		ID: reg.ID, Name: reg.Name, Address: reg.Address, Port: reg.Port, Tags: reg.Tags, Meta: reg.Meta,
		Node: fakeNodeName, NodeAddr: fakeNodeAddr, Checks: []*fakeCheck{},
	}
	for i, d := range defs {
		if d.HTTP != "" || d.TCP != "" || d.GRPC != "" || d.Interval != "" || d.TTL == "" {
			http.Error(w, "fake agent: only TTL checks are supported", http.StatusBadRequest)
			return
		}
		ttl, err := time.ParseDuration(d.TTL)
		if err != nil || ttl <= 0 {
			http.Error(w, fmt.Sprintf("Invalid check: TTL %q: %v", d.TTL, err), http.StatusBadRequest)
			return
		}
		if d.DeregisterCriticalServiceAfter != "" {
			if _, err := time.ParseDuration(d.DeregisterCriticalServiceAfter); err != nil {
				http.Error(w, "Invalid DeregisterCriticalServiceAfter: "+err.Error(), http.StatusBadRequest)
				return
			}
		}
		c := &fakeCheck{ID: d.CheckID, Name: d.Name, Status: "critical", TTL: ttl}
		if c.ID == "" {
			c.ID = "service:" + reg.ID
			if len(defs) > 1 {
				c.ID += ":" + strconv.Itoa(i+1)
			}
		}
		switch d.Status {
		case "":
		case "passing", "warning", "critical":
			c.Status = d.Status
		default:
			http.Error(w, "Invalid check status "+strconv.Quote(d.Status), http.StatusBadRequest)
			return
		}
		s.Checks = append(s.Checks, c)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if old, ok := f.services[s.ID]; ok {
		stopChecks(old)
	}
	f.services[s.ID] = s
	for _, c := range s.Checks {
		f.history[c.ID] = append(f.history[c.ID], c.Status)
		f.armLocked(s, c)
	}
	f.lastReg = generic
	f.bumpLocked()
}

func (f *fakeAgent) serveDeregister(w http.ResponseWriter, r *http.Request) {
	if !f.begin(w, r, "deregister", http.MethodPut) {
		return
	}
	id := r.PathValue("id")
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.services[id]
	if !ok {
		http.Error(w, fmt.Sprintf("Unknown service ID %q", id), http.StatusNotFound)
		return
	}
	stopChecks(s)
	delete(f.services, id)
	f.bumpLocked()
}

func (f *fakeAgent) serveCheckUpdate(w http.ResponseWriter, r *http.Request) {
	if !f.begin(w, r, "update", http.MethodPut) {
		return
	}
	id := r.PathValue("check")
	var upd struct{ Status, Output string }
	body, err := readAll(w, r)
	if err == nil {
		err = json.Unmarshal(body, &upd)
	}
	if err != nil {
		http.Error(w, "Request decode failed: "+err.Error(), http.StatusBadRequest)
		return
	}
	switch upd.Status {
	case "passing", "warning", "critical":
	default:
		http.Error(w, "Invalid check status: "+strconv.Quote(upd.Status), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, c := f.findCheckLocked(id)
	if c == nil {
		http.Error(w, fmt.Sprintf("Unknown check ID %q. Ensure that the check ID is passed, not the check name.", id), http.StatusNotFound)
		return
	}
	if c.TTL == 0 {
		http.Error(w, fmt.Sprintf("CheckID %q does not have associated TTL", id), http.StatusInternalServerError)
		return
	}
	c.Output = upd.Output
	f.setStatusLocked(c, upd.Status)
	f.armLocked(s, c)
}

func (f *fakeAgent) serveHealth(w http.ResponseWriter, r *http.Request) {
	if !f.begin(w, r, "health", http.MethodGet) {
		return
	}
	f.mu.Lock()
	override := f.health
	f.mu.Unlock()
	if override != nil {
		override(w, r)
		return
	}
	q := r.URL.Query()
	name := r.PathValue("service")
	passing := q.Has("passing") && q.Get("passing") != "false" && q.Get("passing") != "0"
	tags := q["tag"]
	var minIndex uint64
	if s := q.Get("index"); s != "" {
		var err error
		if minIndex, err = strconv.ParseUint(s, 10, 64); err != nil {
			http.Error(w, "Invalid index", http.StatusBadRequest)
			return
		}
	}
	wait := 5 * time.Minute
	if s := q.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			http.Error(w, "Invalid wait time", http.StatusBadRequest)
			return
		}
		wait = min(d, 10*time.Minute)
	}
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	for {
		f.mu.Lock()
		idx, changed := f.index, f.changed
		if minIndex == 0 || idx > minIndex {
			entries := f.entriesLocked(name, passing, tags)
			f.mu.Unlock()
			writeHealth(w, idx, entries)
			return
		}
		f.mu.Unlock()
		select {
		case <-changed:
		case <-timeout.C:
			f.mu.Lock()
			idx, entries := f.index, f.entriesLocked(name, passing, tags)
			f.mu.Unlock()
			writeHealth(w, idx, entries)
			return
		case <-r.Context().Done():
			return
		case <-f.quit:
			http.Error(w, "agent shutting down", http.StatusServiceUnavailable)
			return
		}
	}
}

// entriesLocked builds the health answer for service name.
func (f *fakeAgent) entriesLocked(name string, passing bool, tags []string) []wireEntry {
	out := []wireEntry{}
	for _, s := range f.services {
		if s.Name != name {
			continue
		}
		if !hasAll(s.Tags, tags) {
			continue
		}
		checks := []wireCheck{{
			Node: s.Node, CheckID: "serfHealth", Name: "Serf Health Status", Status: "passing",
			Output: "Agent alive and reachable", Type: "",
		}}
		healthy := true
		for _, c := range s.Checks {
			checks = append(checks, wireCheck{
				Node: s.Node, CheckID: c.ID, Name: c.Name, Status: c.Status, Output: c.Output,
				ServiceID: s.ID, ServiceName: s.Name, ServiceTags: s.Tags, Type: "ttl",
			})
			healthy = healthy && c.Status == "passing"
		}
		if passing && !healthy {
			continue
		}
		e := wireEntry{
			Node: wireNode{
				ID: "2ae8c3a0-5a86-4a4f-9f3c-0d5e2a6f4b11", Node: s.Node,
				Address: s.NodeAddr, Datacenter: "dc1",
				TaggedAddresses: map[string]string{"lan": s.NodeAddr, "wan": s.NodeAddr},
				Meta:            map[string]string{"consul-network-segment": ""},
			},
			Service: wireService{
				ID: s.ID, Service: s.Name, Tags: s.Tags, Address: s.Address, Meta: s.Meta, Port: s.Port,
				Weights: struct{ Passing, Warning int }{1, 1},
			},
			Checks: checks,
		}
		if e.Service.Tags == nil {
			e.Service.Tags = []string{}
		}
		if s.Address != "" {
			e.Service.TaggedAddresses = map[string]wireServiceAddress{
				"lan_ipv4": {s.Address, s.Port}, "wan_ipv4": {s.Address, s.Port},
			}
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b wireEntry) int {
		return strings.Compare(a.Node.Node+"/"+a.Service.ID, b.Node.Node+"/"+b.Service.ID)
	})
	return out
}

func (f *fakeAgent) findCheckLocked(id string) (*fakeService, *fakeCheck) {
	for _, s := range f.services {
		for _, c := range s.Checks {
			if c.ID == id {
				return s, c
			}
		}
	}
	return nil, nil
}

// setStatusLocked changes c's status; a change moves the index, as it
// does in Consul's catalog.
func (f *fakeAgent) setStatusLocked(c *fakeCheck, status string) {
	if c.Status == status {
		return
	}
	c.Status = status
	f.history[c.ID] = append(f.history[c.ID], status)
	f.bumpLocked()
}

// armLocked (re)starts c's TTL: when it is not updated within it, it
// turns critical.
func (f *fakeAgent) armLocked(s *fakeService, c *fakeCheck) {
	if c.TTL == 0 || f.closed {
		return
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	c.gen++
	gen := c.gen
	c.timer = time.AfterFunc(c.TTL, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if c.gen != gen || f.services[s.ID] != s {
			return
		}
		c.Output = "TTL expired"
		f.setStatusLocked(c, "critical")
	})
}

func (f *fakeAgent) bumpLocked() {
	f.index++
	close(f.changed)
	f.changed = make(chan struct{})
}

func stopChecks(s *fakeService) {
	for _, c := range s.Checks {
		if c.timer != nil {
			c.timer.Stop()
		}
		c.gen++
	}
}

func hasAll(have, want []string) bool {
	for _, t := range want {
		if !slices.Contains(have, t) {
			return false
		}
	}
	return true
}

func readAll(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
}
