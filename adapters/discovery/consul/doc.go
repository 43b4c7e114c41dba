// Package consul provides a ports.Discovery backed by a HashiCorp Consul
// agent, which is also a ports.Registrar and a ports.Watcher.
//
// Discover asks the agent's health endpoint for the instances of one
// service (Config.Service) whose checks all pass, optionally filtered by
// tags, and returns their gossip addresses ("host:port"): the service
// address, or the node's address when the service has none. Entries with
// unusable fields (no address, a malformed address, a port outside
// 1..65535) are skipped with a warning rather than failing the answer.
//
// WaitChange uses Consul's blocking queries (the X-Consul-Index of the last
// answer as the index parameter) so a node learns about a new peer as soon
// as its check passes, instead of at its next periodic discovery. It
// follows Consul's advice for blocking clients: it restarts from index 0
// when the index goes backwards, never blocks on index 0, and spaces
// queries that return at once without a change.
//
// Register registers this node as an instance of the service with a TTL
// check that starts passing, then keeps the check passing from one owned
// goroutine every TTL/3 until Deregister. If the agent forgets the
// registration (for example after Consul reaped it following
// DeregisterCriticalServiceAfter while this process was stalled), the
// goroutine registers it again. Deregister stops the goroutine, waits for
// it, and removes the registration; a second Deregister is a no-op.
//
// The agent is reached with github.com/hashicorp/consul/api, so its usual
// environment variables (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN,
// CONSUL_HTTP_SSL, CONSUL_CACERT, ...) supply whatever Config leaves empty.
package consul
