package ports

// NodeID names one node of a cluster. It is unique within the cluster and
// stable across restarts of the same instance when the user configures it
// (else a fresh UUID is used). The transport proves it: a peer's NodeID is
// the one its authenticated identity (for QUIC, its certificate) carries.
type NodeID string

// String returns the ID as a string.
func (id NodeID) String() string { return string(id) }

// MaxNodeIDLen is the longest NodeID the wire protocol and the membership
// metadata accept, in bytes.
const MaxNodeIDLen = 255

// MaxAppNameLen is the longest application name accepted, in bytes.
const MaxAppNameLen = 255
