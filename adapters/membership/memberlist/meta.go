package memberlist

import (
	"errors"
	"fmt"
	"net"

	ml "github.com/hashicorp/memberlist"

	"github.com/mycorrizal/mycorrizal/ports"
)

// MetaVersion is the version of the metadata encoding EncodeMeta writes and
// DecodeMeta reads.
const MetaVersion uint8 = 1

// MaxMetaSize is the largest encoded metadata memberlist accepts for a node
// (memberlist's MetaMaxSize).
const MaxMetaSize = ml.MetaMaxSize

// metaFlagLeaving marks a node that has started a graceful leave.
const metaFlagLeaving uint8 = 1 << 0

// maxMetaString is the longest string (transport address, version, app
// name) the encoding carries: its length is one byte.
const maxMetaString = 255

// ErrMetaTooLarge is returned (wrapped, with the size and the limit) by
// EncodeMeta, Start and UpdateLocal when a node's metadata does not fit in
// MaxMetaSize bytes.
var ErrMetaTooLarge = errors.New("node metadata too large")

// Meta is what a node advertises in its memberlist node metadata.
type Meta struct {
	// TransportAddr is the address peers dial to open transport streams.
	TransportAddr string
	// Version is the library's protocol version string.
	Version string
	// Apps are the names of the applications the node hosts.
	Apps []string
	// Leaving is set by Leave just before the node announces its departure,
	// so peers can report MemberLeft rather than MemberFailed.
	Leaving bool
}

// EncodeMeta returns the binary encoding of m, all lengths one byte:
//
//	version u8 (=1) | flags u8 (bit 0: leaving)
//	len u8 | transport address
//	len u8 | version string
//	count u8 | count x (len u8 | app name)
//
// It fails with an error wrapping ports.ErrInvalidConfig when a string is
// longer than 255 bytes, an app name is empty or there are more than 255
// apps, and with one wrapping ErrMetaTooLarge when the result exceeds
// MaxMetaSize.
func EncodeMeta(m Meta) ([]byte, error) {
	if len(m.TransportAddr) > maxMetaString {
		return nil, fmt.Errorf("memberlist: transport address is %d bytes, over %d: %w",
			len(m.TransportAddr), maxMetaString, ports.ErrInvalidConfig)
	}
	if len(m.Version) > maxMetaString {
		return nil, fmt.Errorf("memberlist: version is %d bytes, over %d: %w",
			len(m.Version), maxMetaString, ports.ErrInvalidConfig)
	}
	if len(m.Apps) > maxMetaString {
		return nil, fmt.Errorf("memberlist: %d apps, over %d: %w",
			len(m.Apps), maxMetaString, ports.ErrInvalidConfig)
	}
	size := 5 + len(m.TransportAddr) + len(m.Version)
	for i, app := range m.Apps {
		if app == "" || len(app) > ports.MaxAppNameLen {
			return nil, fmt.Errorf("memberlist: app %d name is %d bytes, want 1..%d: %w",
				i, len(app), ports.MaxAppNameLen, ports.ErrInvalidConfig)
		}
		size += 1 + len(app)
	}
	if size > MaxMetaSize {
		return nil, fmt.Errorf("memberlist: node metadata is %d bytes (%d apps), over memberlist's limit of %d bytes: %w",
			size, len(m.Apps), MaxMetaSize, ErrMetaTooLarge)
	}

	buf := make([]byte, 0, size)
	var flags uint8
	if m.Leaving {
		flags |= metaFlagLeaving
	}
	buf = append(buf, MetaVersion, flags)
	buf = appendString(buf, m.TransportAddr)
	buf = appendString(buf, m.Version)
	buf = append(buf, uint8(len(m.Apps)))
	for _, app := range m.Apps {
		buf = appendString(buf, app)
	}
	return buf, nil
}

func appendString(buf []byte, s string) []byte {
	buf = append(buf, uint8(len(s)))
	return append(buf, s...)
}

// DecodeMeta parses metadata written by EncodeMeta. Input from the network
// is untrusted: any malformed, truncated or oversized input gives an error
// wrapping ports.ErrMalformed, never a panic. Unknown flag bits and bytes
// after the last app are ignored, so later additions to version 1 stay
// readable by older nodes.
func DecodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) > MaxMetaSize {
		return m, malformed("%d bytes, over %d", len(b), MaxMetaSize)
	}
	if len(b) < 2 {
		return m, malformed("%d bytes, too short for a header", len(b))
	}
	if b[0] != MetaVersion {
		return m, malformed("unsupported version %d", b[0])
	}
	m.Leaving = b[1]&metaFlagLeaving != 0
	r := metaReader{buf: b[2:]}
	m.TransportAddr = r.string("transport address")
	m.Version = r.string("version")
	n := r.byte("app count")
	if r.err == nil && n > 0 {
		m.Apps = make([]string, 0, n)
		for i := 0; i < int(n) && r.err == nil; i++ {
			app := r.string("app name")
			if r.err == nil && app == "" {
				r.err = malformed("app %d has an empty name", i)
			}
			m.Apps = append(m.Apps, app)
		}
	}
	if r.err != nil {
		return Meta{}, r.err
	}
	return m, nil
}

// metaReader reads length-prefixed fields, remembering the first error.
type metaReader struct {
	buf []byte
	err error
}

func (r *metaReader) byte(what string) uint8 {
	if r.err != nil {
		return 0
	}
	if len(r.buf) < 1 {
		r.err = malformed("truncated before %s", what)
		return 0
	}
	v := r.buf[0]
	r.buf = r.buf[1:]
	return v
}

func (r *metaReader) string(what string) string {
	n := int(r.byte(what + " length"))
	if r.err != nil {
		return ""
	}
	if len(r.buf) < n {
		r.err = malformed("%s: %d bytes announced, %d left", what, n, len(r.buf))
		return ""
	}
	s := string(r.buf[:n])
	r.buf = r.buf[n:]
	return s
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("memberlist: node metadata: %s: %w", fmt.Sprintf(format, args...), ports.ErrMalformed)
}

// metaOf builds the metadata a local member advertises.
func metaOf(self ports.LocalMember, leaving bool) Meta {
	return Meta{
		TransportAddr: self.TransportAddr,
		Version:       self.Version,
		Apps:          self.Apps,
		Leaving:       leaving,
	}
}

// validateLocal checks what the port promises about a LocalMember before it
// is advertised.
func validateLocal(self ports.LocalMember) error {
	if self.ID == "" || len(self.ID) > ports.MaxNodeIDLen {
		return fmt.Errorf("memberlist: node ID is %d bytes, want 1..%d: %w",
			len(self.ID), ports.MaxNodeIDLen, ports.ErrInvalidConfig)
	}
	if host, port, err := net.SplitHostPort(self.TransportAddr); err == nil && port == "0" {
		return fmt.Errorf("memberlist: transport address %q advertises port 0 (host %q); pass the bound port: %w",
			self.TransportAddr, host, ports.ErrInvalidConfig)
	}
	return nil
}
