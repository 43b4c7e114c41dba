package wire_test

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/mycorrizal/mycorrizal/core/wire"
	"github.com/mycorrizal/mycorrizal/ports"
)

func sampleFrames() []wire.Frame {
	return []wire.Frame{
		{Type: wire.TypeStreamInit, Version: wire.Version, Lane: wire.LaneRequests, From: "node-1", App: "orders"},
		{Type: wire.TypeStreamInit, Version: wire.Version, Lane: wire.LaneMessages, From: "n", App: "a"},
		{Type: wire.TypeData, Payload: []byte("hello")},
		{Type: wire.TypeData, Payload: []byte{}},
		{Type: wire.TypeRequest, ID: 42, Timeout: 1500, Payload: []byte("ping")},
		{Type: wire.TypeResponse, ID: 42, Status: wire.StatusOK, Payload: []byte("pong")},
		{Type: wire.TypeResponse, ID: 7, Status: wire.StatusHandlerError, Err: "boom", Payload: []byte{}},
		{Type: wire.TypeGoAway, Code: wire.CodeAppNotHosted, Err: "app x not hosted"},
	}
}

func encodeAll(t testing.TB, frames []wire.Frame) []byte {
	t.Helper()
	var buf []byte
	for _, f := range frames {
		var err error
		buf, err = wire.Append(buf, f, wire.DefaultMaxFrameSize)
		if err != nil {
			t.Fatalf("encode %v: %v", f.Type, err)
		}
	}
	return buf
}

func normalize(f wire.Frame) wire.Frame {
	if f.Payload == nil {
		f.Payload = []byte{}
	}
	return f
}

func TestRoundTrip(t *testing.T) {
	frames := sampleFrames()
	r := wire.NewReader(bytes.NewReader(encodeAll(t, frames)), 0)
	for i, want := range frames {
		got, err := r.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if want.Type != wire.TypeStreamInit && want.Type != wire.TypeGoAway {
			want = normalize(want)
			got = normalize(got)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("frame %d: got %+v, want %+v", i, got, want)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after last frame: %v, want io.EOF", err)
	}
}

func TestOversizeFrameRefusedBeforeRead(t *testing.T) {
	big := make([]byte, 2048)
	buf, err := wire.AppendData(nil, big, wire.DefaultMaxFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	r := wire.NewReader(bytes.NewReader(buf), 1024)
	if _, err := r.Next(); !errors.Is(err, ports.ErrFrameTooLarge) {
		t.Fatalf("got %v, want ErrFrameTooLarge", err)
	}
	if _, err := wire.AppendData(nil, big, 1024); !errors.Is(err, ports.ErrFrameTooLarge) {
		t.Fatalf("encode: got %v, want ErrFrameTooLarge", err)
	}
	if _, err := wire.AppendRequest(nil, 1, 0, big, 1024); !errors.Is(err, ports.ErrFrameTooLarge) {
		t.Fatalf("encode request: got %v, want ErrFrameTooLarge", err)
	}
}

func TestTruncated(t *testing.T) {
	buf := encodeAll(t, sampleFrames()[:5])
	for cut := 1; cut < len(buf); cut++ {
		r := wire.NewReader(bytes.NewReader(buf[:cut]), 0)
		var err error
		for err == nil {
			_, err = r.Next()
		}
		if err == io.EOF {
			continue // cut fell on a frame boundary
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut at %d: got %v, want io.ErrUnexpectedEOF", cut, err)
		}
	}
}

func TestMalformed(t *testing.T) {
	cases := map[string][]byte{
		"zero length":     {0, 0, 0, 0, 1},
		"unknown type":    {0, 0, 0, 1, 0x7f},
		"short request":   {0, 0, 0, 3, byte(wire.TypeRequest), 1, 2},
		"short response":  {0, 0, 0, 3, byte(wire.TypeResponse), 1, 2},
		"bad init lane":   {0, 0, 0, 7, byte(wire.TypeStreamInit), 1, 9, 1, 'a', 1, 'b'},
		"init id overrun": {0, 0, 0, 7, byte(wire.TypeStreamInit), 1, 0, 200, 'a', 1, 'b'},
		"init app short":  {0, 0, 0, 7, byte(wire.TypeStreamInit), 1, 0, 1, 'a', 5, 'b'},
		"goaway overrun":  {0, 0, 0, 6, byte(wire.TypeGoAway), 0, 1, 0, 9, 'x'},
		"response errlen": {0, 0, 0, 12, byte(wire.TypeResponse), 0, 0, 0, 0, 0, 0, 0, 1, 0, 0xff, 0xff},
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := wire.NewReader(bytes.NewReader(b), 0).Next()
			if !errors.Is(err, ports.ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}

func TestStreamInitValidation(t *testing.T) {
	if _, err := wire.AppendStreamInit(nil, "", "app", wire.LaneMessages); err == nil {
		t.Fatal("empty node ID accepted")
	}
	if _, err := wire.AppendStreamInit(nil, "n", string(make([]byte, 256)), wire.LaneMessages); err == nil {
		t.Fatal("256-byte app name accepted")
	}
}

func TestErrTextTruncated(t *testing.T) {
	long := string(bytes.Repeat([]byte("e"), 5000))
	buf, err := wire.AppendResponse(nil, 1, wire.StatusHandlerError, long, nil, wire.DefaultMaxFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	f, err := wire.NewReader(bytes.NewReader(buf), 0).Next()
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Err) != wire.MaxErrLen {
		t.Fatalf("error text %d bytes, want %d", len(f.Err), wire.MaxErrLen)
	}
}

func BenchmarkAppendRequest64(b *testing.B) {
	payload := make([]byte, 64)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = wire.AppendRequest(buf[:0], 1, 100, payload, wire.DefaultMaxFrameSize)
	}
}

func wireNode(s string) ports.NodeID { return ports.NodeID(s) }
