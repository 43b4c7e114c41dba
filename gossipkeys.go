package mycorrizal

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/mycorrizal/mycorrizal/ports"
)

// keysApp is the system application through which gossip key rotation
// reaches every member. It rides on the authenticated transport, so only
// members that proved their identity can change a node's keyring.
const keysApp = "_mycorrizal.gossip-keys"

// Key operations carried by keysApp requests: one byte, then the key.
const (
	keyOpInstall byte = 1
	keyOpUse     byte = 2
	keyOpRemove  byte = 3
)

// registerKeysApp adds the key-rotation system application when the
// membership layer encrypts gossip and can rotate its keys.
func (n *Node) registerKeysApp() error {
	kr, ok := n.membership.(ports.KeyRotator)
	if !ok || len(kr.Keys()) == 0 {
		return nil // gossip is not encrypted: nothing to rotate
	}
	app, err := n.mesh.Register(keysApp)
	if err != nil {
		return err
	}
	app.OnRequest(func(ctx context.Context, from ports.NodeID, p []byte) ([]byte, error) {
		if len(p) < 1 {
			return nil, fmt.Errorf("empty key operation: %w", ports.ErrMalformed)
		}
		n.log.Info("gossip key operation requested", "by", string(from), "op", p[0])
		return nil, applyKeyOp(kr, p[0], p[1:])
	})
	return nil
}

func applyKeyOp(kr ports.KeyRotator, op byte, key []byte) error {
	switch op {
	case keyOpInstall:
		return kr.InstallKey(key)
	case keyOpUse:
		return kr.UseKey(key)
	case keyOpRemove:
		return kr.RemoveKey(key)
	default:
		return fmt.Errorf("unknown key operation %d: %w", op, ports.ErrMalformed)
	}
}

// RotateGossipKey makes key the cluster's gossip encryption key without a
// restart: it installs key on every live member, then makes it the primary
// everywhere, then removes every other key everywhere. Each step completes
// on all members before the next starts, so no member ever receives gossip
// it cannot decrypt. It fails if gossip is not encrypted (start every node
// with WithGossipKey) or if a member did not confirm a step; the error names
// those members, and the rotation can be retried (every step is
// idempotent). Members that are down during the rotation must be restarted
// with the new key.
func (n *Node) RotateGossipKey(ctx context.Context, key []byte) error {
	kr, ok := n.membership.(ports.KeyRotator)
	if n.single || !ok {
		return fmt.Errorf("mycorrizal: rotate gossip key: membership cannot rotate keys: %w", ports.ErrInvalidConfig)
	}
	old := kr.Keys()
	if len(old) == 0 {
		return fmt.Errorf("mycorrizal: rotate gossip key: gossip is not encrypted (WithGossipKey): %w", ports.ErrInvalidConfig)
	}
	if err := n.keyStep(ctx, kr, keyOpInstall, key); err != nil {
		return err
	}
	if err := n.keyStep(ctx, kr, keyOpUse, key); err != nil {
		return err
	}
	for _, k := range old {
		if string(k) == string(key) {
			continue
		}
		if err := n.keyStep(ctx, kr, keyOpRemove, k); err != nil {
			return err
		}
	}
	n.log.Info("gossip key rotated across the cluster")
	return nil
}

// keyStep applies one key operation here and on every live member.
func (n *Node) keyStep(ctx context.Context, kr ports.KeyRotator, op byte, key []byte) error {
	if err := applyKeyOp(kr, op, key); err != nil {
		return fmt.Errorf("mycorrizal: rotate gossip key: local step %d: %w", op, err)
	}
	app := n.mesh.App(keysApp)
	payload := append([]byte{op}, key...)
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for _, m := range n.Members() {
		if m.ID == n.id {
			continue
		}
		wg.Go(func() {
			if _, err := app.Request(ctx, m.ID, payload); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", m.ID, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("mycorrizal: rotate gossip key: step %d not confirmed by %d member(s): %w", op, len(errs), errors.Join(errs...))
	}
	return nil
}
