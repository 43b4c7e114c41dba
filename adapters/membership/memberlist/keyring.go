package memberlist

import (
	"bytes"
	"fmt"

	ml "github.com/hashicorp/memberlist"

	"github.com/mycorrizal/mycorrizal/ports"
)

var _ ports.KeyRotator = (*Membership)(nil)

// keyringOrErr returns the live keyring, or an error when gossip is not
// encrypted (a keyring cannot be added to a running memberlist).
func (m *Membership) keyringOrErr(op string) (*ml.Keyring, error) {
	m.mu.Lock()
	kr := m.keyring
	m.mu.Unlock()
	if kr == nil {
		return nil, fmt.Errorf("memberlist: %s: gossip is not encrypted (start with Config.Keyring to rotate keys): %w", op, ports.ErrInvalidConfig)
	}
	return kr, nil
}

func checkKey(op string, key []byte) error {
	if n := len(key); n != 16 && n != 24 && n != 32 {
		return fmt.Errorf("memberlist: %s: key is %d bytes, want 16, 24 or 32: %w", op, n, ports.ErrInvalidConfig)
	}
	return nil
}

// InstallKey adds key to the gossip keyring, accepted for decryption from
// now on. Installing a key already present is a no-op.
func (m *Membership) InstallKey(key []byte) error {
	if err := checkKey("install key", key); err != nil {
		return err
	}
	kr, err := m.keyringOrErr("install key")
	if err != nil {
		return err
	}
	for _, k := range kr.GetKeys() {
		if bytes.Equal(k, key) {
			return nil
		}
	}
	if err := kr.AddKey(key); err != nil {
		return fmt.Errorf("memberlist: install key: %w", err)
	}
	return nil
}

// UseKey makes an installed key the primary gossip key.
func (m *Membership) UseKey(key []byte) error {
	kr, err := m.keyringOrErr("use key")
	if err != nil {
		return err
	}
	if err := kr.UseKey(key); err != nil {
		return fmt.Errorf("memberlist: use key: %w: %w", err, ports.ErrNotFound)
	}
	m.log.Info("gossip primary key changed")
	return nil
}

// RemoveKey removes a key that is not the primary. Removing an absent key
// is a no-op.
func (m *Membership) RemoveKey(key []byte) error {
	kr, err := m.keyringOrErr("remove key")
	if err != nil {
		return err
	}
	if err := kr.RemoveKey(key); err != nil {
		return fmt.Errorf("memberlist: remove key: %w", err)
	}
	return nil
}

// Keys returns the installed gossip keys, the primary first; nil when
// gossip is not encrypted.
func (m *Membership) Keys() [][]byte {
	kr, err := m.keyringOrErr("keys")
	if err != nil {
		return nil
	}
	return kr.GetKeys()
}
