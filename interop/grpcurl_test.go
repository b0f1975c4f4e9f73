package interop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/service"
)

// readmeAddress is the server address in the README's grpcurl commands,
// which the test replaces with its own service's.
const readmeAddress = "127.0.0.1:8080"

// TestGrpcurl runs the grpcurl commands of the README, as written there,
// from the repository root against the greeter service, with grpcurl built
// at the version go.mod pins and no .proto files: they work through server
// reflection. Then the call command on the server-streaming method, to
// show that streams work through grpcurl too.
func TestGrpcurl(t *testing.T) {
	leakcheck.Check(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	readme := readmeGrpcurl(t, filepath.Join(root, "README.md"))
	bin := buildTool(t, "github.com/fullstorydev/grpcurl/cmd/grpcurl")
	addr := serveGreeter(t)

	var call []string
	for _, cmd := range readme {
		args := slices.Clone(cmd)
		i := slices.Index(args, readmeAddress)
		if i < 0 {
			t.Fatalf("the README's grpcurl command %q names no %s to replace", cmd, readmeAddress)
		}
		args[i] = addr
		switch verb := args[len(args)-1]; {
		case verb == "list":
			t.Run("list", func(t *testing.T) {
				got := strings.Fields(runTool(t, bin, root, args))
				if !slices.Equal(got, greeterServices) {
					t.Errorf("grpcurl %q printed %q, want %q", args, got, greeterServices)
				}
			})
		case len(args) > 1 && args[len(args)-2] == "describe":
			t.Run("describe", func(t *testing.T) {
				out := runTool(t, bin, root, args)
				for _, want := range []string{"greeter.v1.Greeter is a service:", "service Greeter {",
					"rpc SayHello ( .greeter.v1.HelloRequest ) returns ( .greeter.v1.HelloReply )"} {
					if !strings.Contains(out, want) {
						t.Errorf("grpcurl %q printed\n%s\nwithout %q", args, out, want)
					}
				}
			})
		default:
			call = args
			t.Run("SayHello", func(t *testing.T) {
				got := greetings(t, runTool(t, bin, root, args))
				want := []greeting{{Message: "Hello World"}}
				if !slices.Equal(got, want) {
					t.Errorf("grpcurl printed %+v, want %+v", got, want)
				}
			})
		}
	}
	if len(readme) != 3 || call == nil {
		t.Fatalf("the README's grpcurl commands %q: want list, describe and a call", readme)
	}

	t.Run("LotsOfReplies", func(t *testing.T) {
		stream := slices.Clone(call)
		last := len(stream) - 1
		if stream[last] != "greeter.v1.Greeter/SayHello" {
			t.Fatalf("the README's grpcurl command %q does not end with the method greeter.v1.Greeter/SayHello", call)
		}
		stream[last] = "greeter.v1.Greeter/LotsOfReplies"
		got := greetings(t, runTool(t, bin, root, stream))
		want := []greeting{{Message: "1: Hello World"}, {Message: "2: Bonjour World"}, {Message: "3: Hallo World"}}
		if !slices.Equal(got, want) {
			t.Errorf("grpcurl printed %+v, want %+v", got, want)
		}
	})
}

// greeterServices are the services of the greeter service, as reflection
// lists them.
var greeterServices = []string{"greeter.v1.Greeter", "grpc.health.v1.Health",
	"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"}

// greeting is a HelloReply as grpcurl prints it, in protobuf's JSON form.
type greeting struct {
	Message string `json:"message"`
}

// readmeGrpcurl returns the arguments of the grpcurl commands in the
// README at path: each line of a fenced code block that starts with
// "grpcurl ", with the lines it continues onto with a trailing backslash,
// split as a shell splits them.
func readmeGrpcurl(t *testing.T, path string) [][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cmds [][]string
	var cmd []string
	fenced := false
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		if cmd == nil && (!fenced || !strings.HasPrefix(line, "grpcurl ")) {
			continue
		}
		more := strings.HasSuffix(line, `\`)
		cmd = append(cmd, strings.TrimSuffix(line, `\`))
		if more {
			continue
		}
		words, err := shellWords(strings.Join(cmd, " "))
		if err != nil {
			t.Fatalf("a grpcurl command in %s: %v", path, err)
		}
		cmds = append(cmds, words[1:])
		cmd = nil
	}
	if cmds == nil {
		t.Fatalf("%s has no code line starting with \"grpcurl \"", path)
	}
	return cmds
}

// shellWords splits s into words as a POSIX shell does for the commands the
// README shows: blanks separate words, single quotes keep what they enclose
// as it is. Other quoting is refused rather than guessed at.
func shellWords(s string) ([]string, error) {
	var words []string
	var word strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case quoted && r == '\'':
			quoted = false
		case quoted:
			word.WriteRune(r)
		case r == '\'':
			quoted, inWord = true, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		case strings.ContainsRune("\"\\$`", r):
			return nil, fmt.Errorf("%q: only single quotes are supported", s)
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("%q: unterminated quote", s)
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, nil
}

// buildTool builds a tool of this module's go.mod (its tool directives),
// at the version pinned there, into a temporary directory.
func buildTool(t *testing.T, pkg string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), path.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// serveGreeter starts the greeter as a service (so with health and
// reflection) on loopback, with a registry of its own, stopped when the
// test ends, and returns its address.
func serveGreeter(t *testing.T, opts ...service.Option) string {
	t.Helper()
	svc := service.NewService(append([]service.Option{service.WithName("greeter"),
		service.WithAddress("127.0.0.1:0"), service.WithSignal(false),
		service.WithRegistry(memory.NewRegistry())}, opts...)...)
	if err := greeterpb.RegisterGreeterHandler(svc.Server(), greeter{}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := svc.Stop(); err != nil {
			t.Error(err)
		}
	})
	return svc.Server().Address()
}

// runTool runs bin with args in dir and returns what it printed; it fails
// the test if bin fails.
func runTool(t *testing.T, bin, dir string, args []string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %q: %v\nstdout:\n%s\nstderr:\n%s", path.Base(bin), args, err, &stdout, &stderr)
	}
	return stdout.String()
}

