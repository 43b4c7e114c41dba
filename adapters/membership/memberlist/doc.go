// Package memberlist is Mycorrizal's default membership layer (the gossip
// half of Nodosum): an implementation of ports.Membership on
// github.com/hashicorp/memberlist.
//
// Each node gossips as a memberlist node whose name is its NodeID and whose
// node metadata carries what peers need to reach and route to it: the
// transport address, the library version and the names of the applications
// it hosts (see Meta for the encoding). Failure detection, suspicion and
// anti-entropy are memberlist's own; Profile picks which of memberlist's
// default configurations (LAN, WAN, Local) to start from, and Config.Tune
// may adjust any of its knobs.
//
// Gossip is encrypted and authenticated with AES-GCM when Config.Keyring
// holds keys; the live keyring is reachable through Membership.Keyring for
// rotation without restart.
//
// Member events are taken from memberlist's EventDelegate without ever
// blocking it: they go through a coalescing queue (one pending event per
// member, in arrival order) drained by one goroutine that Close stops.
//
// Two memberlist v0.7.0 limitations shape the adapter:
//
//   - It never sets Node.State on the nodes it hands to delegates or
//     returns from Members (hashicorp/memberlist#293), so a graceful leave
//     cannot be told from a failure by the state alone. Leave therefore
//     first spreads a "leaving" flag in the node's metadata (by gossip and
//     by direct state syncs), and a peer that loses a member whose last
//     metadata carried the flag reports MemberLeft rather than
//     MemberFailed. For the same reason every member reports StateAlive.
//   - Its Members returns pointers to nodes it keeps updating, so reading
//     them races with gossip. The adapter keeps its own member table,
//     maintained from the event callbacks (where memberlist holds its
//     lock), and Members reads that.
//
// A zero Config binds 0.0.0.0 on a port the kernel chooses and advertises
// the real port; choosing defaults for a whole node is left to package
// mycorrizal.
package memberlist
