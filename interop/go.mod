module github.com/protoc-gen-micro/micro/interop

go 1.24.0

require (
	github.com/protoc-gen-micro/micro v0.0.0
	golang.org/x/net v0.47.0
	google.golang.org/genproto/googleapis/rpc v0.0.0-20251022142026-3a174f9686a8
	google.golang.org/grpc v1.77.0
	google.golang.org/protobuf v1.36.10
)

require (
	cel.dev/expr v0.24.0 // indirect
	cloud.google.com/go/compute/metadata v0.9.0 // indirect
	github.com/bufbuild/protocompile v0.14.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/cncf/xds/go v0.0.0-20251022180443-0feb69152e9f // indirect
	github.com/envoyproxy/go-control-plane/envoy v1.35.0 // indirect
	github.com/envoyproxy/protoc-gen-validate v1.2.1 // indirect
	github.com/fatih/color v1.7.0 // indirect
	github.com/fullstorydev/grpcurl v1.9.3 // indirect
	github.com/go-jose/go-jose/v4 v4.1.3 // indirect
	github.com/golang/protobuf v1.5.4 // indirect
	github.com/inconshreveable/mousetrap v1.0.0 // indirect
	github.com/jhump/protoreflect v1.17.0 // indirect
	github.com/mattn/go-colorable v0.1.0 // indirect
	github.com/mattn/go-isatty v0.0.4 // indirect
	github.com/planetscale/vtprotobuf v0.6.1-0.20240319094008-0393e58bdf10 // indirect
	github.com/spf13/cobra v0.0.3 // indirect
	github.com/spf13/pflag v1.0.3 // indirect
	github.com/spiffe/go-spiffe/v2 v2.6.0 // indirect
	github.com/summerwind/h2spec v2.2.1+incompatible // indirect
	golang.org/x/oauth2 v0.32.0 // indirect
	golang.org/x/sync v0.18.0 // indirect
	golang.org/x/sys v0.38.0 // indirect
	golang.org/x/text v0.31.0 // indirect
	google.golang.org/genproto/googleapis/api v0.0.0-20251022142026-3a174f9686a8 // indirect
)

replace github.com/protoc-gen-micro/micro => ../

// grpcurl, for TestGrpcurl, which runs the README's grpcurl command against
// the greeter server.
tool github.com/fullstorydev/grpcurl/cmd/grpcurl

// h2spec, for the HTTP/2 conformance test in h2spec/. It has no go.mod, so the
// requirements above pin its dependencies: go-colorable, go-isatty, pflag and
// mousetrap at the tags its Gopkg.lock names; fatih/color and spf13/cobra, which
// it locks at untagged commits of 2016 and 2017, at 2018 tags that build it;
// x/net and x/sys at the versions the rest of this module uses.
tool github.com/summerwind/h2spec/cmd/h2spec
