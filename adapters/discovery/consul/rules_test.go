package consul

import (
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/consul/api"
)

func TestNextIndex(t *testing.T) {
	for _, tc := range []struct{ prev, got, want uint64 }{
		{0, 5, 5}, // first answer
		{5, 5, 5}, // wait timed out, nothing changed
		{5, 9, 9}, // changed
		{9, 4, 0}, // went backwards: restart without blocking
		{0, 0, 1}, // server bug: never block on 0
		{7, 0, 1}, // backwards to 0 is still 0: use 1
	} {
		if got := nextIndex(tc.prev, tc.got); got != tc.want {
			t.Errorf("nextIndex(%d, %d) = %d, want %d", tc.prev, tc.got, got, tc.want)
		}
	}
}

func TestCheckHost(t *testing.T) {
	for _, h := range []string{"10.0.0.1", "fd00::1", "fe80::1%eth0", "node-1.example.internal", "consul.", "a_b"} {
		if err := checkHost(h); err != nil {
			t.Errorf("checkHost(%q) = %v", h, err)
		}
	}
	for _, h := range []string{"", "0.0.0.0", "::", "10.0.0.1:80", "[fd00::1]", "a b", "-a.b", "a..b", "x\x00y", "fe80::1%a b"} {
		if err := checkHost(h); err == nil {
			t.Errorf("checkHost(%q) accepted it", h)
		}
	}
}

func TestIsUnknownCheck(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{api.StatusError{Code: 404, Body: `Unknown check ID "service:a"`}, true},
		{fmt.Errorf("wrapped: %w", api.StatusError{Code: 404}), true},
		{api.StatusError{Code: 500, Body: `CheckID "service:a" does not have associated TTL`}, true},
		{api.StatusError{Code: 500, Body: `rpc error: No cluster leader`}, false},
		{api.StatusError{Code: 403, Body: `Permission denied`}, false},
		{errors.New("connection refused"), false},
	} {
		if got := isUnknownCheck(tc.err); got != tc.want {
			t.Errorf("isUnknownCheck(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
