// Package bench holds Mycorrizal's benchmarks. It is a module of its own so
// the peers it is compared with (NATS, Redis clients, other caches) stay out
// of the library's go.mod. Run `make bench` from the repository root; it
// writes BENCHMARKS.md.
package bench
