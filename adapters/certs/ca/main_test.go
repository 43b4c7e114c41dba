package ca_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// A re-executed test binary playing one of several processes that
	// create the development CA at once (TestDevCAProcesses).
	if dir := os.Getenv(devCAChildEnv); dir != "" {
		os.Exit(devCAChild(dir))
	}
	goleak.VerifyTestMain(m)
}