// greetings returns the replies grpcurl printed; it fails the test if
// grpcurl printed anything else.
func greetings(t *testing.T, out string) []greeting {
	t.Helper()
	var got []greeting
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	for {
		var g greeting
		if err := dec.Decode(&g); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("grpcurl printed what is not a HelloReply: %v\n%s", err, out)
		}
		got = append(got, g)
	}
	return got
}

// greeter answers SayHello and LotsOfReplies as the example server does.
type greeter struct {
	greeterpb.UnimplementedGreeterHandler
}

func (greeter) SayHello(_ context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	out.Message = "Hello " + in.Name
	return nil
}

func (greeter) LotsOfReplies(_ context.Context, in *greeterpb.HelloRequest, stream greeterpb.Greeter_LotsOfRepliesHandlerStream) error {
	for i, hello := range []string{"Hello", "Bonjour", "Hallo"} {
		if err := stream.Send(&greeterpb.HelloReply{Message: fmt.Sprintf("%d: %s %s", i+1, hello, in.Name)}); err != nil {
			return err
		}
	}
	return nil
}

func (greeter) LotsOfGreetings(_ context.Context, stream greeterpb.Greeter_LotsOfGreetingsHandlerStream) error {
	var names []string
	for {
		in, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&greeterpb.HelloReply{Message: "Hello " + strings.Join(names, ", ")})
		}
		if err != nil {
			return err
		}
		names = append(names, in.Name)
	}
}

func (greeter) Chat(_ context.Context, stream greeterpb.Greeter_ChatHandlerStream) error {
	for {
		in, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&greeterpb.HelloReply{Message: "Hello " + in.Name}); err != nil {
			return err
		}
	}
}
