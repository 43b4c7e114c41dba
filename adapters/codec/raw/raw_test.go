package raw_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mycorrizal/mycorrizal/adapters/codec/raw"
	"github.com/mycorrizal/mycorrizal/ports"
	"github.com/mycorrizal/mycorrizal/testkit/codectest"
)

func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func TestConformance(t *testing.T) {
	newBytes := func() any { return new([]byte) }
	newString := func() any { return new(string) }
	codectest.Run(t, raw.New(),
		codectest.Case{Name: "bytes", Value: []byte("hello"), New: newBytes},
		codectest.Case{Name: "every byte value", Value: allBytes(), New: newBytes},
		codectest.Case{Name: "empty bytes", Value: []byte{}, New: newBytes},
		codectest.Case{Name: "nil bytes", Value: []byte(nil), New: newBytes},
		codectest.Case{Name: "string", Value: "héllo, wörld", New: newString},
		codectest.Case{Name: "empty string", Value: "", New: newString},
		codectest.Case{Name: "invalid UTF-8 string", Value: "\xff\xfe\x00", New: newString},
		codectest.Case{Name: "int", Value: 42, New: func() any { return new(int) }, Unsupported: true},
		codectest.Case{Name: "pointer to bytes", Value: &[]byte{1}, Unsupported: true},
		codectest.Case{Name: "struct", Value: struct{ A int }{1}, Unsupported: true},
		codectest.Case{Name: "nil", Value: nil, Unsupported: true},
	)
}

func TestMarshalDoesNotCopyBytes(t *testing.T) {
	in := []byte("payload")
	out, err := raw.New().Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if &out[0] != &in[0] || len(out) != len(in) {
		t.Error("Marshal of a []byte copied it; it is documented to return it as is")
	}
}

func TestUnmarshalCopies(t *testing.T) {
	data := []byte("payload")
	var got []byte
	if err := raw.New().Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	data[0] = 'X'
	if string(got) != "payload" {
		t.Errorf("Unmarshal result aliases its input: %q", got)
	}
}

func TestUnmarshalNilPointers(t *testing.T) {
	c := raw.New()
	if err := c.Unmarshal([]byte("x"), (*[]byte)(nil)); !errors.Is(err, ports.ErrUnsupportedType) {
		t.Errorf("nil *[]byte: %v", err)
	}
	if err := c.Unmarshal([]byte("x"), (*string)(nil)); !errors.Is(err, ports.ErrUnsupportedType) {
		t.Errorf("nil *string: %v", err)
	}
	if c.Name() != "raw" || raw.Name != "raw" {
		t.Errorf("Name = %q", c.Name())
	}
}

// FuzzUnmarshal shows that Unmarshal never panics and never fails for a
// supported target: every byte sequence is a raw payload.
func FuzzUnmarshal(f *testing.F) {
	for _, seed := range [][]byte{nil, {}, []byte("hello"), allBytes(), {0xff, 0xfe}} {
		f.Add(seed)
	}
	c := raw.New()
	f.Fuzz(func(t *testing.T, data []byte) {
		var b []byte
		if err := c.Unmarshal(data, &b); err != nil || !bytes.Equal(b, data) {
			t.Fatalf("Unmarshal into *[]byte = %q, %v", b, err)
		}
		var s string
		if err := c.Unmarshal(data, &s); err != nil || s != string(data) {
			t.Fatalf("Unmarshal into *string = %q, %v", s, err)
		}
		var n int
		if err := c.Unmarshal(data, &n); !errors.Is(err, ports.ErrUnsupportedType) {
			t.Fatalf("Unmarshal into *int: %v", err)
		}
	})
}
