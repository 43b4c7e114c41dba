package wire_test

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/mycorrizal/mycorrizal/core/wire"
)

// FuzzReader feeds arbitrary bytes to the stream decoder: it must never
// panic, and every frame it accepts must re-encode to a frame that decodes
// to the same value.
func FuzzReader(f *testing.F) {
	f.Add(encodeAll(f, sampleFrames()))
	for _, fr := range sampleFrames() {
		f.Add(encodeAll(f, []wire.Frame{fr}))
	}
	f.Add([]byte{0, 0, 0, 0, 1})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 2})
	f.Add([]byte{0, 0, 0, 12, byte(wire.TypeResponse), 0, 0, 0, 0, 0, 0, 0, 1, 0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := wire.NewReader(bytes.NewReader(data), 1<<16)
		for range 64 {
			fr, err := r.Next()
			if err != nil {
				if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
					return
				}
				return
			}
			enc, err := wire.Append(nil, fr, 1<<16)
			if err != nil {
				t.Fatalf("re-encode of accepted %+v: %v", fr, err)
			}
			again, err := wire.NewReader(bytes.NewReader(enc), 1<<16).Next()
			if err != nil {
				t.Fatalf("decode of re-encoded %+v: %v", fr, err)
			}
			if fr.Type == wire.TypeStreamInit {
				// Encoding always writes the current version.
				fr.Version = wire.Version
			}
			if !reflect.DeepEqual(normalize(fr), normalize(again)) {
				t.Fatalf("round trip changed frame: %+v -> %+v", fr, again)
			}
		}
	})
}

// FuzzRoundTrip encodes frames built from fuzzed fields and checks they
// decode to the same values.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint8(3), "node-1", "orders", uint64(9), uint32(10), uint8(1), "err", []byte("payload"))
	f.Add(uint8(1), "n", "a", uint64(0), uint32(0), uint8(0), "", []byte{})
	f.Fuzz(func(t *testing.T, typ uint8, from, app string, id uint64, timeout uint32, status uint8, errText string, payload []byte) {
		fr := wire.Frame{Type: wire.Type(typ%5 + 1)}
		switch fr.Type {
		case wire.TypeStreamInit:
			if len(from) == 0 || len(from) > 255 || len(app) == 0 || len(app) > 255 {
				return
			}
			fr.Version, fr.Lane, fr.From, fr.App = wire.Version, wire.Lane(status%2), wireNode(from), app
		case wire.TypeData:
			fr.Payload = payload
		case wire.TypeRequest:
			fr.ID, fr.Timeout, fr.Payload = id, timeout, payload
		case wire.TypeResponse:
			if len(errText) > wire.MaxErrLen {
				errText = errText[:wire.MaxErrLen]
			}
			fr.ID, fr.Status, fr.Err, fr.Payload = id, wire.Status(status), errText, payload
		case wire.TypeGoAway:
			if len(errText) > wire.MaxErrLen {
				errText = errText[:wire.MaxErrLen]
			}
			fr.Code, fr.Err = wire.Code(id), errText
		}
		enc, err := wire.Append(nil, fr, wire.DefaultMaxFrameSize)
		if err != nil {
			t.Fatalf("encode %+v: %v", fr, err)
		}
		got, err := wire.NewReader(bytes.NewReader(enc), 0).Next()
		if err != nil {
			t.Fatalf("decode %+v: %v", fr, err)
		}
		if !reflect.DeepEqual(normalize(got), normalize(fr)) {
			t.Fatalf("round trip: %+v -> %+v", fr, got)
		}
	})
}
