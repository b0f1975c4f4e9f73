package interop_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/protoc-gen-micro/micro/internal/grpcapi"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	// grpc-go's health and reflection packages register the same files
	// and names as internal/grpcapi's schemas; linking them here, with our
	// services running in the same test binary, shows that nothing panics
	// on a duplicate registration.
	_ "google.golang.org/grpc/health"
	_ "google.golang.org/grpc/health/grpc_health_v1"
	_ "google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
)

// TestSchemasMatchGrpcGo compares our health and reflection schemas with
// grpc-go's, which registered themselves globally, all but the comments:
// names, numbers and options are the wire contract.
func TestSchemasMatchGrpcGo(t *testing.T) {
	for _, path := range []string{grpcapi.HealthFile, grpcapi.ReflectionV1File, grpcapi.ReflectionV1AlphaFile} {
		theirs, err := protoregistry.GlobalFiles.FindFileByPath(path)
		if err != nil {
			t.Fatalf("grpc-go's %s: %v", path, err)
		}
		ours, err := grpcapi.Files().FindFileByPath(path)
		if err != nil {
			t.Fatal(err)
		}
		a, b := protodesc.ToFileDescriptorProto(ours), protodesc.ToFileDescriptorProto(theirs)
		a.SourceCodeInfo, b.SourceCodeInfo = nil, nil
		if !proto.Equal(a, b) {
			t.Errorf("%s differs from grpc-go's:\nours:   %v\ntheirs: %v", path, a, b)
		}
	}
}

// TestGrpcGoReflectionClients asks our reflection services with grpc-go's
// generated clients of v1 and v1alpha.
func TestGrpcGoReflectionClients(t *testing.T) {
	leakcheck.Check(t)
	addr := serveGreeter(t)
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	t.Run("v1", func(t *testing.T) {
		st, err := reflectionv1.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ask := func(req *reflectionv1.ServerReflectionRequest) *reflectionv1.ServerReflectionResponse {
			t.Helper()
			if err := st.Send(req); err != nil {
				t.Fatal(err)
			}
			rsp, err := st.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(rsp.GetOriginalRequest(), req) || rsp.GetValidHost() != req.GetHost() {
				t.Fatalf("response %v does not repeat request %v", rsp, req)
			}
			return rsp
		}
		rsp := ask(&reflectionv1.ServerReflectionRequest{Host: addr, MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}})
		var names []string
		for _, s := range rsp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		if !slices.Equal(names, greeterServices) {
			t.Errorf("list_services %q, want %q", names, greeterServices)
		}
		rsp = ask(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "greeter.v1.Greeter.SayHello"}})
		if got := fileNames(t, rsp.GetFileDescriptorResponse().GetFileDescriptorProto()); len(got) == 0 || got[0] != "greeter.proto" {
			t.Errorf("file_containing_symbol: %v", rsp)
		}
		rsp = ask(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_FileByFilename{FileByFilename: grpcapi.HealthFile}})
		if got := fileNames(t, rsp.GetFileDescriptorResponse().GetFileDescriptorProto()); !slices.Equal(got, []string{grpcapi.HealthFile}) {
			t.Errorf("file_by_filename %s: %v", grpcapi.HealthFile, rsp)
		}
		rsp = ask(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_FileByFilename{FileByFilename: "no/such.proto"}})
		if codes.Code(rsp.GetErrorResponse().GetErrorCode()) != codes.NotFound {
			t.Errorf("unknown file: %v", rsp)
		}
		if err := st.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err == nil || !strings.Contains(err.Error(), "EOF") {
			t.Errorf("after CloseSend: %v, want EOF", err)
		}
	})

	t.Run("v1alpha", func(t *testing.T) {
		st, err := reflectionv1alpha.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ask := func(req *reflectionv1alpha.ServerReflectionRequest) *reflectionv1alpha.ServerReflectionResponse {
			t.Helper()
			if err := st.Send(req); err != nil {
				t.Fatal(err)
			}
			rsp, err := st.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(rsp.GetOriginalRequest(), req) {
				t.Fatalf("response %v does not repeat request %v", rsp, req)
			}
			return rsp
		}
		rsp := ask(&reflectionv1alpha.ServerReflectionRequest{MessageRequest: &reflectionv1alpha.ServerReflectionRequest_ListServices{}})
		var names []string
		for _, s := range rsp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		if !slices.Equal(names, greeterServices) {
			t.Errorf("list_services %q, want %q", names, greeterServices)
		}
		rsp = ask(&reflectionv1alpha.ServerReflectionRequest{MessageRequest: &reflectionv1alpha.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "greeter.v1.HelloReply"}})
		if got := fileNames(t, rsp.GetFileDescriptorResponse().GetFileDescriptorProto()); len(got) == 0 || got[0] != "greeter.proto" {
			t.Errorf("file_containing_symbol: %v", rsp)
		}
		rsp = ask(&reflectionv1alpha.ServerReflectionRequest{MessageRequest: &reflectionv1alpha.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "no.Such"}})
		if codes.Code(rsp.GetErrorResponse().GetErrorCode()) != codes.NotFound {
			t.Errorf("unknown symbol: %v", rsp)
		}
	})
}

