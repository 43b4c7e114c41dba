// Package gob is the ports.Codec built on the standard library's
// encoding/gob, for Go values exchanged between nodes of the same program.
//
// Every Marshal produces one self-contained gob stream (type definitions
// followed by the value), so any payload can be decoded on its own, in any
// order, by any node. The price is that the type definitions travel with
// every payload; for small, hot values prefer a codec of your own or raw.
//
// Values stored in interface-typed fields must have their concrete types
// registered with encoding/gob's Register on every node, as encoding/gob
// requires.
//
// # Hostile input
//
// encoding/gob is not hardened against adversarial input (see its Security
// section). Before decoding, Unmarshal scans the bytes with a validator that
// follows encoding/gob's wire grammar and rejects, with ErrMalformed:
//
//   - a map whose announced length exceeds what the remaining bytes could
//     hold: encoding/gob (up to at least Go 1.26.8) pre-allocates a map from
//     that number, so a 26-byte message can make it allocate gigabytes
//     (golang/go#79539);
//   - nesting deeper than MaxDepth, which would otherwise let a recursive
//     type exhaust the decoder's stack (a fatal error, not a panic);
//   - reserved type ids, malformed or duplicate type definitions, and
//     trailing bytes.
//
// The validator is exact for destination types that cannot hold an
// interface value. When the destination has an interface-typed part,
// encoding/gob decides from the receiver's registered types whether it
// decodes or skips each embedded value, which the validator cannot know; it
// then assumes decoding, so a stream crafted to be read differently when
// skipped can still reach the allocation above. Peers are authenticated
// (mutual TLS), so such a stream must come from a cluster member.
//
// Unmarshal also recovers from any panic inside encoding/gob and reports it
// as ErrMalformed.
package gob

import (
	"bytes"
	"encoding"
	stdgob "encoding/gob"
	"fmt"
	"reflect"
	"sync"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Name is the codec's wire name.
const Name = "gob"

// MaxDepth is the deepest nesting of values (structs, slices, maps, arrays,
// interface values) Unmarshal accepts.
const MaxDepth = 10000

// maxPooledBuffer is the largest encoding buffer kept for reuse, so one huge
// value does not pin its buffer forever.
const maxPooledBuffer = 64 << 10

var bufferPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Codec is the gob codec. It is stateless and safe for concurrent use; the
// zero value is ready to use.
type Codec struct{}

var _ ports.Codec = (*Codec)(nil)

// New returns a gob codec.
func New() *Codec { return &Codec{} }

// Name returns "gob".
func (*Codec) Name() string { return Name }

// Marshal encodes v as one self-contained gob stream. Values gob cannot
// encode (nil, channels, functions, structs without exported fields,
// unregistered concrete types in interfaces, a MarshalBinary that fails or
// panics) give an error wrapping ports.ErrUnsupportedType, joined with
// gob's own error.
func (*Codec) Marshal(v any) (out []byte, err error) {
	buf := bufferPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledBuffer {
			bufferPool.Put(buf)
		}
	}()
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("gob: marshal %T: %w: panic: %v", v, ports.ErrUnsupportedType, r)
		}
	}()
	if err := stdgob.NewEncoder(buf).Encode(v); err != nil {
		return nil, fmt.Errorf("gob: marshal %T: %w: %w", v, ports.ErrUnsupportedType, err)
	}
	return bytes.Clone(buf.Bytes()), nil
}

// Unmarshal decodes one gob stream, as produced by Marshal, into v, which
// must be a non-nil pointer (else the error wraps ports.ErrUnsupportedType).
// Bytes that do not decode into v (malformed, truncated, trailing data,
// rejected by the validator described in the package documentation, or of
// a type incompatible with v) give an error wrapping ports.ErrMalformed.
// It never panics. The result does not alias data.
func (*Codec) Unmarshal(data []byte, v any) (err error) {
	rv := reflect.ValueOf(v)
	if v == nil || rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("gob: unmarshal into %T: %w (want a non-nil pointer)", v, ports.ErrUnsupportedType)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("gob: unmarshal into %T: %w: panic: %v", v, ports.ErrMalformed, r)
		}
	}()
	if err := validate(data, mayDecodeInterface(rv.Type())); err != nil {
		return fmt.Errorf("gob: unmarshal into %T: %w: %w", v, ports.ErrMalformed, err)
	}
	r := bytes.NewReader(data)
	if err := stdgob.NewDecoder(r).Decode(v); err != nil {
		return fmt.Errorf("gob: unmarshal into %T: %w: %w", v, ports.ErrMalformed, err)
	}
	if r.Len() != 0 {
		return fmt.Errorf("gob: unmarshal into %T: %w: %d trailing bytes", v, ports.ErrMalformed, r.Len())
	}
	return nil
}

// ifaceCache memoises mayDecodeInterface per type.
var ifaceCache sync.Map // reflect.Type -> bool

var (
	gobDecoderType    = reflect.TypeFor[stdgob.GobDecoder]()
	binaryUnmarshaler = reflect.TypeFor[encoding.BinaryUnmarshaler]()
	textUnmarshaler   = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// mayDecodeInterface reports whether decoding into t can decode an
// interface value: whether an interface type is reachable from t through
// pointers, slices, arrays, maps and exported struct fields, stopping at
// types that decode themselves (GobDecoder, BinaryUnmarshaler,
// TextUnmarshaler).
func mayDecodeInterface(t reflect.Type) bool {
	if v, ok := ifaceCache.Load(t); ok {
		return v.(bool)
	}
	r := reachesInterface(t, make(map[reflect.Type]bool))
	ifaceCache.Store(t, r)
	return r
}

func reachesInterface(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false
	}
	seen[t] = true
	if t.Kind() == reflect.Interface {
		return true // even one implementing GobDecoder: when unsure, say yes
	}
	for _, u := range []reflect.Type{gobDecoderType, binaryUnmarshaler, textUnmarshaler} {
		if t.Implements(u) || reflect.PointerTo(t).Implements(u) {
			return false
		}
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return reachesInterface(t.Elem(), seen)
	case reflect.Map:
		return reachesInterface(t.Key(), seen) || reachesInterface(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if (f.IsExported() || f.Anonymous) && reachesInterface(f.Type, seen) {
				return true
			}
		}
	}
	return false
}
