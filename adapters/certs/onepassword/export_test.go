package onepassword

import (
	"context"
	"testing"

	op "github.com/1password/onepassword-sdk-go"
)

// StubSDKValidator replaces the SDK's secret-reference validator (which
// loads the WASM core: seconds, tens of seconds under -race) with f until t
// ends. Tests using it must not run in parallel.
func StubSDKValidator(t testing.TB, f func(ctx context.Context, ref string) error) {
	t.Helper()
	prev := validateRef
	validateRef = f
	t.Cleanup(func() { validateRef = prev })
}

// StubSDKClient replaces the SDK's client constructor with f until t ends.
// Tests using it must not run in parallel.
func StubSDKClient(t testing.TB, f func(ctx context.Context, opts ...op.ClientOption) (*op.Client, error)) {
	t.Helper()
	prev := newClient
	newClient = f
	t.Cleanup(func() { newClient = prev })
}
