package interop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/server"
)

// readmeAddress is the server address in the README's grpcurl command,
// which the test replaces with its own server's.
const readmeAddress = "127.0.0.1:8080"

// TestGrpcurl runs the grpcurl command of the README, as written there,
// from the repository root against the greeter server, with grpcurl built
// at the version go.mod pins; then the same command on the server-streaming
// method, to show that streams work through grpcurl too.
func TestGrpcurl(t *testing.T) {
	leakcheck.Check(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	readme := readmeGrpcurl(t, filepath.Join(root, "README.md"))
	bin := buildGrpcurl(t)
	addr := serveGreeter(t)

	args := slices.Clone(readme)
	i := slices.Index(args, readmeAddress)
	if i < 0 {
		t.Fatalf("the README's grpcurl command %q names no %s to replace", readme, readmeAddress)
	}
	args[i] = addr

	t.Run("SayHello", func(t *testing.T) {
		got := runGrpcurl(t, bin, root, args)
		want := []greeting{{Message: "Hello World"}}
		if !slices.Equal(got, want) {
			t.Errorf("grpcurl printed %+v, want %+v", got, want)
		}
	})

	t.Run("LotsOfReplies", func(t *testing.T) {
		stream := slices.Clone(args)
		last := len(stream) - 1
		if stream[last] != "greeter.v1.Greeter/SayHello" {
			t.Fatalf("the README's grpcurl command %q does not end with the method greeter.v1.Greeter/SayHello", readme)
		}
		stream[last] = "greeter.v1.Greeter/LotsOfReplies"
		got := runGrpcurl(t, bin, root, stream)
		want := []greeting{{Message: "1: Hello World"}, {Message: "2: Bonjour World"}, {Message: "3: Hallo World"}}
		if !slices.Equal(got, want) {
			t.Errorf("grpcurl printed %+v, want %+v", got, want)
		}
	})
}

// greeting is a HelloReply as grpcurl prints it, in protobuf's JSON form.
type greeting struct {
	Message string `json:"message"`
}

// readmeGrpcurl returns the arguments of the grpcurl command in the README
// at path: the first line of a fenced code block that starts with
// "grpcurl ", and the lines it continues onto with a trailing backslash,
// split as a shell splits them.
func readmeGrpcurl(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
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
		if !more {
			break
		}
	}
	if cmd == nil {
		t.Fatalf("%s has no code line starting with \"grpcurl \"", path)
	}
	words, err := shellWords(strings.Join(cmd, " "))
	if err != nil {
		t.Fatalf("the grpcurl command in %s: %v", path, err)
	}
	return words[1:]
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

// buildGrpcurl builds grpcurl, at the version this module's go.mod pins
// (its tool directive), into a temporary directory.
func buildGrpcurl(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "grpcurl")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/fullstorydev/grpcurl/cmd/grpcurl")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build grpcurl: %v\n%s", err, out)
	}
	return bin
}

// serveGreeter starts a greeter server on loopback, stopped when the test
// ends, and returns its address.
func serveGreeter(t *testing.T) string {
	t.Helper()
	srv := server.NewServer(server.WithAddress("127.0.0.1:0"))
	if err := greeterpb.RegisterGreeterHandler(srv, greeter{}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	})
	return srv.Address()
}

// runGrpcurl runs grpcurl with args in dir and returns the replies it
// printed; it fails the test if grpcurl fails or prints anything else.
func runGrpcurl(t *testing.T, bin, dir string, args []string) []greeting {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("grpcurl %q: %v\nstdout:\n%s\nstderr:\n%s", args, err, &stdout, &stderr)
	}
	var got []greeting
	dec := json.NewDecoder(bytes.NewReader(stdout.Bytes()))
	dec.DisallowUnknownFields()
	for {
		var g greeting
		if err := dec.Decode(&g); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("grpcurl %q printed what is not a HelloReply: %v\n%s", args, err, &stdout)
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
