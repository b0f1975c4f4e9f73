// Package greeter is an example service. greeter.proto declares it; the
// generated messages, client and server are in greeterpb.
//
// go generate regenerates greeterpb with protoc, protoc-gen-go and
// protoc-gen-micro on PATH (go install ./cmd/protoc-gen-micro). The same
// files are regenerated without protoc, and checked to be up to date, by
//
//	go test ./internal/codegen -run . -update
package greeter

//go:generate protoc --proto_path=. --go_out=greeterpb --go_opt=paths=source_relative --micro_out=greeterpb --micro_opt=paths=source_relative greeter.proto
