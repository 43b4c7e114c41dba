package gob

import (
	"errors"
	"fmt"
	"math"
)

// This file is a scanner for the encoding/gob wire format, run over a
// payload before encoding/gob decodes it. It reads the bytes exactly as
// encoding/gob's Decoder.Decode does (same primitives, same message
// boundaries, same points where a new message is pulled in), following the
// type definitions found in the stream, and rejects what would make the
// decoder allocate far more than the input justifies or recurse without
// bound. See the package documentation for what it guarantees.
//
// References are to Go 1.26's src/encoding/gob (decode.go, decoder.go,
// type.go, doc.go).

// Type ids predefined by encoding/gob (type.go).
const (
	tBool      = 1
	tInt       = 2
	tUint      = 3
	tFloat     = 4
	tBytes     = 5
	tString    = 6
	tComplex   = 7
	tInterface = 8

	firstUserID = 64
)

// tooBig is encoding/gob's upper bound for a message length (decoder.go).
const tooBig = (1 << 30) << (^uint(0) >> 62)

// maxTypeNameLen is encoding/gob's bound on a concrete type name.
const maxTypeNameLen = 1024

type wireKind uint8

const (
	kindArray wireKind = iota + 1
	kindSlice
	kindStruct
	kindMap
	kindOpaque // GobEncoder, BinaryMarshaler, TextMarshaler: length-prefixed bytes
)

// wireDef is a type definition received in the stream (a wireType).
type wireDef struct {
	kind      wireKind
	elem, key int32
	length    int64   // arrays
	fields    []int32 // structs: field type ids in field order
}

// scanError carries a validation failure out of the recursive scan.
type scanError struct{ err error }

// scanner walks one payload. buf is the current message, rest the messages
// after it.
type scanner struct {
	buf, rest []byte
	defs      map[int32]*wireDef
	depth     int
	// decodeIfaces models encoding/gob's decoding of interface values
	// (decodeInterface) rather than its skipping them (ignoreInterface).
	decodeIfaces bool
}

// validate scans data as a single gob value. decodeIfaces says whether the
// destination can hold interface values (then they are assumed decoded,
// else skipped, as encoding/gob does).
func validate(data []byte, decodeIfaces bool) (err error) {
	s := &scanner{rest: data, defs: make(map[int32]*wireDef), decodeIfaces: decodeIfaces}
	defer func() {
		if r := recover(); r != nil {
			se, ok := r.(scanError)
			if !ok {
				panic(r)
			}
			err = se.err
		}
	}()
	if len(data) == 0 {
		return errors.New("empty input")
	}
	id := s.typeSequence(false)
	s.topValue(id)
	if n := len(s.buf) + len(s.rest); n != 0 {
		return fmt.Errorf("%d bytes after the value", n)
	}
	return nil
}

func (s *scanner) fail(format string, args ...any) {
	panic(scanError{fmt.Errorf(format, args...)})
}

// remaining is the number of bytes not yet consumed.
func (s *scanner) remaining() int { return len(s.buf) + len(s.rest) }

// uint reads an unsigned integer from the current message (decodeUint).
func (s *scanner) uint() uint64 {
	if len(s.buf) == 0 {
		s.fail("unexpected end of message")
	}
	b := s.buf[0]
	if b <= 0x7f {
		s.buf = s.buf[1:]
		return uint64(b)
	}
	n := -int(int8(b))
	if n > 8 {
		s.fail("invalid unsigned integer")
	}
	if len(s.buf)-1 < n {
		s.fail("unsigned integer of %d bytes exceeds the message", n)
	}
	var x uint64
	for _, c := range s.buf[1 : 1+n] {
		x = x<<8 | uint64(c)
	}
	s.buf = s.buf[1+n:]
	return x
}

// int reads a signed integer (decodeInt).
func (s *scanner) int() int64 {
	x := s.uint()
	if x&1 != 0 {
		return ^int64(x >> 1)
	}
	return int64(x >> 1)
}

// typeID reads a type id field of a wireType (decInt32).
func (s *scanner) typeID() int32 {
	v := s.int()
	if v < math.MinInt32 || v > math.MaxInt32 {
		s.fail("type id %d out of range", v)
	}
	return int32(v)
}

