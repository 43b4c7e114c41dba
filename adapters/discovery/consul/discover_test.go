package consul

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDiscoverAddresses(t *testing.T) {
	f := newFakeAgent(t, false)
	c := newTestConsul(t, f, Config{})
	f.add(&fakeService{ID: "a", Name: "mycorrizal", Address: "10.0.0.1", Port: 7001, Node: "n1", NodeAddr: "192.168.0.1"})
	// No service address: the node's address is used.
	f.add(&fakeService{ID: "b", Name: "mycorrizal", Port: 7002, Node: "n2", NodeAddr: "192.168.0.2"})
	// Two registrations of one address count once.
	f.add(&fakeService{ID: "c1", Name: "mycorrizal", Address: "10.0.0.3", Port: 7003, Node: "n3", NodeAddr: "192.168.0.3"})
	f.add(&fakeService{ID: "c2", Name: "mycorrizal", Address: "10.0.0.3", Port: 7003, Node: "n4", NodeAddr: "192.168.0.4"})
	// IPv6 and host names.
	f.add(&fakeService{ID: "d", Name: "mycorrizal", Address: "fd00::4", Port: 7004})
	f.add(&fakeService{ID: "e", Name: "mycorrizal", Address: "node-e.example.internal", Port: 7005})
	// Another service and a failing check are not peers.
	f.add(&fakeService{ID: "x", Name: "other", Address: "10.0.0.9", Port: 7009})
	f.add(&fakeService{ID: "y", Name: "mycorrizal", Address: "10.0.0.8", Port: 7008,
		Checks: []*fakeCheck{{ID: "service:y", Status: "critical"}}})
	want := normalize([]string{"10.0.0.1:7001", "192.168.0.2:7002", "10.0.0.3:7003", "[fd00::4]:7004", "node-e.example.internal:7005"})
	if got := discoverNow(t, c); !slices.Equal(got, want) {
		t.Fatalf("Discover = %v, want %v", got, want)
	}
	for _, r := range f.seen() {
		if r.Path == "/v1/health/service/mycorrizal" && !r.Query.Has("passing") {
			t.Errorf("health query without passing: %v", r.Query)
		}
		if r.Query.Has("index") || r.Query.Has("wait") {
			t.Errorf("Discover sent a blocking query: %v", r.Query)
		}
	}
}

func TestDiscoverTagFilter(t *testing.T) {
	f := newFakeAgent(t, false)
	c := newTestConsul(t, f, Config{Tags: []string{"blue", "v2"}})
	f.add(&fakeService{ID: "a", Name: "mycorrizal", Address: "10.0.0.1", Port: 7001, Tags: []string{"blue", "v2", "x"}})
	f.add(&fakeService{ID: "b", Name: "mycorrizal", Address: "10.0.0.2", Port: 7002, Tags: []string{"blue"}})
	f.add(&fakeService{ID: "c", Name: "mycorrizal", Address: "10.0.0.3", Port: 7003})
	if got := discoverNow(t, c); !slices.Equal(got, []string{"10.0.0.1:7001"}) {
		t.Fatalf("Discover = %v, want only the instance with both tags", got)
	}
}

// TestDiscoverSkipsGarbageEntries answers with entries whose fields are
// unusable: they are skipped with one warning each, never a panic, and the
// good entries still come through.
func TestDiscoverSkipsGarbageEntries(t *testing.T) {
	f := newFakeAgent(t, false)
	logger, logs := newLogger(t)
	c := newTestConsul(t, f, Config{Logger: logger})
	entry := func(id, addr, nodeAddr string, port int) string {
		return fmt.Sprintf(`{"Node":{"Node":"node-%s","Address":%q},"Service":{"ID":%q,"Service":"mycorrizal","Address":%q,"Port":%d},"Checks":[]}`,
			id, nodeAddr, id, addr, port)
	}
	body := "[" + strings.Join([]string{
		entry("good", "10.0.0.1", "10.0.0.1", 7001),
		entry("port-zero", "10.0.0.2", "", 0),
		entry("port-negative", "10.0.0.3", "", -5),
		entry("port-huge", "10.0.0.4", "", 70000),
		entry("no-address", "", "", 7005),
		entry("junk-address", "not an address!", "", 7006),
		entry("address-with-port", "10.0.0.7:80", "", 7007),
		entry("any-address", "0.0.0.0", "", 7008),
		entry("node-fallback", "", "10.0.0.9", 7009),
		`null`,
		`{"Node":null,"Service":null,"Checks":null}`,
		`{"Node":null,"Service":{"ID":"no-node","Port":7010},"Checks":null}`,
	}, ",") + "]"
	f.setHealthHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Consul-Index", "42")
		_, _ = w.Write([]byte(body))
	})
	want := []string{"10.0.0.1:7001", "10.0.0.9:7009"}
	if got := discoverNow(t, c); !slices.Equal(got, want) {
		t.Fatalf("Discover = %v, want %v", got, want)
	}
	for _, id := range []string{"port-zero", "port-negative", "port-huge", "no-address", "junk-address", "address-with-port", "any-address", "no-node"} {
		if n := logs.countLines("level=WARN", "service_id=\\\""+id+"\\\""); n != 1 {
			t.Errorf("%d warnings name entry %q, want 1", n, id)
		}
	}
	if n := logs.countLines("level=WARN", "null entry"); n != 1 {
		t.Errorf("%d warnings for the null entry, want 1", n)
	}
	if idx, _ := c.last(); idx != 42 {
		t.Errorf("stored index %d, want 42", idx)
	}
	// The same bad entries again are logged at DEBUG, not WARN.
	warns := logs.countLines("level=WARN")
	discoverNow(t, c)
	if n := logs.countLines("level=WARN"); n != warns {
		t.Errorf("a second Discover added %d warnings for the same entries", n-warns)
	}
}

