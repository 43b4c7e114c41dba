package ca_test

import (
	"context"
	"crypto"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mycorrizal/mycorrizal/adapters/certs/ca"
	"github.com/mycorrizal/mycorrizal/ports"
)

const (
	msgDevCA = "development CA in use; not for production"

	devCAChildEnv = "MYCORRIZAL_CA_TEST_DEVCA_DIR"
	devCAStartEnv = "MYCORRIZAL_CA_TEST_DEVCA_START"
)

func TestDevCA(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "cache", "mycorrizal")
	log, rec := newLogger(t)
	s1, err := ca.DevCA(ca.DevConfig{Dir: dir, NodeID: "n1", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := ca.DevCA(ca.DevConfig{Dir: dir, NodeID: "n2", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if s1.CA().SerialNumber.Cmp(s2.CA().SerialNumber) != 0 {
		t.Fatal("two calls with one Dir use different CAs")
	}
	if n := rec.count(msgDevCA); n != 2 {
		t.Errorf("warning logged %d times for 2 calls", n)
	}
	ca1 := s1.CA()
	if ca1.Subject.CommonName != ca.DevCACommonName || !ca1.IsCA {
		t.Errorf("CA subject %q IsCA %v", ca1.Subject, ca1.IsCA)
	}
	if life := time.Until(ca1.NotAfter); life < 9*365*day || life > 10*365*day+time.Hour {
		t.Errorf("CA valid for %s more, want about 10 years", life)
	}
	// Each node's leaf is trusted by the other.
	verifyLeaf(t, mustCert(t, s1), mustPool(t, s2), "n1", time.Now())
	verifyLeaf(t, mustCert(t, s2), mustPool(t, s1), "n2", time.Now())

	checkDevFiles(t, dir)
}

// checkDevFiles checks dir holds exactly the CA's two files, the key and
// the directory private to the user.
func checkDevFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{ca.DevCAKeyFile, ca.DevCACertFile}) {
		t.Errorf("Dir holds %v, want just %s and %s", names, ca.DevCAKeyFile, ca.DevCACertFile)
	}
	if runtime.GOOS == "windows" {
		return
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, ca.DevCAKeyFile): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %#o, want %#o", path, got, want)
		}
	}
}

func TestDevCAGoroutines(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca") // DevCA creates it
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		serials [10]string
	)
	for i := range serials {
		wg.Go(func() {
			<-start
			s, err := ca.DevCA(ca.DevConfig{Dir: dir, NodeID: "n1"})
			if err != nil {
				t.Errorf("DevCA: %v", err)
				return
			}
			serials[i] = s.CA().SerialNumber.Text(16)
		})
	}
	close(start)
	wg.Wait()
	for i, s := range serials {
		if s != serials[0] {
			t.Fatalf("goroutine %d got CA %s, goroutine 0 got %s", i, s, serials[0])
		}
	}
	checkDevFiles(t, dir)
}

// TestDevCAProcesses re-executes the test binary three times; the three
// processes create the development CA in one Dir at the same instant and
// must end up with the same CA.
func TestDevCAProcesses(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca") // DevCA creates it
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	startAt := time.Now().Add(500 * time.Millisecond) // after all three have started
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for range 3 {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), devCAChildEnv+"="+dir, devCAStartEnv+"="+strconv.FormatInt(startAt.UnixNano(), 10))
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	var serials []string
	for i, cmd := range cmds {
		err := cmd.Wait()
		out := strings.TrimSpace(outs[i].String())
		t.Logf("process %d: %s", i, out)
		if err != nil {
			t.Fatalf("process %d: %v", i, err)
		}
		serials = append(serials, out)
	}
	own, err := ca.DevCA(ca.DevConfig{Dir: dir, NodeID: "parent"})
	if err != nil {
		t.Fatal(err)
	}
	want := "serial " + own.CA().SerialNumber.Text(16)
	for i, s := range serials {
		if s != want {
			t.Errorf("process %d printed %q, want %q", i, s, want)
		}
	}
	checkDevFiles(t, dir)
}

// devCAChild is the body of a re-executed test binary: wait for the start
// instant, create or load the development CA in dir, print its serial.
func devCAChild(dir string) int {
	if ns, err := strconv.ParseInt(os.Getenv(devCAStartEnv), 10, 64); err == nil {
		time.Sleep(time.Until(time.Unix(0, ns)))
	}
	s, err := ca.DevCA(ca.DevConfig{Dir: dir, NodeID: ports.NodeID("child-" + strconv.Itoa(os.Getpid()))})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("serial", s.CA().SerialNumber.Text(16))
	return 0
}

func TestDevCARefusesOpenKey(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca") // DevCA creates it
	if _, err := ca.DevCA(ca.DevConfig{Dir: dir, NodeID: "n1"}); err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, ca.DevCAKeyFile)
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		if err := os.Chmod(keyPath, mode); err != nil {
			t.Fatal(err)
		}
		_, err := ca.DevCA(ca.DevConfig{Dir: dir, NodeID: "n1"})
		checkInvalid(t, fmt.Sprintf("DevCA with key mode %#o", mode), err, keyPath)
	}
	if err := os.Chmod(keyPath, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.DevCA(ca.DevConfig{Dir: dir, NodeID: "n1"}); err != nil {
		t.Errorf("DevCA with key mode 0400: %v", err)
	}
}

// TestDevCARecovers: a key without its certificate (a creator that died
// between the two files) gets a certificate; a certificate that does not
// match the key, or an expired CA, is refused with a hint.
func TestDevCARecovers(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca") // DevCA creates it
	first, err := ca.DevCA(ca.DevConfig{Dir: dir, NodeID: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	certPath := filepath.Join(dir, ca.DevCACertFile)
	if err := os.Remove(certPath); err != nil {
		t.Fatal(err)
	}
	again, err := ca.DevCA(ca.DevConfig{Dir: dir, NodeID: "n1"})
	if err != nil {
		t.Fatalf("DevCA with the certificate missing: %v", err)
	}
	if !again.CA().PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(first.CA().PublicKey) {
		t.Error("recreated certificate is for another key")
	}
	checkDevFiles(t, dir)

	// An expired development CA.
	late := newClock(time.Now().Add(11 * 365 * day))
	_, err = ca.DevCA(ca.DevConfig{Dir: dir, NodeID: "n1", Now: late.Now})
	checkInvalid(t, "DevCA with an expired CA", err, "to create a new development CA")

	// A certificate for another key.
	other, _ := testCA(t, time.Now(), nil)
	writeFile(t, dir, ca.DevCACertFile, other, 0o644)
	_, err = ca.DevCA(ca.DevConfig{Dir: dir, NodeID: "n1"})
	checkInvalid(t, "DevCA with a mismatched certificate", err, "key does not match")
}

func TestDevCADefaultDir(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sets XDG_CACHE_HOME")
	}
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	log, rec := newLogger(t)
	if _, err := ca.DevCA(ca.DevConfig{NodeID: "n1", Logger: log}); err != nil {
		t.Fatal(err)
	}
	checkDevFiles(t, filepath.Join(cache, "mycorrizal"))
	if rec.count(msgDevCA) != 1 {
		t.Error("no warning")
	}
	_, err := ca.DevCA(ca.DevConfig{Dir: t.TempDir()})
	checkInvalid(t, "DevCA without NodeID", err, "DevConfig.NodeID")
}
