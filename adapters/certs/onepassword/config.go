package onepassword

import (
	"cmp"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/mycorrizal/mycorrizal/adapters/certs/ca"
	"github.com/mycorrizal/mycorrizal/ports"
)

// TokenEnv is the environment variable the default resolver reads the
// 1Password service-account token from when Config.Token is empty. It is
// the variable the 1Password CLI and SDKs use.
const TokenEnv = "OP_SERVICE_ACCOUNT_TOKEN"

// Defaults for the integration information the SDK reports to 1Password
// (it shows in the service account's activity log).
const (
	DefaultIntegrationName    = "mycorrizal"
	DefaultIntegrationVersion = "0.1.0"
)

// Config configures a Source. CACertRef, CAKeyRef and NodeID are required;
// so is a service-account token unless Resolver is set.
type Config struct {
	// CACertRef is the secret reference of the field holding the CA
	// certificate as PEM, "op://<vault>/<item>/[<section>/]<field>". Further
	// CERTIFICATE blocks in the field (the CA's issuers) are appended to
	// every minted chain.
	CACertRef string

	// CAKeyRef is the secret reference of the field holding the CA private
	// key as PEM (unencrypted PKCS#1, SEC1 or PKCS#8). It may equal
	// CACertRef when one field holds both.
	CAKeyRef string

	// Token is the 1Password service-account token the default resolver
	// authenticates with. Empty means the value of the OP_SERVICE_ACCOUNT_TOKEN
	// environment variable, read by New. It is ignored when Resolver is set,
	// and never appears in errors or logs.
	Token string

	// IntegrationName and IntegrationVersion identify this program to
	// 1Password (the SDK's WithIntegrationInfo). Empty means
	// DefaultIntegrationName and DefaultIntegrationVersion.
	IntegrationName, IntegrationVersion string

	// NodeID is this node's ID, the subject of its leaf certificate.
	NodeID ports.NodeID

	// Validity and RenewBefore are the leaf certificate's lifetime and how
	// long before its expiry it is renewed, as in ca.Config; zero means the
	// defaults of package ca.
	Validity, RenewBefore time.Duration

	// Hosts are DNS names or IP addresses added to the leaf as SANs, as in
	// ca.Config. Node IDs, not host names, authenticate peers, so it is
	// usually empty.
	Hosts []string

	// Logger receives the source's logs; nil discards them.
	Logger *slog.Logger

	// Resolver resolves the secret references. Nil means the 1Password SDK
	// with a service-account token (see Token); the SDK client is then
	// created on first use.
	Resolver SecretResolver
}

// check validates what can be validated without the SDK or the network and
// returns the token the default resolver is to use ("" when Resolver is
// set). Errors wrap ports.ErrInvalidConfig and name the field.
func (c *Config) check() (token string, err error) {
	if c.CACertRef == "" {
		return "", fmt.Errorf("onepassword: CACertRef is required (a secret reference such as op://vault/item/field): %w", ports.ErrInvalidConfig)
	}
	if c.CAKeyRef == "" {
		return "", fmt.Errorf("onepassword: CAKeyRef is required (a secret reference such as op://vault/item/field): %w", ports.ErrInvalidConfig)
	}
	if c.NodeID == "" || len(c.NodeID) > ports.MaxNodeIDLen {
		return "", fmt.Errorf("onepassword: NodeID %q must be 1 to %d bytes: %w", c.NodeID, ports.MaxNodeIDLen, ports.ErrInvalidConfig)
	}
	// The rules of ca.Config, checked here too so that a mistake costs no
	// round trip to 1Password; ca.NewFromAuthority checks them again.
	if c.Validity < 0 {
		return "", fmt.Errorf("onepassword: Validity %v is negative: %w", c.Validity, ports.ErrInvalidConfig)
	}
	if validity := cmp.Or(c.Validity, ca.DefaultValidity); c.RenewBefore < 0 || c.RenewBefore >= validity {
		return "", fmt.Errorf("onepassword: RenewBefore %v must be at least 0 and less than Validity %v: %w", c.RenewBefore, validity, ports.ErrInvalidConfig)
	}
	for i, h := range c.Hosts {
		if h == "" {
			return "", fmt.Errorf("onepassword: Hosts[%d] is empty: %w", i, ports.ErrInvalidConfig)
		}
	}
	if c.Resolver != nil {
		return "", nil
	}
	token = c.Token
	if token == "" {
		token = os.Getenv(TokenEnv)
	}
	if token == "" {
		return "", fmt.Errorf("onepassword: no 1Password service-account token: set Config.Token or the %s environment variable, or set Config.Resolver: %w", TokenEnv, ports.ErrInvalidConfig)
	}
	return token, nil
}

func (c *Config) integration() (name, version string) {
	name, version = c.IntegrationName, c.IntegrationVersion
	if name == "" {
		name = DefaultIntegrationName
	}
	if version == "" {
		version = DefaultIntegrationVersion
	}
	return name, version
}
