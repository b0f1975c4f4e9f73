# make demo      build the plugin, check the generated example, then in a private network
#                namespace run greeter servers found by mDNS under load (see examples/greeter/demo)
# make demo-cluster  the greeter across hosts (network namespaces) found through etcd, events through
#                NATS JetStream, with a subscriber and etcd restarted under load (see examples/cluster/demo)
# make test      every module's tests with -race, formatting, vet, the API size, and protoc checks
# make generate  regenerate the example (with protoc when installed, in-process otherwise)
# make bench     benchmarks against grpc-go and connect-go (see bench/README.md), and the cost of otel/
# make fuzz      every fuzz target for FUZZTIME each (5s in make test; e.g. FUZZTIME=10m)
# make conformance  connectrpc's conformance suite against our server and client (see conformance/doc.go)
# make soak      ten minutes of mixed load with attacks taking turns (see internal/soak; make test runs 20 s)

GO      ?= go
BIN     := $(CURDIR)/bin
MODULES := . interop bench conformance plugins/etcd plugins/nats examples/cluster otel

.PHONY: all demo demo-cluster test generate plugin bench conformance soak fmt-check vet api-check protoc-check fuzz

all: test

plugin:
	$(GO) build -o $(BIN)/protoc-gen-micro ./cmd/protoc-gen-micro
	$(GO) build -o $(BIN)/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go

# With protoc on PATH the example is generated the way users generate theirs;
# without it the same generator runs in-process over protocompile.
generate: plugin
	@if command -v protoc >/dev/null 2>&1; then \
		echo "generate: $$(protoc --version) with bin/protoc-gen-micro"; \
		PATH="$(BIN):$$PATH" $(GO) generate ./examples/...; \
	else \
		echo "generate: protoc is not installed; generating in-process"; \
		$(GO) test ./internal/codegen -run . -update; \
	fi
	$(GO) test ./runtime/broker/internal/brokerpb -run . -count=1 -update
	$(GO) test ./internal/grpcapi -run TestGenerated -count=1 -update
	cd interop && $(GO) generate ./...
	cd bench && $(GO) generate ./...
	cd conformance && $(GO) run ./internal/gen

# The demo generates the example afresh (into a temporary folder, so the
# tree stays clean) and checks it against the committed code, then runs it.
# It builds the greeter programs first and runs them inside a private network
# namespace, so multicast never leaves the machine; inside there is no route
# to the module proxy, so nothing may be built or downloaded there.
demo: plugin
	@if command -v protoc >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory protoc-check; \
	else \
		echo "demo: protoc is not installed; generating the example in-process"; \
		$(GO) test ./internal/codegen -run 'TestExampleUpToDate' -count=1 >/dev/null && \
		echo "demo: in-process generation matches the committed example"; \
	fi
	@command -v ip >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null; }
	$(GO) run ./examples/greeter/demo

# demo-cluster builds examples/cluster (its own module: embedded etcd and
# nats-server) outside any namespace, then, under unshare -rn, a data
# centre and three hosts as network namespaces joined by routed veth links
# (no bridge, no multicast forwarding), and runs the scenario in them.
demo-cluster:
	@command -v ip >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null; }
	cd examples/cluster && $(GO) run ./demo

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt -l:"; echo "$$out"; exit 1; fi

vet:
	@for m in $(MODULES); do echo "go vet ($$m)"; (cd $$m && $(GO) vet ./...) || exit 1; done

# api-check keeps the public runtime surface (exported identifiers, counted
# by internal/apicount) from growing past its budget without a decision.
API_MAX ?= 380
api-check:
	@out=$$($(GO) run ./internal/apicount -max $(API_MAX)) || { echo "$$out"; exit 1; }; \
	echo "api-check: $$(echo "$$out" | tail -1) (at most $(API_MAX))"

# protoc-check runs the real protoc with our plugin on the example and
# compares the output with the committed file (all but the protoc version
# line). CI installs protoc, so there it must run; elsewhere it is skipped
# when protoc is missing.
protoc-check: plugin
	@if ! command -v protoc >/dev/null 2>&1; then \
		if [ -n "$$CI" ]; then echo "protoc-check: protoc is required in CI"; exit 1; fi; \
		echo "protoc-check: skipped, protoc is not installed (apt-get install protobuf-compiler)"; exit 0; \
	fi; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	protoc --plugin=protoc-gen-micro=$(BIN)/protoc-gen-micro --plugin=protoc-gen-go=$(BIN)/protoc-gen-go \
		--proto_path=examples/greeter --go_out=$$tmp --go_opt=paths=source_relative \
		--micro_out=$$tmp --micro_opt=paths=source_relative greeter.proto && \
	for f in greeter.pb.micro.go greeter.pb.go; do \
		grep -v '^// - protoc \|^// 	protoc \|^//	protoc ' $$tmp/$$f > $$tmp/$$f.got; \
		grep -v '^// - protoc \|^// 	protoc \|^//	protoc ' examples/greeter/greeterpb/$$f > $$tmp/$$f.want; \
		if ! diff -u $$tmp/$$f.want $$tmp/$$f.got; then echo "protoc-check: $$f differs from protoc's output"; exit 1; fi; \
	done; \
	echo "protoc-check: $$(protoc --version) --micro_out matches the committed example"

