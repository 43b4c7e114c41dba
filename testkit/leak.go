package testkit

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// LeakGrace bounds how long VerifyTestMain waits for goroutines to exit
// after the tests: memberlist's timers can finish a probe or gossip round
// for a moment after it was shut down.
const LeakGrace = 5 * time.Second

// VerifyTestMain runs the package's tests and then fails the run if any
// goroutine started by them is still alive LeakGrace later (goleak). Call
// it from TestMain:
//
//	func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }
func VerifyTestMain(m *testing.M, opts ...goleak.Option) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(LeakGrace)
		err := goleak.Find(opts...)
		for err != nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			err = goleak.Find(opts...)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines still running %v after the tests: %v\n", LeakGrace, err)
			code = 1
		}
	}
	os.Exit(code)
}
