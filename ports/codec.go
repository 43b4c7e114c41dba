package ports

// Codec turns values into bytes and back. Its Name travels on the wire so
// the receiving side can tell which codec produced a payload. Codecs are
// stateless and safe for concurrent use; they never block.
type Codec interface {
	// Name is a short stable identifier, such as "gob" or "raw".
	Name() string

	// Marshal encodes v. It returns an error wrapping ErrUnsupportedType for
	// a value it cannot encode.
	Marshal(v any) ([]byte, error)

	// Unmarshal decodes data into v, which must be a non-nil pointer. Data
	// from the network may be malformed: it then returns an error wrapping
	// ErrMalformed and never panics. The result does not alias data unless
	// the codec documents that it does.
	Unmarshal(data []byte, v any) error
}
