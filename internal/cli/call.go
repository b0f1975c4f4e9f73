package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/selector"
	"github.com/protoc-gen-micro/micro/runtime/spec"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

var callCmd = &command{
	name:    "call",
	args:    "<service> <method> [json]",
	summary: "call a method with a JSON request, the schema found by reflection",
	help: `
<service> is the name in the registry (e.g. greeter); the call goes to a
node the selector picks, as a client's would, unless -address names one.
<method> is written as for describe: SayHello, Greeter.SayHello,
greeter.v1.Greeter.SayHello or /greeter.v1.Greeter/SayHello.

Unary and server-streaming methods take the request as the JSON argument
({} when omitted). Client-streaming and bidi methods take the JSON
argument as their only request or, without it, read requests from
standard input, one JSON object per line, until end of input. Responses
are printed as they arrive: indented JSON, or with -o json one compact
JSON object per line.

Examples:
  micro call greeter SayHello '{"name":"Alice"}'
  micro call greeter LotsOfReplies '{"name":"Bob"}'
  printf '{"name":"a"}\n{"name":"b"}\n' | micro call greeter Chat
  micro call -H x-caller:ops --timeout 2s greeter SayHello '{"name":"Alice"}'
`,
	flags: func(fs *flag.FlagSet, o *opts) {
		fs.StringVar(&o.address, "address", "", "call the server at host:port instead of a node found in the registry")
		fs.Var(&o.headers, "H", "request metadata as key:value (repeatable)")
	},
	run: runCall,
}

// maxLine bounds one request line read from standard input, as the
// client bounds a message.
const maxLine = maxRecvMsgSize

func runCall(ctx context.Context, e *env, args []string) error {
	if len(args) < 2 || len(args) > 3 {
		return usagef("want <service> <method> [json], got %d arguments", len(args))
	}
	service, method := args[0], args[1]
	started := time.Now()
	s, err := e.fetchSchema(ctx, service)
	if err != nil {
		return err
	}
	d, err := s.find(method, true)
	if err != nil {
		return err
	}
	md := d.(protoreflect.MethodDescriptor)
	m := specOf(md)
	c := caller{e: e, service: service, m: m, md: md, started: started, types: dynamicpb.NewTypes(s.files)}
	if len(e.headers) > 0 {
		out := metadata.MD{}
		for _, h := range e.headers {
			k, v, _ := strings.Cut(h, ":")
			out.Append(strings.TrimSpace(k), strings.TrimSpace(v))
		}
		ctx = metadata.NewOutgoingContext(ctx, out)
	}
	var body *string
	if len(args) == 3 {
		body = &args[2]
	}
	switch m.StreamType {
	case spec.Unary:
		return c.unary(ctx, body)
	case spec.ServerStream:
		return c.serverStream(ctx, body)
	}
	return c.clientStream(ctx, body)
}

// caller makes one call of a method known by reflection.
type caller struct {
	e       *env
	service string
	m       *spec.Method
	md      protoreflect.MethodDescriptor
	started time.Time
	types   *dynamicpb.Types
}

// request decodes a JSON request; n numbers it in messages (0: the
// argument).
func (c *caller) request(js string, n int) (*dynamicpb.Message, error) {
	req := dynamicpb.NewMessage(c.md.Input())
	if err := (protojson.UnmarshalOptions{Resolver: c.types}).Unmarshal([]byte(js), req); err != nil {
		where := "the JSON argument"
		if n > 0 {
			where = fmt.Sprintf("line %d of standard input", n)
		}
		return nil, fmt.Errorf("%s is not a %s in JSON: %w", where, c.md.Input().FullName(), err)
	}
	return req, nil
}

// print prints a response: indented, or with -o json on one line.
// protojson varies its whitespace on purpose; encoding/json makes it
// stable for scripts and tests.
func (c *caller) print(m proto.Message) error {
	b, err := protojson.MarshalOptions{Resolver: c.types}.Marshal(m)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if c.e.output == "text" {
		err = json.Indent(&out, b, "", "  ")
	} else {
		err = json.Compact(&out, b)
	}
	if err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = c.e.stdout.Write(out.Bytes())
	return err
}