// TestDiscoverMalformedAnswers answers with bodies and statuses that do not
// decode: each is a clear error, never a panic.
func TestDiscoverMalformedAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"wrong type for Port", 200, `[{"Node":{"Node":"n","Address":"10.0.0.1"},"Service":{"ID":"a","Port":"7001"}}]`, "cannot unmarshal"},
		{"wrong type for Service", 200, `[{"Service":"10.0.0.1:7001"}]`, "cannot unmarshal"},
		{"object, not array", 200, `{"Service":{"ID":"a","Port":7001}}`, "cannot unmarshal"},
		{"truncated", 200, `[{"Node":{"Node":"n","Addr`, "unexpected EOF"},
		{"not JSON", 200, `<html>proxy error</html>`, "invalid character"},
		{"empty body", 200, ``, "EOF"},
		{"server error", 500, `rpc error: No cluster leader`, "500"},
		{"permission denied", 403, `Permission denied: token lacks service:read`, "403"},
		{"oversized", 200, `[` + strings.Repeat(`{"Service":{"ID":"a","Address":"10.0.0.1","Port":7001}},`, 200) + `null]`, "too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAgent(t, false)
			c := newTestConsul(t, f, Config{})
			c.http.Transport.(*limitTransport).max = 4096
			f.setHealthHandler(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Consul-Index", "7")
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			addrs, err := c.Discover(ctx)
			if err == nil {
				t.Fatalf("Discover = %v, want an error", addrs)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `service "mycorrizal"`) {
				t.Fatalf("error %q does not say %q and name the service", err, tc.want)
			}
			t.Log(err)
		})
	}
}

// TestDiscoverBadIndexHeader checks that an unparsable X-Consul-Index is
// treated as no index rather than an error or a panic.
func TestDiscoverBadIndexHeader(t *testing.T) {
	f := newFakeAgent(t, false)
	c := newTestConsul(t, f, Config{})
	f.setHealthHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Consul-Index", "not-a-number")
		_, _ = w.Write([]byte(`[{"Node":{"Node":"n","Address":"10.0.0.1"},"Service":{"ID":"a","Port":7001}}]`))
	})
	if got := discoverNow(t, c); !slices.Equal(got, []string{"10.0.0.1:7001"}) {
		t.Fatalf("Discover = %v", got)
	}
}

// TestUnreachableAgent checks that every call fails promptly when nothing
// listens at the agent's address.
func TestUnreachableAgent(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := New(Config{Address: addr, Service: "mycorrizal"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if addrs, err := c.Discover(ctx); err == nil {
		t.Errorf("Discover = %v, want an error", addrs)
	} else {
		t.Logf("Discover: %v", err)
	}
	if addrs, err := c.WaitChange(ctx, nil); err == nil {
		t.Errorf("WaitChange = %v, want an error", addrs)
	} else if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitChange waited for its ctx: %v", err)
	}
	if err := c.Register(ctx, testRegistration()); err == nil {
		t.Error("Register succeeded without an agent")
	} else {
		t.Logf("Register: %v", err)
	}
	if err := c.Deregister(ctx); err != nil {
		t.Errorf("Deregister without a registration: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("failing against an unreachable agent took %v", d)
	}
}

// TestTokenAndDatacenterSent checks that the ACL token goes with every
// request, including the TTL updates, and never into errors.
func TestTokenAndDatacenterSent(t *testing.T) {
	f := newFakeAgent(t, false)
	const token = "3f1c9a7e-secret-acl-token"
	c := newTestConsul(t, f, Config{Token: token, Datacenter: "dc7", TTL: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	discoverNow(t, c)
	if err := c.Register(ctx, testRegistration()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "two TTL updates", func() bool { return f.count("/v1/agent/check/update/") >= 2 })
	if err := c.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, r := range f.seen() {
		kinds[strings.Join(strings.Split(r.Path, "/")[:4], "/")] = true
		if r.Token != token {
			t.Errorf("%s %s sent token %q", r.Method, r.Path, r.Token)
		}
		if strings.HasPrefix(r.Path, "/v1/health/") && r.Query.Get("dc") != "dc7" {
			t.Errorf("%s %s asked dc %q", r.Method, r.Path, r.Query.Get("dc"))
		}
	}
	if len(kinds) != 3 { // /v1/health/service, /v1/agent/service, /v1/agent/check
		t.Errorf("saw only %v", kinds)
	}
	f.fail("*", 403)
	_, err := c.Discover(ctx)
	if err == nil || strings.Contains(err.Error(), token) {
		t.Errorf("Discover against a refusing agent: %v", err)
	}
}