// bytes skips a length-prefixed byte string (getLength, then the bytes).
func (s *scanner) bytes() {
	n := int(s.uint())
	if n < 0 || n > len(s.buf) {
		s.fail("length %d exceeds the message", n)
	}
	s.buf = s.buf[n:]
}

// recvMessage makes the next message current (recvMessage, readMessage).
func (s *scanner) recvMessage() {
	if len(s.rest) == 0 {
		s.fail("unexpected end of input")
	}
	b := s.rest[0]
	n, width := uint64(b), 1
	if b > 0x7f {
		k := -int(int8(b))
		if k > 8 {
			s.fail("invalid message length")
		}
		if len(s.rest)-1 < k {
			s.fail("truncated message length")
		}
		n = 0
		for _, c := range s.rest[1 : 1+k] {
			n = n<<8 | uint64(c)
		}
		width = 1 + k
	}
	s.rest = s.rest[width:]
	if n >= tooBig || n > uint64(len(s.rest)) {
		s.fail("message length %d exceeds the input", n)
	}
	s.buf, s.rest = s.rest[:n], s.rest[n:]
}

// typeSequence reads type definitions up to the id of the value that
// follows (decodeTypeSequence).
func (s *scanner) typeSequence(isInterface bool) int32 {
	for {
		if len(s.buf) == 0 {
			s.recvMessage()
		}
		id := int32(s.int()) // typeId(dec.nextInt()) truncates likewise
		if id >= 0 {
			return id
		}
		s.recvType(-id)
		if len(s.buf) > 0 {
			if !isInterface {
				s.fail("extra data after a type definition")
			}
			s.uint()
		}
	}
}

// recvType reads the definition of type id (recvType).
func (s *scanner) recvType(id int32) {
	if id < firstUserID || s.defs[id] != nil {
		s.fail("duplicate or reserved type id %d", id)
	}
	s.defs[id] = s.wireType()
}

// structFields walks a struct encoding of a type with n fields, calling
// field for each field present (decodeStruct). As in encoding/gob, the
// terminator may be missing at the end of the message.
func (s *scanner) structFields(n int, field func(i int)) {
	s.enter()
	defer s.leave()
	fieldnum := -1
	for len(s.buf) > 0 {
		delta := int(s.uint())
		if delta < 0 {
			s.fail("negative field delta")
		}
		if delta == 0 {
			return
		}
		if fieldnum >= n-delta {
			s.fail("field number out of range")
		}
		fieldnum += delta
		field(fieldnum)
	}
}

func (s *scanner) enter() {
	s.depth++
	if s.depth > MaxDepth {
		s.fail("nesting deeper than %d", MaxDepth)
	}
}

func (s *scanner) leave() { s.depth-- }

// commonType skips a CommonType{Name string; Id typeId}.
func (s *scanner) commonType() {
	s.structFields(2, func(i int) {
		if i == 0 {
			s.bytes()
		} else {
			s.typeID()
		}
	})
}

// wireType reads a wireType struct and returns its one definition.
func (s *scanner) wireType() *wireDef {
	var def *wireDef
	s.structFields(7, func(i int) {
		if def != nil {
			s.fail("type definition of more than one kind")
		}
		switch i {
		case 0: // ArrayT *arrayType{CommonType; Elem typeId; Len int}
			d := &wireDef{kind: kindArray}
			s.structFields(3, func(j int) {
				switch j {
				case 0:
					s.commonType()
				case 1:
					d.elem = s.typeID()
				case 2:
					d.length = s.int()
				}
			})
			if d.length < 0 {
				s.fail("negative array length")
			}
			def = d
		case 1: // SliceT *sliceType{CommonType; Elem typeId}
			d := &wireDef{kind: kindSlice}
			s.structFields(2, func(j int) {
				if j == 0 {
					s.commonType()
				} else {
					d.elem = s.typeID()
				}
			})
			def = d
		case 2: // StructT *structType{CommonType; Field []fieldType}
			d := &wireDef{kind: kindStruct}
			s.structFields(2, func(j int) {
				if j == 0 {
					s.commonType()
					return
				}
				n := s.uint()
				if n > uint64(s.remaining()) {
					s.fail("%d struct fields exceed the input", n)
				}
				d.fields = make([]int32, int(n))
				for k := range d.fields {
					if len(s.buf) == 0 {
						s.fail("struct fields exceed the message")
					}
					// fieldType{Name string; Id typeId}
					s.structFields(2, func(f int) {
						if f == 0 {
							s.bytes()
						} else {
							d.fields[k] = s.typeID()
						}
					})
				}
			})
			def = d
		case 3: // MapT *mapType{CommonType; Key, Elem typeId}
			d := &wireDef{kind: kindMap}
			s.structFields(3, func(j int) {
				switch j {
				case 0:
					s.commonType()
				case 1:
					d.key = s.typeID()
				case 2:
					d.elem = s.typeID()
				}
			})
			def = d
		default: // GobEncoderT, BinaryMarshalerT, TextMarshalerT *gobEncoderType{CommonType}
			s.structFields(1, func(int) { s.commonType() })
			def = &wireDef{kind: kindOpaque}
		}
	})
	if def == nil {
		s.fail("empty type definition")
	}
	return def
}

