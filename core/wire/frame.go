package wire

import (
	"fmt"

	"github.com/mycorrizal/mycorrizal/ports"
)

// Version is the protocol version this package speaks, carried in every
// StreamInit.
const Version uint8 = 1

// DefaultMaxFrameSize is the default limit on a frame's length (type byte
// plus body): 4 MiB.
const DefaultMaxFrameSize = 4 << 20

// HeaderSize is the size of a frame header: length (4) and type (1).
const HeaderSize = 5

// Type identifies a frame's kind.
type Type uint8

// Frame types.
const (
	TypeStreamInit Type = 0x01
	TypeData       Type = 0x02
	TypeRequest    Type = 0x03
	TypeResponse   Type = 0x04
	TypeGoAway     Type = 0x05
)

// Reserved ranges for frames of later layers.
const (
	// FirstCacheType and LastCacheType bound the types reserved for Mycel.
	FirstCacheType Type = 0x10
	LastCacheType  Type = 0x1f
	// FirstEventType and LastEventType bound the types reserved for
	// Cytoplasm.
	FirstEventType Type = 0x20
	LastEventType  Type = 0x2f
)

// String returns the type's name.
func (t Type) String() string {
	switch t {
	case TypeStreamInit:
		return "stream-init"
	case TypeData:
		return "data"
	case TypeRequest:
		return "request"
	case TypeResponse:
		return "response"
	case TypeGoAway:
		return "goaway"
	default:
		return fmt.Sprintf("type-0x%02x", uint8(t))
	}
}

// Lane says what a stream carries: one-way messages or requests with their
// responses. They use separate streams so a slow message handler never
// delays requests to the same application.
type Lane uint8

// Lanes.
const (
	LaneMessages Lane = 0
	LaneRequests Lane = 1
)

// String returns the lane's name.
func (l Lane) String() string {
	switch l {
	case LaneMessages:
		return "messages"
	case LaneRequests:
		return "requests"
	default:
		return fmt.Sprintf("lane-%d", uint8(l))
	}
}

// Status is the outcome a Response frame reports.
type Status uint8

// Response statuses.
const (
	// StatusOK: the handler returned a payload.
	StatusOK Status = 0
	// StatusHandlerError: the handler returned an error; its text follows.
	StatusHandlerError Status = 1
	// StatusHandlerPanic: the handler panicked; the recovered value follows.
	StatusHandlerPanic Status = 2
	// StatusNoHandler: the application has no request handler.
	StatusNoHandler Status = 3
	// StatusExpired: the request's deadline passed before it was handled.
	StatusExpired Status = 4
	// StatusShuttingDown: the node is shutting down.
	StatusShuttingDown Status = 5
)

// String returns the status's name.
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusHandlerError:
		return "handler error"
	case StatusHandlerPanic:
		return "handler panic"
	case StatusNoHandler:
		return "no request handler"
	case StatusExpired:
		return "expired before handling"
	case StatusShuttingDown:
		return "shutting down"
	default:
		return fmt.Sprintf("status-%d", uint8(s))
	}
}

// Code says why a GoAway frame ends a stream.
type Code uint16

// GoAway codes.
const (
	CodeNormal          Code = 0
	CodeProtocolError   Code = 1
	CodeVersion         Code = 2
	CodeUnauthenticated Code = 3
	CodeAppNotHosted    Code = 4
	CodeFrameTooLarge   Code = 5
	CodeShuttingDown    Code = 6
	CodeTooManyStreams  Code = 7
)

// String returns the code's name.
func (c Code) String() string {
	switch c {
	case CodeNormal:
		return "normal"
	case CodeProtocolError:
		return "protocol error"
	case CodeVersion:
		return "unsupported protocol version"
	case CodeUnauthenticated:
		return "identity mismatch"
	case CodeAppNotHosted:
		return "application not hosted"
	case CodeFrameTooLarge:
		return "frame too large"
	case CodeShuttingDown:
		return "shutting down"
	case CodeTooManyStreams:
		return "too many streams"
	default:
		return fmt.Sprintf("code-%d", uint16(c))
	}
}

// Frame is one decoded frame. Which fields are set depends on Type:
// StreamInit sets Version, Lane, From and App; Data sets Payload; Request
// sets ID, Timeout and Payload; Response sets ID, Status, Err and Payload;
// GoAway sets Code and Err (the reason).
type Frame struct {
	Type    Type
	Version uint8
	Lane    Lane
	From    ports.NodeID
	App     string
	ID      uint64
	// Timeout is the request's remaining time budget in milliseconds when
	// it was sent; 0 means none.
	Timeout uint32
	Status  Status
	Code    Code
	Err     string
	// Payload aliases the buffer the frame was decoded from; the Reader
	// allocates a fresh buffer per frame, so the receiver may keep it.
	Payload []byte
}
