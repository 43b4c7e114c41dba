package consul

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/ports"
)

// testTTL is the short check TTL of the registration tests.
const testTTL = 300 * time.Millisecond

func TestRegisterSendsRegistration(t *testing.T) {
	f := newFakeAgent(t, false)
	c := newTestConsul(t, f, Config{TTL: testTTL})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Register(ctx, testRegistration()); err != nil {
		t.Fatal(err)
	}
	reg := f.lastRegistration()
	want := map[string]any{
		"ID": "node-a", "Name": "mycorrizal", "Address": "127.0.0.9", "Port": float64(7009),
		"Tags": []any{"gossip"}, "Meta": map[string]any{"version": "1"},
	}
	for k, v := range want {
		if !reflect.DeepEqual(reg[k], v) {
			t.Errorf("registration %s = %#v, want %#v", k, reg[k], v)
		}
	}
	check, _ := reg["Check"].(map[string]any)
	wantCheck := map[string]any{
		"CheckID": "service:node-a", "TTL": "300ms", "Status": "passing", "DeregisterCriticalServiceAfter": "1m0s",
	}
	for k, v := range wantCheck {
		if check[k] != v {
			t.Errorf("registration Check.%s = %#v, want %#v", k, check[k], v)
		}
	}
	// The check was passed right after the registration.
	seen := f.seen()
	if len(seen) < 2 || seen[0].Path != "/v1/agent/service/register" || seen[1].Path != "/v1/agent/check/update/service:node-a" {
		t.Errorf("requests %v, want register then check update", seen)
	}
	if !seen[0].Query.Has("replace-existing-checks") {
		t.Errorf("registration without replace-existing-checks: %v", seen[0].Query)
	}
	if got := discoverNow(t, c); !slices.Equal(got, []string{"127.0.0.9:7009"}) {
		t.Errorf("Discover after Register = %v", got)
	}
}

