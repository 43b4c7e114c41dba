package memberlist_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	mlmember "github.com/mycorrizal/mycorrizal/adapters/membership/memberlist"
	"github.com/mycorrizal/mycorrizal/ports"
)

func TestKeyRotationWithoutRestart(t *testing.T) {
	oldKey := []byte("0123456789abcdef")
	newKey := []byte("fedcba9876543210")
	start := func(id string, keys ...[]byte) *mlmember.Membership {
		t.Helper()
		m, err := mlmember.New(mlmember.Config{BindAddr: "127.0.0.1", Profile: mlmember.ProfileLocal, Keyring: keys})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(context.Background(), ports.LocalMember{ID: ports.NodeID(id), TransportAddr: "mem:" + id}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() })
		return m
	}
	a := start("a", oldKey)
	b := start("b", oldKey)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.Join(ctx, []string{a.LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	// Rotate on both: install, use, remove.
	for _, m := range []*mlmember.Membership{a, b} {
		if err := m.InstallKey(newKey); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []*mlmember.Membership{a, b} {
		if err := m.UseKey(newKey); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []*mlmember.Membership{a, b} {
		if err := m.RemoveKey(oldKey); err != nil {
			t.Fatal(err)
		}
		if keys := m.Keys(); len(keys) != 1 || !bytes.Equal(keys[0], newKey) {
			t.Fatalf("keys after rotation: %q", keys)
		}
	}
	// A node with only the old key can no longer join; one with the new key can.
	stale := start("stale", oldKey)
	if _, err := stale.Join(ctx, []string{a.LocalAddr()}); err == nil {
		t.Fatal("node with the retired key joined")
	}
	fresh := start("fresh", newKey)
	if _, err := fresh.Join(ctx, []string{a.LocalAddr()}); err != nil {
		t.Fatalf("node with the new key: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	// The rotated pair still gossips: the newcomer reaches b through a.
	for len(a.Members()) != 3 || len(b.Members()) != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("a sees %d members and b %d, want 3", len(a.Members()), len(b.Members()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, m := range a.Members() {
		if m.ID == "stale" {
			t.Fatal("stale node became a member")
		}
	}
}

func TestKeyRotationNeedsEncryption(t *testing.T) {
	m, err := mlmember.New(mlmember.Config{BindAddr: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.InstallKey([]byte("0123456789abcdef")); !errors.Is(err, ports.ErrInvalidConfig) {
		t.Fatalf("got %v", err)
	}
	if m.Keys() != nil {
		t.Fatal("keys without encryption")
	}
}
