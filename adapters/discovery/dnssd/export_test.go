package dnssd

import "testing"

// SetResolvConf makes New read path instead of /etc/resolv.conf until the
// test ends. Tests that call it must not run in parallel.
func SetResolvConf(t testing.TB, path string) {
	t.Helper()
	old := resolvConf
	resolvConf = path
	t.Cleanup(func() { resolvConf = old })
}
