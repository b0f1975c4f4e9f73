module github.com/protoc-gen-micro/micro

go 1.24.0

require (
	golang.org/x/net v0.47.0 // indirect
	google.golang.org/protobuf v1.36.10 // indirect
)
