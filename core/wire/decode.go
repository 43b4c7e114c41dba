package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/mycorrizal/mycorrizal/ports"
)

func malformed(t Type, format string, args ...any) error {
	return fmt.Errorf("wire: %s frame: %s: %w", t, fmt.Sprintf(format, args...), ports.ErrMalformed)
}

// Decode parses the body of a frame of type t. The returned frame's
// Payload aliases body. It returns an error wrapping ports.ErrMalformed for
// any body that is not a valid frame of that type, and never panics.
func Decode(t Type, body []byte) (Frame, error) {
	f := Frame{Type: t}
	switch t {
	case TypeStreamInit:
		if len(body) < initFixed {
			return f, malformed(t, "%d bytes, shorter than %d", len(body), initFixed)
		}
		f.Version = body[0]
		f.Lane = Lane(body[1])
		if f.Lane != LaneMessages && f.Lane != LaneRequests {
			return f, malformed(t, "unknown lane %d", body[1])
		}
		idLen := int(body[2])
		rest := body[3:]
		if idLen == 0 || len(rest) < idLen+1 {
			return f, malformed(t, "node ID length %d does not fit", idLen)
		}
		f.From = ports.NodeID(rest[:idLen])
		rest = rest[idLen:]
		appLen := int(rest[0])
		rest = rest[1:]
		if appLen == 0 || len(rest) != appLen {
			return f, malformed(t, "app length %d does not match %d remaining bytes", appLen, len(rest))
		}
		f.App = string(rest)
	case TypeData:
		f.Payload = body
	case TypeRequest:
		if len(body) < requestFixed {
			return f, malformed(t, "%d bytes, shorter than %d", len(body), requestFixed)
		}
		f.ID = binary.BigEndian.Uint64(body)
		f.Timeout = binary.BigEndian.Uint32(body[8:])
		f.Payload = body[requestFixed:]
	case TypeResponse:
		if len(body) < responseFixed {
			return f, malformed(t, "%d bytes, shorter than %d", len(body), responseFixed)
		}
		f.ID = binary.BigEndian.Uint64(body)
		f.Status = Status(body[8])
		errLen := int(binary.BigEndian.Uint16(body[9:]))
		rest := body[responseFixed:]
		if errLen > MaxErrLen || errLen > len(rest) {
			return f, malformed(t, "error length %d does not fit", errLen)
		}
		f.Err = string(rest[:errLen])
		f.Payload = rest[errLen:]
	case TypeGoAway:
		if len(body) < goAwayFixed {
			return f, malformed(t, "%d bytes, shorter than %d", len(body), goAwayFixed)
		}
		f.Code = Code(binary.BigEndian.Uint16(body))
		n := int(binary.BigEndian.Uint16(body[2:]))
		if n > MaxErrLen || n != len(body)-goAwayFixed {
			return f, malformed(t, "reason length %d does not match %d remaining bytes", n, len(body)-goAwayFixed)
		}
		f.Err = string(body[goAwayFixed:])
	default:
		return f, malformed(t, "unknown frame type")
	}
	return f, nil
}

// Reader reads frames from a stream. It is not safe for concurrent use.
type Reader struct {
	br  *bufio.Reader
	max int
	hdr [HeaderSize]byte
}

// NewReader returns a Reader over r that refuses frames longer than max
// bytes (type byte plus body); max <= 0 means DefaultMaxFrameSize.
func NewReader(r io.Reader, max int) *Reader {
	if max <= 0 {
		max = DefaultMaxFrameSize
	}
	return &Reader{br: bufio.NewReaderSize(r, 32<<10), max: max}
}

// Next reads and decodes the next frame. At a clean end of stream (no
// partial frame) it returns io.EOF; a stream that ends inside a frame gives
// io.ErrUnexpectedEOF. A frame longer than the limit gives an error wrapping
// ports.ErrFrameTooLarge without reading its body: the stream cannot be
// resynchronised after that and must be closed. Each frame's payload is a
// fresh allocation the caller may keep.
func (r *Reader) Next() (Frame, error) {
	if _, err := io.ReadFull(r.br, r.hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Frame{}, fmt.Errorf("wire: truncated frame header: %w", err)
		}
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(r.hdr[:4])
	t := Type(r.hdr[4])
	if n == 0 {
		return Frame{}, malformed(t, "zero length")
	}
	if uint64(n) > uint64(r.max) {
		return Frame{}, fmt.Errorf("wire: %s frame of %d bytes exceeds the %d-byte limit: %w", t, n, r.max, ports.ErrFrameTooLarge)
	}
	if !known(t) {
		return Frame{}, malformed(t, "unknown frame type")
	}
	body := make([]byte, n-1)
	if _, err := io.ReadFull(r.br, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, fmt.Errorf("wire: truncated %s frame: %w", t, err)
	}
	return Decode(t, body)
}

func known(t Type) bool {
	return t >= TypeStreamInit && t <= TypeGoAway
}
