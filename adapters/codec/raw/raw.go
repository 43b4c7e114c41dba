// Package raw is the passthrough ports.Codec: it carries []byte and string
// payloads as they are, with no framing and no type information.
//
// Use it when the application already has bytes (its own serialisation, a
// blob) and wants the cache or the transport to add nothing. Every byte
// sequence is a valid payload, so Unmarshal never reports ErrMalformed.
package raw

import (
	"bytes"
	"fmt"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Name is the codec's wire name.
const Name = "raw"

// Codec is the raw codec. It is stateless and safe for concurrent use; the
// zero value is ready to use.
type Codec struct{}

var _ ports.Codec = (*Codec)(nil)

// New returns a raw codec.
func New() *Codec { return &Codec{} }

// Name returns "raw".
func (*Codec) Name() string { return Name }

// Marshal returns v's bytes. v must be a []byte or a string; anything else
// fails with an error wrapping ports.ErrUnsupportedType.
//
// A []byte is returned as is, without a copy: the caller must not modify
// it while the result is in use (for example until a send completes). A
// string is copied into a new slice.
func (*Codec) Marshal(v any) ([]byte, error) {
	switch v := v.(type) {
	case []byte:
		return v, nil
	case string:
		return []byte(v), nil
	default:
		return nil, fmt.Errorf("raw: marshal %T: %w (want []byte or string)", v, ports.ErrUnsupportedType)
	}
}

// Unmarshal stores data in v, which must be a non-nil *[]byte or *string;
// anything else fails with an error wrapping ports.ErrUnsupportedType. The
// result is a copy: it does not alias data. A nil data gives a nil []byte,
// an empty non-nil data an empty non-nil one.
func (*Codec) Unmarshal(data []byte, v any) error {
	switch p := v.(type) {
	case *[]byte:
		if p == nil {
			return fmt.Errorf("raw: unmarshal into nil *[]byte: %w", ports.ErrUnsupportedType)
		}
		*p = bytes.Clone(data)
	case *string:
		if p == nil {
			return fmt.Errorf("raw: unmarshal into nil *string: %w", ports.ErrUnsupportedType)
		}
		*p = string(data)
	default:
		return fmt.Errorf("raw: unmarshal into %T: %w (want *[]byte or *string)", v, ports.ErrUnsupportedType)
	}
	return nil
}
