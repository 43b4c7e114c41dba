package consul

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/consul/api"
)

// addresses turns the agent's health entries into "host:port" addresses,
// skipping (and logging) entries that are unusable and dropping
// duplicates. It never fails: one bad entry must not hide the good ones.
func (c *Consul) addresses(ctx context.Context, entries []*api.ServiceEntry) []string {
	addrs := make([]string, 0, len(entries))
	seen := make(map[string]struct{}, len(entries))
	for i, e := range entries {
		addr, err := entryAddr(e)
		if err != nil {
			c.warned.log(ctx, c.log, i, entryName(e), err)
			continue
		}
		if _, dup := seen[addr]; dup {
			continue
		}
		seen[addr] = struct{}{}
		addrs = append(addrs, addr)
	}
	return addrs
}

// entryAddr returns the gossip address of one entry: the service's
// address, or the node's when the service has none, and the service port.
func entryAddr(e *api.ServiceEntry) (string, error) {
	if e == nil {
		return "", errors.New("null entry")
	}
	if e.Service == nil {
		return "", errors.New("entry without a Service")
	}
	host := e.Service.Address
	if host == "" && e.Node != nil {
		host = e.Node.Address
	}
	if host == "" {
		return "", errors.New("neither Service.Address nor Node.Address is set")
	}
	if err := checkHost(host); err != nil {
		return "", err
	}
	if p := e.Service.Port; p <= 0 || p > 65535 {
		return "", fmt.Errorf("port %d is outside 1..65535", p)
	}
	return net.JoinHostPort(host, strconv.Itoa(e.Service.Port)), nil
}

// checkHost accepts a specified IP address or a DNS host name.
func checkHost(host string) error {
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.IsUnspecified() {
			return fmt.Errorf("address %q is unspecified (any address), not one to join", host)
		}
		if z := ip.Zone(); z != "" && !validLabel(strings.ReplaceAll(z, ".", "_")) {
			return fmt.Errorf("address %q has an unusable zone", truncate(host))
		}
		return nil
	}
	bad := fmt.Errorf("address %q is neither an IP address nor a host name", truncate(host))
	name := strings.TrimSuffix(host, ".")
	if name == "" || len(name) > 253 {
		return bad
	}
	for label := range strings.SplitSeq(name, ".") {
		if !validLabel(label) {
			return bad
		}
	}
	return nil
}

// validLabel reports whether s is a DNS label: 1 to 63 letters, digits,
// hyphens or underscores, not starting or ending with a hyphen.
func validLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
			return false
		}
	}
	return true
}

// entryName names an entry in logs: its node and service ID as far as
// they are known.
func entryName(e *api.ServiceEntry) string {
	node, id := "?", "?"
	if e != nil && e.Node != nil && e.Node.Node != "" {
		node = e.Node.Node
	}
	if e != nil && e.Service != nil && e.Service.ID != "" {
		id = e.Service.ID
	}
	return fmt.Sprintf("node=%q service_id=%q", truncate(node), truncate(id))
}

// truncate bounds a string from the network before it is logged.
func truncate(s string) string {
	const max = 128
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// maxWarned bounds the set of entries already warned about.
const maxWarned = 1024

// warnings logs a skipped entry at WARN the first time and at DEBUG after
// that, so a bad registration in Consul does not flood the log at every
// discovery. The set is bounded: when full it is forgotten.
type warnings struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

func (w *warnings) log(ctx context.Context, l *slog.Logger, index int, entry string, err error) {
	key := entry + ": " + err.Error()
	w.mu.Lock()
	_, again := w.seen[key]
	if !again {
		if w.seen == nil || len(w.seen) >= maxWarned {
			w.seen = make(map[string]struct{})
		}
		w.seen[key] = struct{}{}
	}
	w.mu.Unlock()
	level := slog.LevelWarn
	if again {
		level = slog.LevelDebug
	}
	l.Log(ctx, level, "consul: skipping unusable service entry", "entry", entry, "index", index, "err", err)
}
