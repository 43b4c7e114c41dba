package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Fixed body sizes of frames, without variable parts.
const (
	requestFixed  = 8 + 4
	responseFixed = 8 + 1 + 2
	goAwayFixed   = 2 + 2
	initFixed     = 1 + 1 + 1 + 1
)

// MaxErrLen is the longest error or reason text a frame carries; longer
// texts are truncated when encoded.
const MaxErrLen = 1024

// RequestOverhead and ResponseOverhead are the bytes a Request or Response
// frame adds to its payload (header included, error text excluded), for
// callers that check a payload against the maximum frame size.
const (
	RequestOverhead  = HeaderSize + requestFixed
	ResponseOverhead = HeaderSize + responseFixed
	DataOverhead     = HeaderSize
)

func appendHeader(dst []byte, t Type, bodyLen int) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(bodyLen+1))
	return append(dst, byte(t))
}

func checkSize(t Type, bodyLen, max int) error {
	if bodyLen+1 > max {
		return fmt.Errorf("wire: %s frame of %d bytes exceeds the %d-byte limit: %w", t, bodyLen+1, max, ports.ErrFrameTooLarge)
	}
	return nil
}

func truncate(s string) string {
	if len(s) > MaxErrLen {
		return s[:MaxErrLen]
	}
	return s
}

// AppendStreamInit appends a StreamInit frame for the current Version.
func AppendStreamInit(dst []byte, from ports.NodeID, app string, lane Lane) ([]byte, error) {
	if len(from) == 0 || len(from) > ports.MaxNodeIDLen {
		return dst, fmt.Errorf("wire: node ID of %d bytes (want 1..%d): %w", len(from), ports.MaxNodeIDLen, ports.ErrMalformed)
	}
	if len(app) == 0 || len(app) > ports.MaxAppNameLen {
		return dst, fmt.Errorf("wire: app name of %d bytes (want 1..%d): %w", len(app), ports.MaxAppNameLen, ports.ErrMalformed)
	}
	dst = appendHeader(dst, TypeStreamInit, initFixed+len(from)+len(app))
	dst = append(dst, Version, byte(lane), byte(len(from)))
	dst = append(dst, from...)
	dst = append(dst, byte(len(app)))
	return append(dst, app...), nil
}

// AppendData appends a Data frame, or fails with ErrFrameTooLarge when the
// frame would exceed max bytes.
func AppendData(dst []byte, payload []byte, max int) ([]byte, error) {
	if err := checkSize(TypeData, len(payload), max); err != nil {
		return dst, err
	}
	dst = appendHeader(dst, TypeData, len(payload))
	return append(dst, payload...), nil
}

// AppendRequest appends a Request frame with correlation id and timeout
// budget in milliseconds (0 = none), or fails with ErrFrameTooLarge.
func AppendRequest(dst []byte, id uint64, timeoutMS uint32, payload []byte, max int) ([]byte, error) {
	if err := checkSize(TypeRequest, requestFixed+len(payload), max); err != nil {
		return dst, err
	}
	dst = appendHeader(dst, TypeRequest, requestFixed+len(payload))
	dst = binary.BigEndian.AppendUint64(dst, id)
	dst = binary.BigEndian.AppendUint32(dst, timeoutMS)
	return append(dst, payload...), nil
}

// AppendResponse appends a Response frame, or fails with ErrFrameTooLarge.
// errText longer than MaxErrLen is truncated.
func AppendResponse(dst []byte, id uint64, status Status, errText string, payload []byte, max int) ([]byte, error) {
	errText = truncate(errText)
	if err := checkSize(TypeResponse, responseFixed+len(errText)+len(payload), max); err != nil {
		return dst, err
	}
	dst = appendHeader(dst, TypeResponse, responseFixed+len(errText)+len(payload))
	dst = binary.BigEndian.AppendUint64(dst, id)
	dst = append(dst, byte(status))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(errText)))
	dst = append(dst, errText...)
	return append(dst, payload...), nil
}

// AppendGoAway appends a GoAway frame; reason longer than MaxErrLen is
// truncated.
func AppendGoAway(dst []byte, code Code, reason string) []byte {
	reason = truncate(reason)
	dst = appendHeader(dst, TypeGoAway, goAwayFixed+len(reason))
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(reason)))
	return append(dst, reason...)
}

// Append appends any frame f, dispatching on f.Type. It is the inverse of
// Decode, used by tests and tools; the typed Append functions are faster.
func Append(dst []byte, f Frame, max int) ([]byte, error) {
	switch f.Type {
	case TypeStreamInit:
		return AppendStreamInit(dst, f.From, f.App, f.Lane)
	case TypeData:
		return AppendData(dst, f.Payload, max)
	case TypeRequest:
		return AppendRequest(dst, f.ID, f.Timeout, f.Payload, max)
	case TypeResponse:
		return AppendResponse(dst, f.ID, f.Status, f.Err, f.Payload, max)
	case TypeGoAway:
		return AppendGoAway(dst, f.Code, f.Err), nil
	default:
		return dst, fmt.Errorf("wire: cannot encode %s: %w", f.Type, ports.ErrMalformed)
	}
}
