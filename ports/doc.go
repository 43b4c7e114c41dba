// Package ports defines the small interfaces Mycorrizal's core is built
// against (Membership, Transport, Discovery, CertSource, Codec and Store),
// the value types in their signatures, and the sentinel errors shared by
// the core and its adapters.
//
// Every interface here is a port in the ports-and-adapters sense: the core
// (package core/...) depends only on this package, and adapters (package
// adapters/...) implement it. Ports import only the standard library, so a
// user who implements one (a custom certificate source, a discovery backend)
// pulls in nothing else.
//
// Each method documents its threading, blocking and context rules. Unless a
// method says otherwise, it is safe for concurrent use, and a blocking method
// returns promptly with ctx.Err() (possibly wrapped) once its ctx ends.
//
// New capabilities are added as optional interfaces detected with a type
// assertion (as Registrar is for Discovery), never as new methods on a
// published interface.
package ports
