package onepassword

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	op "github.com/1password/onepassword-sdk-go"
)

// SecretResolver resolves 1Password secret references to their values: the
// seam between a Source and 1Password. The default, used when
// Config.Resolver is nil, is the 1Password SDK with a service-account token;
// implement it to fetch the CA another way (1Password Connect, the op CLI)
// or to serve fixed PEM in tests.
type SecretResolver interface {
	// Resolve returns the value of the field ref names, such as
	// "op://vault/item/field". It may block on the network until ctx ends
	// and is called from the goroutine that called New. Its error should
	// say why ref could not be resolved; New adds ref to the message. The
	// value returned is secret: implementations must not log it.
	Resolve(ctx context.Context, ref string) (string, error)
}

// Seams over the SDK, replaced by tests (export_test.go): the real ones load
// the WASM core, which takes seconds.
var (
	newClient   = op.NewClient
	validateRef = op.Secrets.ValidateSecretReference
)

// sdkMu serialises this package's entry points into the SDK that load its
// process-wide WASM core: the SDK loads it on first use without
// synchronisation, so two concurrent first calls would race and load it
// twice. Calls into the core are serialised by the SDK itself anyway.
var sdkMu sync.Mutex

// validateReference checks ref's syntax with the SDK's validator. It runs
// in the WASM core and needs no network; the first call in a process loads
// the core (seconds) and, like every call into the core, is not
// interrupted when ctx ends.
func validateReference(ctx context.Context, ref string) error {
	sdkMu.Lock()
	defer sdkMu.Unlock()
	return validateRef(ctx, ref)
}

// sdkResolver is the default SecretResolver: the 1Password SDK client,
// created on first use with a service-account token.
type sdkResolver struct {
	token, name, version string

	mu     sync.Mutex
	client *op.Client // nil until the first successful creation
}

func newSDKResolver(token, name, version string) *sdkResolver {
	return &sdkResolver{token: token, name: name, version: version}
}

// Resolve implements SecretResolver with the SDK's Secrets().Resolve.
func (r *sdkResolver) Resolve(ctx context.Context, ref string) (string, error) {
	c, err := r.sdkClient(ctx)
	if err != nil {
		return "", err
	}
	v, err := c.Secrets().Resolve(ctx, ref)
	if err != nil {
		return "", r.sdkError(ctx, err)
	}
	return v, nil
}

// sdkClient returns the SDK client, creating it on first use. A failed
// creation is not remembered: the next call tries again.
func (r *sdkResolver) sdkClient(ctx context.Context) (*op.Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.client != nil {
		return r.client, nil
	}
	sdkMu.Lock()
	c, err := newClient(ctx,
		op.WithServiceAccountToken(r.token),
		op.WithIntegrationInfo(r.name, r.version))
	sdkMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("create 1Password SDK client: %w", r.sdkError(ctx, err))
	}
	r.client = c
	return c, nil
}

// sdkError makes an SDK error safe and useful to return: the token is
// scrubbed from its message (the SDK should never echo it; this makes
// sure), and since the SDK flattens its errors to text, ctx's error is
// wrapped in when ctx has ended so that errors.Is finds it.
func (r *sdkResolver) sdkError(ctx context.Context, err error) error {
	if msg := err.Error(); r.token != "" && strings.Contains(msg, r.token) {
		// Do not wrap err: its text holds the token.
		err = errors.New(strings.ReplaceAll(msg, r.token, "[token redacted]"))
	}
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w (%w)", err, ctxErr)
	}
	return err
}