test: fmt-check vet api-check protoc-check
	@for m in $(MODULES); do echo "go test -race ($$m)"; (cd $$m && $(GO) test -race -count=1 ./...) || exit 1; done
	@$(MAKE) --no-print-directory fuzz

# Fuzz targets, as package:target. Each runs for FUZZTIME; what it finds
# is written to the package's testdata/fuzz, to be kept as a seed. A
# package with a go.mod of its own (a plug-in module) is fuzzed from there.
FUZZTIME ?= 5s
FUZZ := ./internal/transport:FuzzServerConn ./internal/transport:FuzzClientConn \
	./internal/transport:FuzzRecvBuffer ./internal/transport:FuzzDecodeTimeout \
	./internal/transport:FuzzMetadata ./internal/transport:FuzzSniff ./internal/wire:FuzzMessage ./internal/wire:FuzzUnmarshalStatus \
	./runtime/compress:FuzzDecompress ./runtime/compress:FuzzRoundTrip \
	./runtime/broker/internal/brokerpb:FuzzUnmarshalVT ./gomicro/errors:FuzzParse \
	./runtime/registry/mdns:FuzzPacket ./runtime/registry/mdns:FuzzDecodeTXT ./runtime/reflection:FuzzRequest \
	./internal/webrpc:FuzzEnvelope ./internal/webrpc:FuzzTextReader ./internal/webrpc:FuzzGetQuery ./internal/connectclient:FuzzStreamingResponse \
	./internal/cli:FuzzFileSet ./plugins/etcd:FuzzDecode ./plugins/nats:FuzzDecodeHeader ./otel:FuzzExtract

# Go 1.26's fuzzing coordinator can fail a target with a bare "context
# deadline exceeded" when -fuzztime ends under load (golang/go#75804, fixed
# in Go 1.27); such a run, which wrote no failing input, is run once more.
fuzz:
	@for f in $(FUZZ); do pkg=$${f%%:*}; target=$${f##*:}; log=/tmp/fuzz.$$$$.log; dir=.; \
		if [ -f $$pkg/go.mod ]; then dir=$$pkg; pkg=.; fi; \
		echo "go test -fuzz $$target -fuzztime $(FUZZTIME) $${f%%:*}"; \
		for try in 1 2; do \
			if (cd $$dir && $(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$pkg) >$$log 2>&1; then break; fi; \
			if [ $$try = 1 ] && grep -q 'context deadline exceeded' $$log && ! grep -q 'Failing input written' $$log; then \
				echo "fuzz: $$target hit the -fuzztime deadline race of golang/go#75804 without a failing input; again"; continue; fi; \
			cat $$log; rm -f $$log; exit 1; \
		done; \
		rm -f $$log; \
	done

# conformance: the runner in server mode against conformance/cmd/server and
# in client mode against conformance/cmd/client, printing its report; make
# test runs the same test; every case must pass.
conformance:
	cd conformance && $(GO) test -count=1 -run '^TestConformance$$' -v .

# soak: mixed unary and streaming load from clients that come and go while
# the attack classes take turns, sampling goroutines, heap and RSS every
# SOAK_INTERVAL; it fails unless they end flat and every well-behaved call
# got its answer. make test runs the same test for 20 s with -race.
SOAK_DURATION ?= 10m
SOAK_INTERVAL ?= 30s
soak:
	$(GO) test -count=1 -run '^TestSoak$$' -v -timeout 30m ./internal/soak \
		-soak.duration $(SOAK_DURATION) -soak.interval $(SOAK_INTERVAL) -soak.workers 16

# bench: the Go benchmarks side by side (ours, grpc-go, connect-go) with
# speed-ups over grpc-go, then each server pinned to one core under a fixed
# h2load load. h2load is installed when missing and we are root with apt-get;
# otherwise compare falls back to its Go load generator.
bench:
	@command -v h2load >/dev/null || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
		DEBIAN_FRONTEND=noninteractive apt-get install -y nghttp2-client >/dev/null 2>&1 || \
		{ apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y nghttp2-client >/dev/null 2>&1; } || \
		echo "bench: could not install h2load; using the Go load generator"
	cd bench && $(GO) test -run '^$$' -bench . -benchmem -count 1 -benchtime 2s . | $(GO) run ./cmd/benchratio
	cd bench && $(GO) run ./cmd/compare
	cd otel && $(GO) test -run '^$$' -bench . -benchmem -count 3 .
