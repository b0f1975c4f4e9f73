package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/protoc-gen-micro/micro/internal/brokerkit"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

var publishCmd = &command{
	name:    "publish",
	args:    "<topic> [json] [-type <message>]",
	summary: "publish an event to a topic's subscribers",
	help: `
Publishes one event with the broker a service would use (MICRO_BROKER; by
default the direct broker, which finds the topic's subscribers in the
registry) and returns once it is delivered. The JSON argument is the
event; without it, the event is read from standard input.

With -type (a fully qualified message name, e.g. greeter.v1.HelloReply)
the JSON is checked against that message, whose schema micro finds by
reflection on the services in the registry (a few nodes in turn), and the
event is sent as protobuf, as a typed publisher sends it. Without -type the
JSON is sent as it is, with the header content-type: application/json;
subscribers made with broker.Subscribe decode it with protojson all the
same, into their own message type.

Fails (status 1) when the topic has no subscriber.
`,
	flags: func(fs *flag.FlagSet, o *opts) {
		fs.StringVar(&o.typ, "type", "", "the event's message type, fully qualified; sent as protobuf")
	},
	run: runPublish,
}

// maxSchemaNodes bounds the nodes asked for -type's schema.
const maxSchemaNodes = 8

func runPublish(ctx context.Context, e *env, args []string) error {
	if len(args) < 1 || len(args) > 2 {
		return usagef("want <topic> [json], got %d arguments", len(args))
	}
	topic := args[0]
	var js []byte
	if len(args) == 2 {
		js = []byte(args[1])
	} else {
		b, err := io.ReadAll(io.LimitReader(e.stdin, maxRecvMsgSize+1))
		if err != nil {
			return fmt.Errorf("reading the event from standard input: %w", err)
		}
		if len(b) > maxRecvMsgSize {
			return fmt.Errorf("the event on standard input is larger than %d bytes", maxRecvMsgSize)
		}
		js = bytes.TrimSpace(b)
	}
	msg := &broker.Message{}
	kind := "application/json"
	if e.typ == "" {
		if !json.Valid(js) {
			return fmt.Errorf("the event is not valid JSON: %s", js)
		}
		msg.Header = map[string]string{brokerkit.HeaderContentType: brokerkit.ContentTypeOf("json")}
		msg.Body = js
	} else {
		md, err := e.findMessage(ctx, e.typ)
		if err != nil {
			return err
		}
		m := dynamicpb.NewMessage(md)
		if err := protojson.Unmarshal(js, m); err != nil {
			return fmt.Errorf("the event is not a %s in JSON: %w", md.FullName(), err)
		}
		if msg.Body, err = proto.Marshal(m); err != nil {
			return err
		}
		kind = "protobuf " + string(md.FullName())
	}
	b, err := e.broker()
	if err != nil {
		return err
	}
	if err := b.Publish(ctx, topic, msg, broker.WithRequireSubscribers()); err != nil {
		return fmt.Errorf("publishing to %q with the %s broker (subscribers looked up in %s): %w", topic, b, e.where(), err)
	}
	if e.output == "json" {
		return writeJSON(e.stdout, map[string]any{"topic": topic, "encoding": kind, "bytes": len(msg.Body)})
	}
	_, err = fmt.Fprintf(e.stdout, "published to %s: %d bytes, %s\n", topic, len(msg.Body), kind)
	return err
}

// findMessage finds the descriptor of the message named by reflection on
// the nodes of the services in the registry, trying at most
// maxSchemaNodes of them.
func (e *env) findMessage(ctx context.Context, name string) (protoreflect.MessageDescriptor, error) {
	if !protoreflect.FullName(name).IsValid() || !strings.Contains(name, ".") {
		return nil, usagef("-type %q: want a fully qualified message name, e.g. greeter.v1.HelloReply", name)
	}
	r, err := e.registry()
	if err != nil {
		return nil, err
	}
	svcs, err := r.ListServices(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing services in %s to find %s: %w", e.where(), name, err)
	}
	sortServices(svcs)
	var errs []error
	tried := 0
	for _, s := range svcs {
		if strings.HasPrefix(s.Name, "micro.broker.") {
			continue // the direct broker's subscriptions serve no reflection
		}
		for _, n := range s.Nodes {
			if tried == maxSchemaNodes {
				break
			}
			tried++
			md, err := e.messageFrom(ctx, s.Name, n.Address, name)
			if err == nil {
				return md, nil
			}
			errs = append(errs, fmt.Errorf("%s at %s: %w", s.Name, n.Address, err))
		}
	}
	if tried == 0 {
		return nil, fmt.Errorf("no service in %s to ask for %s by reflection", e.where(), name)
	}
	return nil, fmt.Errorf("no node of the %d asked knows message %s by reflection: %w", tried, name, errors.Join(errs...))
}

// messageFrom asks the node at address for the message's schema.
func (e *env) messageFrom(ctx context.Context, service, address, name string) (protoreflect.MessageDescriptor, error) {
	r, err := e.newReflector(ctx, service, address)
	if err != nil {
		return nil, err
	}
	defer r.done()
	if err := r.fetchSymbol(name); err != nil {
		return nil, err
	}
	files, err := r.set.build()
	if err != nil {
		return nil, err
	}
	d, err := files.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		return nil, err
	}
	md, ok := d.(protoreflect.MessageDescriptor)
	if !ok {
		return nil, fmt.Errorf("%s is not a message", name)
	}
	return md, nil
}
