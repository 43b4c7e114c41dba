package ports

import "context"

// MemberState is the liveness of a member as the membership layer sees it.
type MemberState int

// Member states.
const (
	// StateAlive: the member answers probes.
	StateAlive MemberState = iota
	// StateSuspect: the member missed probes and may be failing.
	StateSuspect
	// StateFailed: the member was declared dead without leaving.
	StateFailed
	// StateLeft: the member left the cluster gracefully.
	StateLeft
)

// String returns a lower-case name for the state.
func (s MemberState) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	case StateFailed:
		return "failed"
	case StateLeft:
		return "left"
	default:
		return "unknown"
	}
}

// LocalMember is what this node advertises about itself through membership.
type LocalMember struct {
	// ID is this node's ID; it is also the membership layer's node name.
	ID NodeID
	// TransportAddr is the address peers dial to open transport streams to
	// this node ("host:port" for network transports). Never a port of 0.
	TransportAddr string
	// Apps are the names of the applications this node hosts.
	Apps []string
	// Version is the library's protocol version string.
	Version string
}

// Member is one node of the cluster as the membership layer knows it.
type Member struct {
	// ID is the member's node ID.
	ID NodeID
	// GossipAddr is the address its membership layer listens on.
	GossipAddr string
	// TransportAddr is the address to dial to open transport streams to it.
	TransportAddr string
	// Apps are the applications it hosts.
	Apps []string
	// Version is its protocol version string.
	Version string
	// State is its liveness.
	State MemberState
}

// Hosts reports whether the member advertises the named application.
func (m Member) Hosts(app string) bool {
	for _, a := range m.Apps {
		if a == app {
			return true
		}
	}
	return false
}

// MemberEventType says what changed about a member.
type MemberEventType int

// Member event types.
const (
	// MemberJoined: a member became alive (new, or back after a failure).
	MemberJoined MemberEventType = iota + 1
	// MemberUpdated: a member's metadata (address, apps) changed.
	MemberUpdated
	// MemberLeft: a member left gracefully.
	MemberLeft
	// MemberFailed: a member was declared dead without leaving.
	MemberFailed
)

// String returns a lower-case name for the event type.
func (t MemberEventType) String() string {
	switch t {
	case MemberJoined:
		return "joined"
	case MemberUpdated:
		return "updated"
	case MemberLeft:
		return "left"
	case MemberFailed:
		return "failed"
	default:
		return "unknown"
	}
}

// MemberEvent reports a change of one member.
type MemberEvent struct {
	Type   MemberEventType
	Member Member
}

// Membership is the cluster membership layer (gossip, failure detection and
// node metadata). The memberlist adapter is the default.
//
// Lifecycle: Start once, then any of Join, Members, Events, UpdateLocal;
// Leave before Close for a graceful exit; Close once at the end (it is safe
// to call Close more than once). All methods are safe for concurrent use.
type Membership interface {
	// Start binds the membership layer's sockets and begins gossiping as
	// self. It returns once the layer is ready to Join, or with an error
	// (for example when the metadata exceeds the layer's size limit). It
	// does not contact any seed. ctx bounds the start itself only.
	Start(ctx context.Context, self LocalMember) error

	// Join contacts the seed addresses ("host:port") and merges state with
	// those that answer. It returns how many seeds answered; an error only
	// when none did. It blocks until then or until ctx ends. Seeds that are
	// this node's own address are ignored.
	Join(ctx context.Context, seeds []string) (int, error)

	// Leave announces a graceful departure and waits until it has been
	// gossiped or ctx ends. After Leave the node stops counting as a member
	// for others; call Close next.
	Leave(ctx context.Context) error

	// Members returns a snapshot of the members this node believes alive or
	// suspect, including itself. It does not block on the network.
	Members() []Member

	// Events returns the channel of member changes. The same channel is
	// returned on every call; it is closed by Close. Events for one member
	// are delivered in order; if the consumer falls behind, consecutive
	// events for the same member may be coalesced into the latest one, so
	// the consumer always ends up with each member's current state and the
	// buffer stays bounded by the cluster size. Never blocks gossip.
	Events() <-chan MemberEvent

	// UpdateLocal replaces what this node advertises (for example after an
	// application is registered) and gossips the change. It blocks until the
	// update is queued for broadcast or ctx ends.
	UpdateLocal(ctx context.Context, self LocalMember) error

	// Close stops gossip without announcing a departure (as a crash would
	// look to peers if Leave was not called first) and releases sockets and
	// goroutines. It returns once they are gone.
	Close() error
}

// KeyRotator is an optional interface of a Membership whose gossip is
// encrypted with a keyring: it changes the keyring at run time, so the
// cluster's gossip key can be rotated without a restart. The safe order,
// run on every member, is: InstallKey(new) everywhere, then UseKey(new)
// everywhere, then RemoveKey(old) everywhere. Methods do not block on the
// network.
type KeyRotator interface {
	// InstallKey adds key to the keyring; it is then accepted for
	// decryption. Installing a key already present is a no-op.
	InstallKey(key []byte) error
	// UseKey makes an installed key the primary, used for encryption.
	UseKey(key []byte) error
	// RemoveKey removes a key that is not the primary.
	RemoveKey(key []byte) error
	// Keys returns the installed keys, the primary first.
	Keys() [][]byte
}