// failed explains the call's error: no node, or the RPC's status.
func (c *caller) failed(err error) error {
	if errors.Is(err, selector.ErrNoneAvailable) {
		return c.e.notFound(c.service, time.Since(c.started), err)
	}
	to := c.service
	if c.e.address != "" {
		to = c.e.address
	}
	return rpcError(fmt.Sprintf("%s on %s", c.m.Procedure, to), err)
}

func (c *caller) unary(ctx context.Context, body *string) error {
	js := "{}"
	if body != nil {
		js = *body
	}
	req, err := c.request(js, 0)
	if err != nil {
		return err
	}
	rsp := dynamicpb.NewMessage(c.md.Output())
	if err := c.e.cli.Call(ctx, c.service, c.m, req, rsp, c.e.callOpts()...); err != nil {
		return c.failed(err)
	}
	return c.print(rsp)
}

func (c *caller) serverStream(ctx context.Context, body *string) error {
	js := "{}"
	if body != nil {
		js = *body
	}
	req, err := c.request(js, 0)
	if err != nil {
		return err
	}
	st, err := c.e.cli.Stream(ctx, c.service, c.m, c.e.callOpts()...)
	if err != nil {
		return c.failed(err)
	}
	defer st.Close()
	if err := st.SendMsg(req); err != nil && err != io.EOF {
		return c.recvAll(st) // the call's status comes with RecvMsg
	}
	if err := st.CloseSend(); err != nil {
		return c.failed(err)
	}
	return c.recvAll(st)
}

// recvAll prints the responses until the call ends.
func (c *caller) recvAll(st interface{ RecvMsg(any) error }) error {
	for {
		rsp := dynamicpb.NewMessage(c.md.Output())
		err := st.RecvMsg(rsp)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return c.failed(err)
		}
		if err := c.print(rsp); err != nil {
			return err
		}
	}
}

// recvOne prints the one response of a client stream.
func (c *caller) recvOne(st interface{ RecvMsg(any) error }) error {
	rsp := dynamicpb.NewMessage(c.md.Output())
	if err := st.RecvMsg(rsp); err != nil {
		return c.failed(err)
	}
	return c.print(rsp)
}

func (c *caller) clientStream(ctx context.Context, body *string) error {
	var first *dynamicpb.Message
	if body != nil {
		var err error
		if first, err = c.request(*body, 0); err != nil {
			return err
		}
	}
	st, err := c.e.cli.Stream(ctx, c.service, c.m, c.e.callOpts()...)
	if err != nil {
		return c.failed(err)
	}
	defer st.Close()
	// Requests are sent while responses are printed: a bidi server may
	// answer each before the next is read.
	bad := make(chan error, 1)
	go c.sendAll(st, first, bad)
	if c.m.StreamType == spec.ClientStream {
		err = c.recvOne(st)
	} else {
		err = c.recvAll(st)
	}
	select {
	case b := <-bad:
		return b // a bad request line ended the call
	default:
		// The call ended by itself, perhaps while standard input was
		// still being read.
	}
	return err
}

// sendAll sends first, or else the lines of standard input, then
// half-closes the stream. A line that is not a request ends the call: its
// error goes to bad before the stream is closed, which makes the
// receiver return. If the call fails, its status comes with RecvMsg.
func (c *caller) sendAll(st interface {
	SendMsg(any) error
	CloseSend() error
	Close() error
}, first *dynamicpb.Message, bad chan<- error) {
	fail := func(err error) {
		bad <- err
		_ = st.Close()
	}
	if first != nil {
		if err := st.SendMsg(first); err == nil {
			_ = st.CloseSend()
		}
		return
	}
	sc := bufio.NewScanner(c.e.stdin)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		req, err := c.request(line, n)
		if err != nil {
			fail(err)
			return
		}
		if err := st.SendMsg(req); err != nil {
			return
		}
	}
	if err := sc.Err(); err != nil {
		fail(fmt.Errorf("reading requests from standard input: %w", err))
		return
	}
	_ = st.CloseSend()
}
