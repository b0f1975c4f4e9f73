// Package soak holds the transport's soak test: mixed unary and streaming
// load from many connections that come and go, while the attack classes of
// runtime/server's attack tests take turns on other connections. It samples
// goroutines, live heap and RSS, and fails unless they end flat and every
// well-behaved call got its expected answer.
//
// `make test` runs a short version; `make soak` runs it for ten minutes:
//
//	make soak  # go test -run '^TestSoak$' -v ./internal/soak -soak.duration 10m -soak.interval 30s -soak.workers 16
package soak
