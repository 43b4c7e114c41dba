// Package static is the simplest ports.Discovery: a fixed list of seed
// addresses given in the configuration, for development, tests and
// environments where the peers' addresses are known in advance.
//
// The list can be replaced at run time with Set, so a node can be
// reconfigured without a restart; the node sees the new list at its next
// periodic discovery.
package static

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Static is a ports.Discovery that returns a configured list of "host:port"
// addresses. It is safe for concurrent use.
type Static struct {
	mu    sync.RWMutex
	addrs []string
}

var _ ports.Discovery = (*Static)(nil)

// New returns a Static that announces addrs. Each must be "host:port" with
// a non-empty host (an IP address or a host name, IPv6 in brackets) and a
// numeric port from 1 to 65535; the error names the first bad entry. No
// addresses is valid: Discover then finds none.
func New(addrs ...string) (*Static, error) {
	s := &Static{}
	if err := s.Set(addrs); err != nil {
		return nil, err
	}
	return s, nil
}

// Set replaces the announced list with addrs, validated as in New. On an
// error the previous list stays in place. The caller may reuse addrs after
// Set returns.
func (s *Static) Set(addrs []string) error {
	for i, a := range addrs {
		if err := validate(a); err != nil {
			return fmt.Errorf("static: address %d %q: %w", i, a, err)
		}
	}
	c := slices.Clone(addrs)
	s.mu.Lock()
	s.addrs = c
	s.mu.Unlock()
	return nil
}

// Discover returns a copy of the current list; the caller may modify it.
// It does not block. It returns ctx's error if ctx has already ended, as
// every Discovery does.
func (s *Static) Discover(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("static: discover: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.addrs), nil
}

// validate reports whether a is "host:port" with a non-empty host and a
// port in 1..65535.
func validate(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("want host:port: %w", err)
	}
	if host == "" {
		return fmt.Errorf("empty host")
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}
