package codegen_test

import (
	"context"
	"strings"
	"testing"

	"github.com/bufbuild/protocompile"
	"github.com/protoc-gen-micro/micro/internal/codegen"
)

// header starts the .proto files of the collision cases, which all belong
// to the Go package example.com/x; otherHeader starts those of a second
// proto package in that Go package, where a message may have a service's
// name.
const (
	header = `syntax = "proto3";
package x.v1;
option go_package = "example.com/x;x";
`
	otherHeader = `syntax = "proto3";
package x.other;
option go_package = "example.com/x;x";
`
)

var collisionCases = []struct {
	name     string
	files    map[string]string // .proto sources; generate.proto is generated
	generate []string          // files to generate; generate.proto if nil
	want     []string          // the lines of the error, in order
}{
	{
		name: "message vs client interface",
		files: map[string]string{"generate.proto": header + `
service Greeter { rpc SayHello(Req) returns (Req); }
message Req {}
message GreeterService {}
`},
		want: []string{`generate.proto: generated name "GreeterService" of service x.v1.Greeter collides with message x.v1.GreeterService`},
	},
	{
		name: "message vs unimplemented handler",
		files: map[string]string{"generate.proto": header + `
service Greeter { rpc SayHello(Req) returns (Req); }
message Req {}
message UnimplementedGreeterHandler {}
`},
		want: []string{`generate.proto: generated name "UnimplementedGreeterHandler" of service x.v1.Greeter collides with message x.v1.UnimplementedGreeterHandler`},
	},
	{
		name: "enum vs name constant",
		files: map[string]string{"generate.proto": header + `
service Greeter { rpc SayHello(Req) returns (Req); }
message Req {}
enum GreeterName { GREETER_NAME_UNSPECIFIED = 0; }
`},
		want: []string{`generate.proto: generated name "GreeterName" of service x.v1.Greeter collides with enum x.v1.GreeterName`},
	},
	{
		// A nested enum's values are prefixed with the message's name.
		name: "enum value vs stream type",
		files: map[string]string{
			"generate.proto": header + `
service Greeter { rpc Chat(stream Req) returns (stream Req); }
message Req {}
`,
			"other.proto": otherHeader + `
message Greeter { enum Kind { ChatClientStream = 0; } }
`},
		generate: []string{"generate.proto", "other.proto"},
		want:     []string{`generate.proto: generated name "Greeter_ChatClientStream" of method x.v1.Greeter.Chat collides with enum value x.other.Greeter.Kind.ChatClientStream in other.proto`},
	},
	{
		name: "message vs method descriptor",
		files: map[string]string{"generate.proto": header + `
service Greeter { rpc SayHello(GreeterSayHelloMethod) returns (GreeterSayHelloMethod); }
message GreeterSayHelloMethod {}
`},
		want: []string{`generate.proto: generated name "GreeterSayHelloMethod" of method x.v1.Greeter.SayHello collides with message x.v1.GreeterSayHelloMethod`},
	},
	{
		// Chat's client stream is ChatClient's handler stream under
		// go-micro's name.
		name: "two methods make the same stream type",
		files: map[string]string{"generate.proto": header + `
service Greeter {
  rpc Chat(stream Req) returns (stream Req);
  rpc ChatClient(stream Req) returns (stream Req);
}
message Req {}
`},
		want: []string{`generate.proto: generated name "Greeter_ChatClientStream" of method x.v1.Greeter.ChatClient collides with the same name generated for method x.v1.Greeter.Chat`},
	},
	{
		name: "two methods with one Go name",
		files: map[string]string{"generate.proto": header + `
service Greeter {
  rpc SayHello(Req) returns (Req);
  rpc say_hello(Req) returns (Req);
}
message Req {}
`},
		want: []string{`generate.proto: generated name "SayHello" of method x.v1.Greeter.say_hello collides with the same name generated for method x.v1.Greeter.SayHello`},
	},
	{
		// Only the first name two elements share is reported.
		name: "two services with one Go name",
		files: map[string]string{"generate.proto": header + `
service Greeter { rpc Ping(Req) returns (Req); }
service greeter { rpc Pong(Req) returns (Req); }
message Req {}
`},
		want: []string{`generate.proto: generated name "GreeterName" of service x.v1.greeter collides with the same name generated for service x.v1.Greeter`},
	},
	{
		name: "service handler vs unimplemented handler of another",
		files: map[string]string{"generate.proto": header + `
service Greeter { rpc Ping(Req) returns (Req); }
service UnimplementedGreeter { rpc Pong(Req) returns (Req); }
message Req {}
`},
		want: []string{`generate.proto: generated name "UnimplementedGreeterHandler" of service x.v1.UnimplementedGreeter collides with the same name generated for service x.v1.Greeter`},
	},
	{
		name: "stream types of services in two files",
		files: map[string]string{
			"a.proto": header + `
import "generate.proto";
service Foo { rpc Bar_Baz(stream Req) returns (Req); }
`,
			"generate.proto": header + `
service Foo_Bar { rpc Baz(stream Req) returns (Req); }
message Req {}
`},
		generate: []string{"a.proto", "generate.proto"},
		want:     []string{`generate.proto: generated name "Foo_Bar_BazClientStream" of method x.v1.Foo_Bar.Baz collides with the same name generated for method x.v1.Foo.Bar_Baz in a.proto`},
	},
	{
		// other.proto is not generated in this run, but its Go code is
		// in the same package.
		name: "oneof wrapper of an imported file vs go-micro stream name",
		files: map[string]string{
			"generate.proto": header + `
import "other.proto";
service Greeter { rpc Chat(stream x.other.Req) returns (stream x.other.Req); }
`,
			"other.proto": otherHeader + `
message Req {}
message Greeter { oneof kind { string chat_stream = 1; } }
`},
		want: []string{`generate.proto: generated name "Greeter_ChatStream" of method x.v1.Greeter.Chat collides with oneof field x.other.Greeter.chat_stream in other.proto`},
	},
	{
		name: "every collision is reported",
		files: map[string]string{"generate.proto": header + `
service Greeter { rpc SayHello(Req) returns (Req); }
message Req {}
message GreeterService {}
message GreeterHandler {}
`},
		want: []string{
			`generate.proto: generated name "GreeterService" of service x.v1.Greeter collides with message x.v1.GreeterService`,
			`generate.proto: generated name "GreeterHandler" of service x.v1.Greeter collides with message x.v1.GreeterHandler`,
		},
	},
	{
		// A collision between files that are not generated is not
		// this run's to report.
		name: "between files not generated",
		files: map[string]string{
			"generate.proto": header + `
import "other.proto";
service Hello { rpc Ping(Req) returns (Req); }
`,
			"other.proto": header + `
service Greeter { rpc Ping(Req) returns (Req); }
message Req {}
message GreeterService {}
`},
	},
}

func TestCollisions(t *testing.T) {
	for _, c := range collisionCases {
		t.Run(c.name, func(t *testing.T) {
			generate := c.generate
			if generate == nil {
				generate = []string{"generate.proto"}
			}
			compiler := protocompile.Compiler{
				Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
					Accessor: protocompile.SourceAccessorFromMap(c.files),
				}),
			}
			compiled, err := compiler.Compile(context.Background(), generate...)
			if err != nil {
				t.Fatal(err)
			}
			resp, files := runPlugin(t, codegen.NewRequest("paths=source_relative", compiled...), false)
			if c.want == nil {
				if resp.Error != nil {
					t.Fatalf("plugin error: %s", resp.GetError())
				}
				if len(files) != len(generate) {
					t.Errorf("generated %d files, want %d", len(files), len(generate))
				}
				return
			}
			if got, want := resp.GetError(), strings.Join(c.want, "\n"); got != want {
				t.Errorf("error:\n%s\nwant:\n%s", got, want)
			}
			if len(files) != 0 {
				t.Errorf("generated %d files despite the error", len(files))
			}
		})
	}
}
