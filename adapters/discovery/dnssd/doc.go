// Package dnssd is a ports.Discovery that finds seed nodes through DNS,
// asking DNS servers directly with github.com/miekg/dns rather than through
// the operating system's resolver, so that timeouts, truncation, error
// codes and malformed answers are handled the same way everywhere.
//
// Two modes are supported:
//
//   - ModeSRV (the default) looks up SRV records, such as a Kubernetes
//     named port "_gossip._udp.myapp.default.svc.cluster.local" or any
//     zone's "_mycorrizal._udp.example.com". Each record's target is
//     resolved to its addresses, from the answer's additional section when
//     the server included them, else with A and AAAA queries, and every
//     address is paired with the record's port.
//   - ModeHeadless looks up the A and AAAA records of a host name, such as
//     a Kubernetes headless service "myapp.default.svc.cluster.local"
//     whose name resolves to every ready pod, and pairs each address with
//     the configured Port.
//
// Discover returns "ip:port" strings (IPv6 as "[ip]:port"), without
// duplicates, in a deterministic order (by address, then port). SRV
// priorities and weights are ignored: every record names a seed worth
// joining. Nothing is cached between calls, so a change in DNS is seen at
// the next Discover (subject to any caching by the DNS server itself).
//
// # Errors
//
// A name that does not exist (NXDOMAIN) or has no records of the asked type
// is "none found": an empty list and a nil error. A server that answers
// with another error code (SERVFAIL, REFUSED, ...) gives an error wrapping
// ErrServer that names the query and the code; a server that does not
// answer in time is retried (Attempts rounds over all Resolvers) before
// Discover reports it. Records that cannot be used (an SRV target of ".",
// port 0, a target that does not resolve, unusable addresses) are skipped
// with a warning log naming the record; if every record was unusable
// Discover returns an error wrapping ErrNoUsableRecords. Nothing a DNS server
// sends can make the adapter panic.
//
// Every query honours the caller's ctx, cancellation included: the query's
// connection is closed as soon as ctx ends (dns.Client.ExchangeContext on
// its own only applies ctx's deadline). A UDP reply with the TC bit set is
// asked again over TCP from the same server.
//
// # Name resolution
//
// The name is always queried as a fully qualified name: a missing trailing
// dot is added. Search domains from resolv.conf are not applied (a name
// like "myapp" is asked as "myapp." only), so configure the full name, as
// Kubernetes' own "svc.cluster.local" names are.
package dnssd
