package static_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/mycorrizal/mycorrizal/adapters/discovery/static"
	"github.com/mycorrizal/mycorrizal/ports"
	"github.com/mycorrizal/mycorrizal/testkit/discoverytest"
)

// backend announces through Set on one Static shared by every Discovery.
type backend struct{ s *static.Static }

func (b *backend) Discovery(*testing.T) ports.Discovery { return b.s }

func (b *backend) SetInstances(t *testing.T, addrs []string) {
	t.Helper()
	if err := b.s.Set(addrs); err != nil {
		t.Fatalf("Set: %v", err)
	}
}

func (b *backend) Break(*testing.T) bool { return false }

func TestConformance(t *testing.T) {
	discoverytest.Run(t, func(t *testing.T) discoverytest.Backend {
		s, err := static.New()
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return &backend{s: s}
	})
}

func TestNewValidates(t *testing.T) {
	good := []string{"127.0.0.1:7946", "[::1]:7946", "node-1.example.com:1", "h:65535"}
	if _, err := static.New(good...); err != nil {
		t.Fatalf("New(%q): %v", good, err)
	}
	for _, bad := range []string{"", "127.0.0.1", ":7946", "h:0", "h:65536", "h:-1", "h:http", "::1:7946", "h:7946:1"} {
		_, err := static.New("127.0.0.1:1", bad)
		if err == nil {
			t.Errorf("New(%q) accepted it", bad)
			continue
		}
		if !strings.Contains(err.Error(), "address 1") || !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("New(%q): error does not name the entry: %v", bad, err)
		}
	}
}

func TestSetKeepsOldListOnError(t *testing.T) {
	s, err := static.New("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]string{"127.0.0.2:2", "bad"}); err == nil {
		t.Fatal("Set accepted a bad address")
	}
	got, err := s.Discover(context.Background())
	if err != nil || !slices.Equal(got, []string{"127.0.0.1:1"}) {
		t.Fatalf("Discover = %v, %v; want the old list", got, err)
	}
}

func TestDiscoverReturnsACopy(t *testing.T) {
	in := []string{"127.0.0.1:1", "127.0.0.2:2"}
	s, err := static.New(in...)
	if err != nil {
		t.Fatal(err)
	}
	in[0] = "changed:1"
	got, _ := s.Discover(context.Background())
	got[1] = "changed:2"
	again, _ := s.Discover(context.Background())
	if !slices.Equal(again, []string{"127.0.0.1:1", "127.0.0.2:2"}) {
		t.Fatalf("Discover = %v: the list was aliased", again)
	}
}
