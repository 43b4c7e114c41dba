// Package codectest is the conformance suite for ports.Codec
// implementations. Every codec's tests call Run, as slogtest.Run is called
// for a slog.Handler:
//
//	func TestConformance(t *testing.T) {
//		codectest.Run(t, mycodec.New(),
//			codectest.Case{Name: "string", Value: "hi", New: func() any { return new(string) }},
//			codectest.Case{Name: "chan", Value: make(chan int), Unsupported: true},
//		)
//	}
//
// Run checks, in subtests:
//
//   - Name: non-empty, at most 255 bytes of printable ASCII without spaces
//     (it travels on the wire), and the same on every call;
//   - RoundTrip: each supported case survives Marshal then Unmarshal into a
//     fresh pointer from its New, twice, and the result does not change
//     when the encoded bytes are overwritten afterwards (the port says
//     results do not alias their input unless the codec documents it; set
//     Case.MayAlias for such codecs);
//   - Unsupported: Marshal of each Unsupported case fails with an error
//     wrapping ports.ErrUnsupportedType, and Unmarshal into its New, if
//     any, fails with an error wrapping ErrUnsupportedType or
//     ErrMalformed;
//   - BadTarget: Unmarshal into nil, a non-pointer and a typed nil pointer
//     fails with an error wrapping ErrUnsupportedType and does not panic;
//   - Malformed: Unmarshal never panics and fails, if at all, with an error
//     wrapping ErrMalformed, for nil and empty input, every truncation of
//     every valid encoding, valid encodings with bytes appended, and inputs
//     generated with pgregory.net/rapid (random bytes, and valid encodings
//     with bytes flipped, inserted or cut);
//   - Concurrent: many goroutines round-trip all cases at once through the
//     same codec (run the tests with -race).
package codectest

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"pgregory.net/rapid"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Case is one value a codec is tested with.
type Case struct {
	// Name names the subtests of this case.
	Name string

	// Value is passed to Marshal.
	Value any

	// New returns a fresh, non-nil pointer to decode into, such as
	// func() any { return new(T) }. It is required for supported cases.
	New func() any

	// Equal reports whether got, the value New's pointer points to after
	// Unmarshal, equals want, the case's Value. Nil means
	// reflect.DeepEqual, which tells a nil slice or map from an empty one;
	// supply Equal when the codec does not keep that difference.
	Equal func(want, got any) bool

	// Unsupported marks a value the codec must refuse: Marshal(Value) must
	// fail with ErrUnsupportedType, and Unmarshal into New(), when New is
	// set, must fail.
	Unsupported bool

	// MayAlias says the codec documents that Unmarshal's result may share
	// memory with its input, which skips the aliasing check.
	MayAlias bool
}

// Run runs the conformance suite for c with the given cases. At least one
// supported case is required, since the malformed-input checks start from
// valid encodings.
func Run(t *testing.T, c ports.Codec, cases ...Case) {
	t.Helper()
	var supported []Case
	for _, tc := range cases {
		if tc.Name == "" {
			t.Fatal("codectest: a case has no Name")
		}
		if !tc.Unsupported {
			if tc.New == nil {
				t.Fatalf("codectest: case %s has no New", tc.Name)
			}
			supported = append(supported, tc)
		}
	}
	if len(supported) == 0 {
		t.Fatal("codectest: no supported case given")
	}

	t.Run("Name", func(t *testing.T) { testName(t, c) })
	t.Run("RoundTrip", func(t *testing.T) {
		for _, tc := range supported {
			t.Run(tc.Name, func(t *testing.T) { testRoundTrip(t, c, tc) })
		}
	})
	t.Run("Unsupported", func(t *testing.T) {
		valid, _ := c.Marshal(supported[0].Value)
		for _, tc := range cases {
			if tc.Unsupported {
				t.Run(tc.Name, func(t *testing.T) { testUnsupported(t, c, tc, valid) })
			}
		}
	})
	t.Run("BadTarget", func(t *testing.T) { testBadTarget(t, c, supported[0]) })
	t.Run("Malformed", func(t *testing.T) { testMalformed(t, c, supported) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, c, supported) })
}

func testName(t *testing.T, c ports.Codec) {
	name := c.Name()
	if name == "" {
		t.Fatal("Name is empty")
	}
	if len(name) > 255 {
		t.Errorf("Name is %d bytes long, want at most 255", len(name))
	}
	for _, r := range []byte(name) {
		if r <= ' ' || r > '~' {
			t.Errorf("Name %q has byte %#x; want printable ASCII without spaces", name, r)
			break
		}
	}
	for range 3 {
		if again := c.Name(); again != name {
			t.Fatalf("Name changed from %q to %q", name, again)
		}
	}
}

// roundTrip marshals tc.Value and unmarshals it into a fresh pointer,
// returning the encoding and the decoded value.
func roundTrip(c ports.Codec, tc Case) (data []byte, got any, err error) {
	data, err = c.Marshal(tc.Value)
	if err != nil {
		return nil, nil, fmt.Errorf("Marshal(%#v): %w", tc.Value, err)
	}
	wire := bytes.Clone(data) // Marshal may alias Value (raw does)
	ptr := tc.New()
	if err := c.Unmarshal(wire, ptr); err != nil {
		return data, nil, fmt.Errorf("Unmarshal(% x) into %T: %w", wire, ptr, err)
	}
	got = reflect.ValueOf(ptr).Elem().Interface()
	if !tc.equal(tc.Value, got) {
		return data, got, fmt.Errorf("round trip of %#v gave %#v", tc.Value, got)
	}
	if !tc.MayAlias {
		for i := range wire {
			wire[i] ^= 0xA5
		}
		if got := reflect.ValueOf(ptr).Elem().Interface(); !tc.equal(tc.Value, got) {
			return data, got, fmt.Errorf("result changed to %#v when the input bytes were overwritten: it aliases them", got)
		}
	}
	return data, got, nil
}

