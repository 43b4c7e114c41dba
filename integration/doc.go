// Package integration holds tests that run Mycorrizal nodes as separate
// operating-system processes: several processes on loopback, and several
// hosts in network namespaces joined by a bridge (as root). The test binary
// re-executes itself as a node (see nodeproc_test.go); nodes speak a small
// line protocol on stdin and stdout with the test.
package integration