func fileNames(t *testing.T, files [][]byte) []string {
	t.Helper()
	var names []string
	for _, b := range files {
		var fdp descriptorpb.FileDescriptorProto
		if err := proto.Unmarshal(b, &fdp); err != nil {
			t.Fatal(err)
		}
		names = append(names, fdp.GetName())
	}
	return names
}

// TestGrpcurlReflection runs grpcurl, with no .proto files, against the
// greeter service: list and describe, and a JSON call of every kind of
// RPC.
func TestGrpcurlReflection(t *testing.T) {
	leakcheck.Check(t)
	bin := buildTool(t, "github.com/fullstorydev/grpcurl/cmd/grpcurl")
	addr := serveGreeter(t)
	dir := t.TempDir() // no .proto files anywhere near
	grpcurl := func(t *testing.T, args ...string) string {
		t.Helper()
		return runTool(t, bin, dir, append([]string{"-plaintext"}, args...))
	}
	contains := func(t *testing.T, out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("grpcurl printed\n%s\nwithout %q", out, w)
			}
		}
	}

	t.Run("list", func(t *testing.T) {
		if got := strings.Fields(grpcurl(t, addr, "list")); !slices.Equal(got, greeterServices) {
			t.Errorf("list: %q", got)
		}
		want := []string{"greeter.v1.Greeter.Chat", "greeter.v1.Greeter.LotsOfGreetings", "greeter.v1.Greeter.LotsOfReplies", "greeter.v1.Greeter.SayHello"}
		if got := strings.Fields(grpcurl(t, addr, "list", "greeter.v1.Greeter")); !slices.Equal(got, want) {
			t.Errorf("list greeter.v1.Greeter: %q, want %q", got, want)
		}
		want = []string{"grpc.health.v1.Health.Check", "grpc.health.v1.Health.List", "grpc.health.v1.Health.Watch"}
		if got := strings.Fields(grpcurl(t, addr, "list", "grpc.health.v1.Health")); !slices.Equal(got, want) {
			t.Errorf("list grpc.health.v1.Health: %q, want %q", got, want)
		}
	})
	t.Run("describe", func(t *testing.T) {
		contains(t, grpcurl(t, addr, "describe", "greeter.v1.Greeter"), "greeter.v1.Greeter is a service:",
			"rpc Chat ( stream .greeter.v1.HelloRequest ) returns ( stream .greeter.v1.HelloReply );")
		contains(t, grpcurl(t, addr, "describe", "greeter.v1.Greeter.LotsOfReplies"), "greeter.v1.Greeter.LotsOfReplies is a method:",
			"rpc LotsOfReplies ( .greeter.v1.HelloRequest ) returns ( stream .greeter.v1.HelloReply );")
		contains(t, grpcurl(t, addr, "describe", "greeter.v1.HelloRequest"), "greeter.v1.HelloRequest is a message:",
			"message HelloRequest {", "string name = 1;")
		// In this binary grpc-go registered health.proto globally, so that
		// is the copy served (the core module's tests check ours).
		contains(t, grpcurl(t, addr, "describe", "grpc.health.v1.HealthCheckResponse"), "grpc.health.v1.HealthCheckResponse is a message:",
			"SERVICE_UNKNOWN = 3;")
	})
	t.Run("calls", func(t *testing.T) {
		for _, c := range []struct {
			method, data string
			want         []greeting
		}{
			{"SayHello", `{"name":"Ada"}`, []greeting{{"Hello Ada"}}},
			{"LotsOfReplies", `{"name":"Ada"}`, []greeting{{"1: Hello Ada"}, {"2: Bonjour Ada"}, {"3: Hallo Ada"}}},
			{"LotsOfGreetings", `{"name":"Ada"} {"name":"Grace"}`, []greeting{{"Hello Ada, Grace"}}},
			{"Chat", `{"name":"Ada"} {"name":"Grace"}`, []greeting{{"Hello Ada"}, {"Hello Grace"}}},
		} {
			got := greetings(t, grpcurl(t, "-d", c.data, addr, "greeter.v1.Greeter/"+c.method))
			if !slices.Equal(got, c.want) {
				t.Errorf("%s: %+v, want %+v", c.method, got, c.want)
			}
		}
		contains(t, grpcurl(t, addr, "grpc.health.v1.Health/Check"), `"status": "SERVING"`)
	})
}
