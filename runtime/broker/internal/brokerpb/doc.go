// Package brokerpb is the generated code of broker.proto, the delivery
// protocol of the built-in broker. Regenerate it with
//
//	go test ./runtime/broker/internal/brokerpb -run TestGenerated -update
//
// from the module root; the same test fails when the files are stale.
package brokerpb