// TestTTLKeptPassing registers with a 300ms TTL and checks that the check
// stays passing over several TTLs, then that Deregister stops the updates
// and removes the instance.
func TestTTLKeptPassing(t *testing.T) {
	f := newFakeAgent(t, false)
	c := newTestConsul(t, f, Config{TTL: testTTL})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Register(ctx, testRegistration()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for time.Since(start) < 5*testTTL {
		if s := f.checkStatus("service:node-a"); s != "passing" {
			t.Fatalf("check %q after %v", s, time.Since(start))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if h := f.statusHistory("service:node-a"); !slices.Equal(h, []string{"passing"}) {
		t.Errorf("check went through %v, want passing throughout", h)
	}
	updates := f.count("/v1/agent/check/update/")
	t.Logf("%d TTL updates in %v (TTL %v)", updates, 5*testTTL, testTTL)
	if updates < 10 {
		t.Errorf("%d TTL updates in 5 TTLs, want about 15 (every TTL/3)", updates)
	}
	if err := c.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	if f.hasService("node-a") {
		t.Error("the service is still registered after Deregister")
	}
	after := f.count("/v1/agent/check/update/")
	time.Sleep(2 * testTTL)
	if n := f.count("/v1/agent/check/update/"); n != after {
		t.Errorf("%d TTL updates after Deregister", n-after)
	}
	if err := c.Deregister(ctx); err != nil {
		t.Errorf("second Deregister: %v", err)
	}
}

// TestCheckGoesCriticalWhenUpdaterStops makes the agent refuse the
// deregistration: Deregister reports it, the updater is stopped anyway,
// so the check turns critical after its TTL and the instance is no longer
// discovered; a later Deregister retries and succeeds.
func TestCheckGoesCriticalWhenUpdaterStops(t *testing.T) {
	f := newFakeAgent(t, false)
	c := newTestConsul(t, f, Config{TTL: testTTL})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Register(ctx, testRegistration()); err != nil {
		t.Fatal(err)
	}
	f.fail("deregister", http.StatusInternalServerError)
	if err := c.Deregister(ctx); err == nil {
		t.Fatal("Deregister succeeded against a failing agent")
	} else {
		t.Log(err)
	}
	stopped := time.Now()
	eventually(t, 3*testTTL, "the check turning critical", func() bool {
		return f.checkStatus("service:node-a") == "critical"
	})
	t.Logf("check critical %v after the updater stopped (TTL %v)", time.Since(stopped).Round(time.Millisecond), testTTL)
	if got := discoverNow(t, c); len(got) != 0 {
		t.Errorf("Discover = %v with the only check critical", got)
	}
	f.fail("deregister", 0)
	if err := c.Deregister(ctx); err != nil {
		t.Fatalf("retried Deregister: %v", err)
	}
	if f.hasService("node-a") {
		t.Error("the service is still registered")
	}
	if err := c.Deregister(ctx); err != nil {
		t.Errorf("third Deregister: %v", err)
	}
}

// TestUpdaterWarnsAndRecovers makes the agent refuse TTL updates for a
// while: the updater warns, keeps trying, and the check passes again once
// the agent accepts updates.
func TestUpdaterWarnsAndRecovers(t *testing.T) {
	f := newFakeAgent(t, false)
	logger, logs := newLogger(t)
	c := newTestConsul(t, f, Config{TTL: testTTL, Logger: logger})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Register(ctx, testRegistration()); err != nil {
		t.Fatal(err)
	}
	f.fail("update", http.StatusInternalServerError)
	eventually(t, 3*testTTL, "the check turning critical", func() bool {
		return f.checkStatus("service:node-a") == "critical"
	})
	if n := logs.countLines("level=WARN", "could not pass the TTL check"); n < 2 {
		t.Errorf("%d warnings about failed updates, want one per attempt", n)
	}
	f.fail("update", 0)
	eventually(t, 3*testTTL, "the check passing again", func() bool {
		return f.checkStatus("service:node-a") == "passing"
	})
	eventually(t, time.Second, "a recovery log", func() bool {
		return logs.countLines("level=INFO", "passing again") == 1
	})
	if got := discoverNow(t, c); !slices.Equal(got, []string{"127.0.0.9:7009"}) {
		t.Errorf("Discover after recovery = %v", got)
	}
}

// TestUpdaterRegistersAgain removes the registration behind the adapter's
// back (Consul reaped it): the updater registers it again.
func TestUpdaterRegistersAgain(t *testing.T) {
	f := newFakeAgent(t, false)
	logger, logs := newLogger(t)
	c := newTestConsul(t, f, Config{TTL: testTTL, Logger: logger})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Register(ctx, testRegistration()); err != nil {
		t.Fatal(err)
	}
	f.remove("node-a")
	eventually(t, 3*testTTL, "the registration coming back", func() bool {
		return f.hasService("node-a") && f.checkStatus("service:node-a") == "passing"
	})
	if n := logs.countLines("level=WARN", "lost the registration"); n != 1 {
		t.Errorf("%d warnings about the lost registration, want 1", n)
	}
	if got := discoverNow(t, c); !slices.Equal(got, []string{"127.0.0.9:7009"}) {
		t.Errorf("Discover = %v", got)
	}
}

func TestRegisterErrors(t *testing.T) {
	f := newFakeAgent(t, false)
	c := newTestConsul(t, f, Config{TTL: testTTL})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, reg := range []ports.Registration{
		{ID: "", Addr: "127.0.0.1", Port: 7000},
		{ID: "a/b", Addr: "127.0.0.1", Port: 7000},
		{ID: "n", Addr: "127.0.0.1", Port: 0},
		{ID: "n", Addr: "127.0.0.1", Port: 65536},
		{ID: "n", Addr: "not an address", Port: 7000},
	} {
		if err := c.Register(ctx, reg); !errors.Is(err, ports.ErrInvalidConfig) {
			t.Errorf("Register(%+v) = %v, want ErrInvalidConfig", reg, err)
		}
	}
	if n := len(f.seen()); n != 0 {
		t.Errorf("invalid registrations reached the agent: %d requests", n)
	}

	if err := c.Register(ctx, testRegistration()); err != nil {
		t.Fatal(err)
	}
	if err := c.Register(ctx, testRegistration()); !errors.Is(err, ErrAlreadyRegistered) {
		t.Errorf("second Register = %v, want ErrAlreadyRegistered", err)
	}
	if err := c.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	// Registering again after Deregister works.
	if err := c.Register(ctx, testRegistration()); err != nil {
		t.Fatalf("Register after Deregister: %v", err)
	}
	if err := c.Deregister(ctx); err != nil {
		t.Fatal(err)
	}

	// A refused registration leaves nothing running.
	f.fail("register", http.StatusForbidden)
	if err := c.Register(ctx, testRegistration()); err == nil {
		t.Error("Register succeeded against a refusing agent")
	} else {
		t.Log(err)
	}
	f.fail("register", 0)

	// A registration whose check cannot be passed is removed again.
	f.fail("update", http.StatusForbidden)
	if err := c.Register(ctx, testRegistration()); err == nil {
		t.Error("Register succeeded although its check could not be passed")
	} else {
		t.Log(err)
	}
	if f.hasService("node-a") {
		t.Error("the registration whose check could not be passed was left behind")
	}
	f.fail("update", 0)
	c.regMu.Lock()
	if c.reg != nil {
		t.Error("a failed Register left a registration behind")
	}
	c.regMu.Unlock()

	// A cancelled ctx fails Register at once.
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if err := c.Register(cctx, testRegistration()); !errors.Is(err, context.Canceled) {
		t.Errorf("Register with a cancelled ctx = %v", err)
	}
}
