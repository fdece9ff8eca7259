// Package operon is the Go SDK for operon reconcilers: WebAssembly
// components that target the WIT world `operon:reconciler/reconciler@0.1.0`
// (wit/reconciler.wit in the operon repository).
//
// A reconciler implements [Reconciler] and registers itself from an init
// function:
//
//	func init() { operon.Register(memcached{}) }
//
// The package carries the canonical-ABI glue for mainline Go (≥ 1.24,
// GOOS=wasip1 GOARCH=wasm, -buildmode=c-shared): the world's exports are
// `//go:wasmexport` functions and its imports `//go:wasmimport` ones, written
// by hand against the contract (abi_wasip1.go) on Go structs that mirror the
// WIT types in linear memory (abi_layout.go, which says why this is not
// generated), so no generator and no third-party module is needed. A test
// holds those structs and signatures to the WIT's canonical ABI
// (abi_layout_test.go). The helpers — request decoding, child objects,
// conditions, RFC 3339 time, errors — are plain Go and are tested natively
// with `go test`.
//
// The core module this builds is turned into a component with
// `wasm-tools component embed` (the WIT) and `wasm-tools component new
// --adapt wasi_snapshot_preview1=<reactor adapter>`; `cargo xtask build`
// does all of it.
package operon
