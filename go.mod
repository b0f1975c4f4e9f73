module github.com/protoc-gen-micro/micro

go 1.24.0

require (
	github.com/bufbuild/protocompile v0.14.1
	golang.org/x/net v0.47.0
	google.golang.org/protobuf v1.36.10
)

require (
	golang.org/x/sync v0.18.0 // indirect
	golang.org/x/text v0.31.0 // indirect
)