// topValue reads a value as Decoder.decodeValue frames it: a struct as
// itself, anything else as a singleton behind a zero delta.
func (s *scanner) topValue(id int32) {
	if def := s.defs[id]; def != nil && def.kind == kindStruct {
		s.value(id)
		return
	}
	if s.uint() != 0 {
		s.fail("non-zero delta for a singleton")
	}
	s.value(id)
}

// value reads one value of wire type id.
func (s *scanner) value(id int32) {
	switch id {
	case tBool, tInt, tUint, tFloat:
		s.uint()
		return
	case tComplex:
		s.uint()
		s.uint()
		return
	case tBytes, tString:
		s.bytes()
		return
	case tInterface:
		s.iface()
		return
	}
	if id < firstUserID {
		s.fail("reserved type id %d", id)
	}
	def := s.defs[id]
	if def == nil {
		s.fail("undefined type id %d", id)
	}
	switch def.kind {
	case kindOpaque:
		s.bytes()
	case kindStruct:
		s.structFields(len(def.fields), func(i int) { s.value(def.fields[i]) })
	case kindArray:
		if n := s.uint(); n != uint64(def.length) {
			s.fail("array length %d, want %d", n, def.length)
		}
		s.elements(def.length, def.elem)
	case kindSlice:
		n := s.uint()
		if n > uint64(s.remaining()) {
			s.fail("slice of %d elements exceeds the input", n)
		}
		s.elements(int64(n), def.elem)
	case kindMap:
		// The check encoding/gob lacks: every entry takes at least two
		// bytes (a key and an element), so a larger count is a lie that
		// would only make the decoder pre-allocate.
		n := s.uint()
		if n > uint64(s.remaining()/2) {
			s.fail("map of %d entries exceeds the input", n)
		}
		s.enter()
		for range n {
			s.value(def.key)
			s.value(def.elem)
		}
		s.leave()
	}
}

// elements reads n elements of an array or slice (decodeArrayHelper), each
// of which must start inside the current message.
func (s *scanner) elements(n int64, elem int32) {
	if n > int64(s.remaining()) {
		s.fail("%d elements exceed the input", n)
	}
	s.enter()
	defer s.leave()
	for range n {
		if len(s.buf) == 0 {
			s.fail("elements exceed the message")
		}
		s.value(elem)
	}
}

// iface reads an interface value.
func (s *scanner) iface() {
	s.enter()
	defer s.leave()
	if !s.decodeIfaces {
		// ignoreInterface: name, type sequence, then a delimited value
		// that is skipped unread. (Like encoding/gob, this does not
		// special-case a nil interface.)
		s.bytes()
		s.typeSequence(true)
		s.bytes()
		return
	}
	// decodeInterface: name (empty for nil), type sequence, a byte count
	// that is not used, then the value itself.
	n := s.uint()
	if n > 1<<31 || n > uint64(len(s.buf)) {
		s.fail("interface type name length %d exceeds the message", n)
	}
	s.buf = s.buf[n:]
	if n == 0 {
		return
	}
	if n > maxTypeNameLen {
		s.fail("interface type name of %d bytes", n)
	}
	id := s.typeSequence(true)
	s.uint()
	s.topValue(id)
}
