module github.com/protoc-gen-micro/micro

go 1.24.0

require (
	github.com/bufbuild/protocompile v0.14.1
	github.com/hashicorp/mdns v1.0.6
	github.com/miekg/dns v1.1.55
	golang.org/x/net v0.47.0
	golang.org/x/sys v0.38.0
	google.golang.org/protobuf v1.36.10
)

require (
	golang.org/x/mod v0.29.0 // indirect
	golang.org/x/sync v0.18.0 // indirect
	golang.org/x/text v0.31.0 // indirect
	golang.org/x/tools v0.38.0 // indirect
)