func (tc Case) equal(want, got any) bool {
	if tc.Equal != nil {
		return tc.Equal(want, got)
	}
	return reflect.DeepEqual(want, got)
}

func testRoundTrip(t *testing.T, c ports.Codec, tc Case) {
	for range 2 {
		if _, _, err := roundTrip(c, tc); err != nil {
			t.Fatal(err)
		}
	}
}

func testUnsupported(t *testing.T, c ports.Codec, tc Case, valid []byte) {
	out, err := c.Marshal(tc.Value)
	if !errors.Is(err, ports.ErrUnsupportedType) {
		t.Errorf("Marshal(%T) = % x, %v; want an error wrapping ErrUnsupportedType", tc.Value, out, err)
	}
	if tc.New == nil {
		return
	}
	for _, data := range [][]byte{valid, []byte("x")} {
		err := safeUnmarshal(c, data, tc.New())
		if err == nil || !(errors.Is(err, ports.ErrUnsupportedType) || errors.Is(err, ports.ErrMalformed)) {
			t.Errorf("Unmarshal(% x) into %T: %v; want an error wrapping ErrUnsupportedType or ErrMalformed", data, tc.New(), err)
		}
	}
}

func testBadTarget(t *testing.T, c ports.Codec, tc Case) {
	data, err := c.Marshal(tc.Value)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	typedNil := reflect.Zero(reflect.TypeOf(tc.New())).Interface()
	for _, target := range []any{nil, 42, reflect.ValueOf(tc.New()).Elem().Interface(), typedNil} {
		err := safeUnmarshal(c, bytes.Clone(data), target)
		if !errors.Is(err, ports.ErrUnsupportedType) {
			t.Errorf("Unmarshal into %T(%v): %v; want an error wrapping ErrUnsupportedType", target, target, err)
		}
	}
}

// safeUnmarshal calls Unmarshal and turns a panic into an error that wraps
// neither sentinel, so callers report it.
func safeUnmarshal(c ports.Codec, data []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("Unmarshal panicked: %v", r)
		}
	}()
	return c.Unmarshal(data, v)
}

// checkMalformed feeds data to Unmarshal into a fresh pointer of every case
// and reports a panic or an error that does not wrap ErrMalformed.
func checkMalformed(c ports.Codec, cases []Case, data []byte) error {
	for _, tc := range cases {
		ptr := tc.New()
		err := safeUnmarshal(c, bytes.Clone(data), ptr)
		if err != nil && !errors.Is(err, ports.ErrMalformed) {
			return fmt.Errorf("Unmarshal(% x) into %T: %v; want nil or an error wrapping ErrMalformed", data, ptr, err)
		}
	}
	return nil
}

func testMalformed(t *testing.T, c ports.Codec, cases []Case) {
	var encodings [][]byte
	for _, tc := range cases {
		data, err := c.Marshal(tc.Value)
		if err != nil {
			t.Fatalf("Marshal(%s): %v", tc.Name, err)
		}
		encodings = append(encodings, bytes.Clone(data))
	}

	fixed := [][]byte{nil, {}}
	for _, enc := range encodings {
		for i := range enc {
			fixed = append(fixed, enc[:i])
		}
		fixed = append(fixed, append(bytes.Clone(enc), 0), append(bytes.Clone(enc), enc...))
	}
	for _, data := range fixed {
		if err := checkMalformed(c, cases, data); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("RandomBytes", func(t *testing.T) {
		rapid.Check(t, func(rt *rapid.T) {
			data := rapid.SliceOfN(rapid.Byte(), 0, 512).Draw(rt, "data")
			if err := checkMalformed(c, cases, data); err != nil {
				rt.Fatal(err)
			}
		})
	})
	t.Run("MutatedEncodings", func(t *testing.T) {
		rapid.Check(t, func(rt *rapid.T) {
			data := bytes.Clone(rapid.SampledFrom(encodings).Draw(rt, "encoding"))
			for range rapid.IntRange(1, 8).Draw(rt, "mutations") {
				pos := rapid.IntRange(0, len(data)).Draw(rt, "pos")
				switch rapid.IntRange(0, 3).Draw(rt, "op") {
				case 0: // flip
					if pos < len(data) {
						data[pos] ^= rapid.ByteRange(1, 255).Draw(rt, "xor")
					}
				case 1: // insert
					data = append(data[:pos], append([]byte{rapid.Byte().Draw(rt, "insert")}, data[pos:]...)...)
				case 2: // cut
					if pos < len(data) {
						data = append(data[:pos], data[pos+1:]...)
					}
				case 3: // set to an extreme
					if pos < len(data) {
						data[pos] = rapid.SampledFrom([]byte{0x00, 0x7f, 0x80, 0xf8, 0xff}).Draw(rt, "extreme")
					}
				}
			}
			if err := checkMalformed(c, cases, data); err != nil {
				rt.Fatal(err)
			}
		})
	})
}

func testConcurrent(t *testing.T, c ports.Codec, cases []Case) {
	const goroutines, rounds = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for r := range rounds {
				tc := cases[(g+r)%len(cases)]
				if _, _, err := roundTrip(c, tc); err != nil {
					errs <- fmt.Errorf("%s: %w", tc.Name, err)
					return
				}
				_ = c.Name()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
