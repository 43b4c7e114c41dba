package memberlist_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	membership "github.com/mycorrizal/mycorrizal/adapters/membership/memberlist"
	"github.com/mycorrizal/mycorrizal/ports"
)

func sampleMetas() []membership.Meta {
	return []membership.Meta{
		{},
		{TransportAddr: "10.0.0.1:4433", Version: "0.1.0", Apps: []string{"orders", "billing"}},
		{TransportAddr: "[::1]:4433", Version: "1", Apps: []string{"a"}, Leaving: true},
		{TransportAddr: strings.Repeat("h", 255), Version: strings.Repeat("v", 200)},
	}
}

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range sampleMetas() {
		b, err := membership.EncodeMeta(m)
		if err != nil {
			t.Fatalf("EncodeMeta(%+v): %v", m, err)
		}
		if len(b) > membership.MaxMetaSize {
			t.Fatalf("EncodeMeta(%+v) gave %d bytes, over %d", m, len(b), membership.MaxMetaSize)
		}
		got, err := membership.DecodeMeta(b)
		if err != nil {
			t.Fatalf("DecodeMeta(EncodeMeta(%+v)): %v", m, err)
		}
		if !metaEqual(got, m) {
			t.Errorf("round trip %+v -> %+v", m, got)
		}
	}
}

func TestMetaLimits(t *testing.T) {
	for name, m := range map[string]membership.Meta{
		"long address": {TransportAddr: strings.Repeat("x", 256)},
		"long version": {Version: strings.Repeat("x", 256)},
		"empty app":    {Apps: []string{"ok", ""}},
		"long app":     {Apps: []string{strings.Repeat("x", ports.MaxAppNameLen+1)}},
		"many apps":    {Apps: slices.Repeat([]string{"a"}, 256)},
	} {
		if _, err := membership.EncodeMeta(m); !errors.Is(err, ports.ErrInvalidConfig) {
			t.Errorf("%s: EncodeMeta: %v; want ErrInvalidConfig", name, err)
		}
	}
	// Exactly at the limit is fine, one byte over is not.
	m := membership.Meta{Apps: []string{strings.Repeat("a", 255), strings.Repeat("b", 250)}}
	if b, err := membership.EncodeMeta(m); err != nil || len(b) != membership.MaxMetaSize {
		t.Fatalf("EncodeMeta at the limit: %d bytes, %v", len(b), err)
	}
	m.Version = "v"
	if _, err := membership.EncodeMeta(m); !errors.Is(err, membership.ErrMetaTooLarge) ||
		!strings.Contains(err.Error(), "513 bytes") || !strings.Contains(err.Error(), "512 bytes") {
		t.Fatalf("EncodeMeta one byte over: %v; want ErrMetaTooLarge naming 513 and 512", err)
	}
}

func TestDecodeMetaRejectsMalformed(t *testing.T) {
	good, err := membership.EncodeMeta(sampleMetas()[1])
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"nil":         nil,
		"one byte":    {1},
		"version 0":   append([]byte{0}, good[1:]...),
		"version 2":   append([]byte{2}, good[1:]...),
		"oversize":    append(slices.Clone(good), make([]byte, membership.MaxMetaSize)...),
		"empty app":   {1, 0, 0, 0, 1, 0},
		"count > len": {1, 0, 0, 0, 3, 1, 'a'},
	}
	// Every strict prefix of a valid encoding is truncated.
	for i := 0; i < len(good); i++ {
		cases["prefix "+string(rune('A'+i%26))+string(rune('a'+i/26))] = good[:i]
	}
	for name, b := range cases {
		if m, err := membership.DecodeMeta(b); !errors.Is(err, ports.ErrMalformed) {
			t.Errorf("%s: DecodeMeta(%x) = %+v, %v; want ErrMalformed", name, b, m, err)
		}
	}
	// Trailing bytes and unknown flags are tolerated (later additions).
	ext := append(slices.Clone(good), 7, 7, 7)
	ext[1] |= 0x80
	if m, err := membership.DecodeMeta(ext); err != nil || !metaEqual(m, sampleMetas()[1]) {
		t.Errorf("DecodeMeta with trailing bytes = %+v, %v", m, err)
	}
}

// FuzzDecodeMeta feeds arbitrary bytes to DecodeMeta: it must never panic,
// whatever it accepts must re-encode (canonically) to bytes that decode to
// the same value, and metadata built from the fuzzed bytes must round-trip
// through EncodeMeta and DecodeMeta.
func FuzzDecodeMeta(f *testing.F) {
	for _, m := range sampleMetas() {
		b, err := membership.EncodeMeta(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{1, 0, 255})
	f.Add([]byte{1, 1, 0, 0, 255, 1, 'x'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte("10.0.0.1:4433\x000.1\x00orders\x00billing"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// 1. Decoding untrusted bytes never panics; accepted input round-trips.
		if m, err := membership.DecodeMeta(data); err == nil {
			enc, err := membership.EncodeMeta(m)
			if err != nil {
				t.Fatalf("EncodeMeta of decoded %+v: %v", m, err)
			}
			if len(enc) > len(data) {
				t.Fatalf("canonical encoding %d bytes longer than accepted input %d", len(enc), len(data))
			}
			again, err := membership.DecodeMeta(enc)
			if err != nil || !metaEqual(again, m) {
				t.Fatalf("decode(encode(%+v)) = %+v, %v", m, again, err)
			}
		} else if !errors.Is(err, ports.ErrMalformed) {
			t.Fatalf("DecodeMeta error %v does not wrap ErrMalformed", err)
		}

		// 2. Metadata built from the bytes: encode -> decode is the identity.
		parts := bytes.Split(data, []byte{0})
		m := membership.Meta{TransportAddr: string(parts[0]), Leaving: len(data)%2 == 1}
		if len(parts) > 1 {
			m.Version = string(parts[1])
		}
		for _, p := range parts[min(2, len(parts)):] {
			m.Apps = append(m.Apps, string(p))
		}
		enc, err := membership.EncodeMeta(m)
		if err != nil {
			if !errors.Is(err, ports.ErrInvalidConfig) && !errors.Is(err, membership.ErrMetaTooLarge) {
				t.Fatalf("EncodeMeta(%+v): unexpected error %v", m, err)
			}
			return
		}
		got, err := membership.DecodeMeta(enc)
		if err != nil || !metaEqual(got, m) {
			t.Fatalf("decode(encode(%+v)) = %+v, %v", m, got, err)
		}
	})
}

func metaEqual(a, b membership.Meta) bool {
	return a.TransportAddr == b.TransportAddr && a.Version == b.Version &&
		a.Leaving == b.Leaving && slices.Equal(a.Apps, b.Apps)
}
