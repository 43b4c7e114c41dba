// Package onepassword provides a ports.CertSource whose certificate
// authority lives in a 1Password vault: the CA certificate and private key
// are fetched once, in New, with the 1Password Go SDK
// (github.com/1password/onepassword-sdk-go) and a service-account token,
// and this node's leaf certificate is then minted from that CA and renewed
// before it expires by package adapters/certs/ca (CN = node ID, URI SAN
// ports.NodeIDURI(id)). Every node of a cluster points at the same two
// secret references and so trusts the same CA, while the CA key never
// touches a disk.
//
// # Cost of the SDK
//
// The 1Password SDK embeds its core as a WebAssembly module run by an
// in-process WASM runtime: importing it adds about 20 MB to a binary, and
// the first call into it in a process compiles the module, which takes a
// few seconds (40 s or more under the race detector) and cannot be
// interrupted by a context. This package is the only one in Mycorrizal that
// imports the SDK, so programs that do not use 1Password do not pay for it:
// import this package only where it is used, typically in main next to
// mycorrizal.WithCertSource.
//
// # Storing the CA
//
// Store the CA certificate and its private key as PEM in fields of a
// 1Password item (multi-line text fields keep the line breaks PEM needs)
// and name them with secret references, "op://<vault>/<item>/[<section>/]<field>":
// Config.CACertRef and Config.CAKeyRef. Both are required; nothing is
// hard-coded. They may name the same field when it holds both blocks. The
// accepted key and certificate formats are those of ca.ParseAuthority.
//
// New checks the references offline with the SDK's own validator (in the
// WASM core, no network), then resolves both through a SecretResolver. The
// default resolver authenticates with a 1Password service account: the
// token comes from Config.Token, else from the OP_SERVICE_ACCOUNT_TOKEN
// environment variable, and the SDK client is created on first use. A
// custom Config.Resolver (a 1Password Connect client, a fake in tests)
// replaces it entirely; no token is needed then. Errors name the secret
// reference involved and never the token.
//
// The CA is fetched once: a CA rotated in the vault is picked up by
// building a new Source (in practice, at the next restart). The leaf
// minted from it rotates without restart, as in package ca.
package onepassword
