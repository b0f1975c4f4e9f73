package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/protoc-gen-micro/micro/runtime/spec"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

var describeCmd = &command{
	name:    "describe",
	args:    "<service> [symbol]",
	summary: "show the proto services, methods and messages a service serves, by reflection",
	help: `
<service> is the name in the registry (e.g. greeter). Without a symbol,
describes every proto service its node serves, with the messages of all
but the standard grpc.* services. A symbol is a proto service, method,
message or enum, fully qualified (greeter.v1.Greeter.SayHello) or by its
last parts (Greeter.SayHello, SayHello, HelloRequest); a method may also be
written as its path (/greeter.v1.Greeter/SayHello). call takes method
names the same way.

The schema comes from the node's server reflection (grpc.reflection.v1,
then v1alpha). With -o json, prints one JSON document.
`,
	flags: func(fs *flag.FlagSet, o *opts) {
		fs.StringVar(&o.address, "address", "", "ask the server at host:port instead of a node found in the registry")
	},
	run: runDescribe,
}

func runDescribe(ctx context.Context, e *env, args []string) error {
	if len(args) < 1 || len(args) > 2 {
		return usagef("want <service> [symbol], got %d arguments", len(args))
	}
	s, err := e.fetchSchema(ctx, args[0])
	if err != nil {
		return err
	}
	var d description
	if len(args) == 1 {
		for _, name := range s.services {
			sd, err := s.service(name)
			if err != nil {
				return err
			}
			d.addService(sd, !strings.HasPrefix(name, "grpc."))
		}
	} else {
		found, err := s.find(args[1], false)
		if err != nil {
			return err
		}
		switch x := found.(type) {
		case protoreflect.ServiceDescriptor:
			d.addService(x, true)
		case protoreflect.MethodDescriptor:
			d.addMethod(x)
		case protoreflect.MessageDescriptor:
			d.addMessage(x)
		case protoreflect.EnumDescriptor:
			d.addEnum(x)
		}
	}
	if e.output == "json" {
		return writeJSON(e.stdout, d.json(args[0]))
	}
	return d.print(e.stdout)
}

// service returns the descriptor of the proto service named.
func (s *schema) service(name string) (protoreflect.ServiceDescriptor, error) {
	d, err := s.files.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		return nil, fmt.Errorf("server reflection lists %s but sent no file defining it", name)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("server reflection lists %s, which its files define as a %T, not a service", name, d)
	}
	return sd, nil
}

// find resolves a symbol the user gave: fully qualified, or by its last
// dot-separated parts, or a method's path; methodOnly restricts it to
// methods. A symbol matching several is an error naming them.
func (s *schema) find(symbol string, methodOnly bool) (protoreflect.Descriptor, error) {
	name := strings.ReplaceAll(strings.TrimPrefix(symbol, "/"), "/", ".")
	if name == "" {
		return nil, usagef("an empty symbol")
	}
	matches := func(full protoreflect.FullName) bool {
		return string(full) == name || strings.HasSuffix(string(full), "."+name)
	}
	var found []protoreflect.Descriptor
	var methods []string
	for _, svc := range s.services {
		sd, err := s.service(svc)
		if err != nil {
			return nil, err
		}
		if !methodOnly && matches(sd.FullName()) {
			found = append(found, sd)
		}
		for i := range sd.Methods().Len() {
			md := sd.Methods().Get(i)
			methods = append(methods, string(md.FullName()))
			if matches(md.FullName()) {
				found = append(found, md)
			}
		}
	}
	if !methodOnly {
		seen := map[protoreflect.FullName]bool{}
		s.files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
			walkTypes(fd.Messages(), fd.Enums(), func(d protoreflect.Descriptor) {
				if matches(d.FullName()) && !seen[d.FullName()] {
					seen[d.FullName()] = true
					found = append(found, d)
				}
			})
			return true
		})
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		what := "symbol"
		if methodOnly {
			what = "method"
		}
		return nil, fmt.Errorf("no %s %q among what the server serves; its methods: %s", what, symbol, strings.Join(methods, ", "))
	}
	var names []string
	for _, d := range found {
		names = append(names, string(d.FullName()))
	}
	slices.Sort(names)
	return nil, usagef("%q is ambiguous: it names %s; qualify it further", symbol, strings.Join(names, ", "))
}

// walkTypes calls f for every message and enum, nested ones included; map
// entries are not types of their own.
func walkTypes(msgs protoreflect.MessageDescriptors, enums protoreflect.EnumDescriptors, f func(protoreflect.Descriptor)) {
	for i := range enums.Len() {
		f(enums.Get(i))
	}
	for i := range msgs.Len() {
		m := msgs.Get(i)
		if m.IsMapEntry() {
			continue
		}
		f(m)
		walkTypes(m.Messages(), m.Enums(), f)
	}
}

// streamType is a method's stream kind as spec names it.
func streamType(md protoreflect.MethodDescriptor) spec.StreamType {
	switch {
	case md.IsStreamingClient() && md.IsStreamingServer():
		return spec.BidiStream
	case md.IsStreamingClient():
		return spec.ClientStream
	case md.IsStreamingServer():
		return spec.ServerStream
	}
	return spec.Unary
}

// specOf describes md for the client.
func specOf(md protoreflect.MethodDescriptor) *spec.Method {
	svc := string(md.Parent().FullName())
	m := &spec.Method{
		Service:    svc,
		Name:       string(md.Name()),
		Procedure:  "/" + svc + "/" + string(md.Name()),
		StreamType: streamType(md),
	}
	if o, ok := md.Options().(*descriptorpb.MethodOptions); ok {
		switch o.GetIdempotencyLevel() {
		case descriptorpb.MethodOptions_NO_SIDE_EFFECTS:
			m.Idempotency = spec.NoSideEffects
		case descriptorpb.MethodOptions_IDEMPOTENT:
			m.Idempotency = spec.Idempotent
		}
	}
	return m
}

// description collects what describe prints: services and methods, then
// the messages and enums they use, each once.
type description struct {
	services []protoreflect.ServiceDescriptor
	methods  []protoreflect.MethodDescriptor // described alone
	types    []protoreflect.Descriptor       // messages and enums
	seen     map[protoreflect.FullName]bool
}

func (d *description) addService(sd protoreflect.ServiceDescriptor, withTypes bool) {
	d.services = append(d.services, sd)
	if withTypes {
		for i := range sd.Methods().Len() {
			d.addTypesOf(sd.Methods().Get(i))
		}
	}
}

func (d *description) addMethod(md protoreflect.MethodDescriptor) {
	d.methods = append(d.methods, md)
	d.addTypesOf(md)
}

func (d *description) addTypesOf(md protoreflect.MethodDescriptor) {
	d.addMessage(md.Input())
	d.addMessage(md.Output())
}

// addMessage adds m and, depth first, the messages and enums of its
// fields.
func (d *description) addMessage(m protoreflect.MessageDescriptor) {
	if d.seen[m.FullName()] {
		return
	}
	if d.seen == nil {
		d.seen = map[protoreflect.FullName]bool{}
	}
	d.seen[m.FullName()] = true
	d.types = append(d.types, m)
	fields := m.Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		if f.IsMap() {
			f = f.MapValue()
		}
		switch {
		case f.Message() != nil:
			d.addMessage(f.Message())
		case f.Enum() != nil:
			d.addEnum(f.Enum())
		}
	}
}

func (d *description) addEnum(e protoreflect.EnumDescriptor) {
	if d.seen[e.FullName()] {
		return
	}
	if d.seen == nil {
		d.seen = map[protoreflect.FullName]bool{}
	}
	d.seen[e.FullName()] = true
	d.types = append(d.types, e)
}

func methodLine(md protoreflect.MethodDescriptor) string {
	in, out := string(md.Input().FullName()), string(md.Output().FullName())
	if md.IsStreamingClient() {
		in = "stream " + in
	}
	if md.IsStreamingServer() {
		out = "stream " + out
	}
	return fmt.Sprintf("rpc %s(%s) returns (%s);", md.Name(), in, out)
}

// fieldType is a field's type as a .proto file spells it.
func fieldType(f protoreflect.FieldDescriptor) string {
	if f.IsMap() {
		return fmt.Sprintf("map<%s, %s>", fieldType(f.MapKey()), fieldType(f.MapValue()))
	}
	var t string
	switch {
	case f.Message() != nil:
		t = string(f.Message().FullName())
	case f.Enum() != nil:
		t = string(f.Enum().FullName())
	default:
		t = f.Kind().String()
	}
	switch {
	case f.IsList():
		t = "repeated " + t
	case f.HasPresence() && f.ContainingOneof() == nil && f.Message() == nil:
		t = "optional " + t
	}
	return t
}

func (d *description) print(w io.Writer) error {
	var b strings.Builder
	for _, sd := range d.services {
		fmt.Fprintf(&b, "service %s {  // %s\n", sd.FullName(), sd.ParentFile().Path())
		for i := range sd.Methods().Len() {
			md := sd.Methods().Get(i)
			fmt.Fprintf(&b, "  %s  // %s\n", methodLine(md), streamType(md))
		}
		b.WriteString("}\n\n")
	}
	for _, md := range d.methods {
		fmt.Fprintf(&b, "%s  // %s, %s\n\n", methodLine(md), md.FullName(), streamType(md))
	}
	for _, t := range d.types {
		switch t := t.(type) {
		case protoreflect.MessageDescriptor:
			fmt.Fprintf(&b, "message %s {\n", t.FullName())
			for i := range t.Fields().Len() {
				f := t.Fields().Get(i)
				fmt.Fprintf(&b, "  %s %s = %d;", fieldType(f), f.Name(), f.Number())
				if o := f.ContainingOneof(); o != nil && !o.IsSynthetic() {
					fmt.Fprintf(&b, "  // oneof %s", o.Name())
				}
				b.WriteByte('\n')
			}
			b.WriteString("}\n\n")
		case protoreflect.EnumDescriptor:
			fmt.Fprintf(&b, "enum %s {\n", t.FullName())
			for i := range t.Values().Len() {
				v := t.Values().Get(i)
				fmt.Fprintf(&b, "  %s = %d;\n", v.Name(), v.Number())
			}
			b.WriteString("}\n\n")
		}
	}
	_, err := io.WriteString(w, strings.TrimSuffix(b.String(), "\n"))
	return err
}

// The JSON form of a description.
type (
	describeJSON struct {
		Service  string        `json:"service"`
		Services []serviceJSON `json:"services,omitempty"`
		Methods  []methodJSON  `json:"methods,omitempty"`
		Messages []messageJSON `json:"messages,omitempty"`
		Enums    []enumJSON    `json:"enums,omitempty"`
	}
	serviceJSON struct {
		Name    string       `json:"name"`
		File    string       `json:"file"`
		Methods []methodJSON `json:"methods"`
	}
	methodJSON struct {
		Name        string `json:"name"`
		Procedure   string `json:"procedure"`
		Input       string `json:"input"`
		Output      string `json:"output"`
		Stream      string `json:"stream"`
		Idempotency string `json:"idempotency"`
	}
	messageJSON struct {
		Name   string      `json:"name"`
		Fields []fieldJSON `json:"fields"`
	}
	fieldJSON struct {
		Name   string `json:"name"`
		Number int32  `json:"number"`
		Type   string `json:"type"`
		JSON   string `json:"json_name"`
		Oneof  string `json:"oneof,omitempty"`
	}
	enumJSON struct {
		Name   string           `json:"name"`
		Values map[string]int32 `json:"values"`
	}
)

func methodToJSON(md protoreflect.MethodDescriptor) methodJSON {
	m := specOf(md)
	return methodJSON{
		Name: string(md.FullName()), Procedure: m.Procedure,
		Input: string(md.Input().FullName()), Output: string(md.Output().FullName()),
		Stream: m.StreamType.String(), Idempotency: m.Idempotency.String(),
	}
}

func (d *description) json(service string) describeJSON {
	out := describeJSON{Service: service}
	for _, sd := range d.services {
		s := serviceJSON{Name: string(sd.FullName()), File: sd.ParentFile().Path(), Methods: []methodJSON{}}
		for i := range sd.Methods().Len() {
			s.Methods = append(s.Methods, methodToJSON(sd.Methods().Get(i)))
		}
		out.Services = append(out.Services, s)
	}
	for _, md := range d.methods {
		out.Methods = append(out.Methods, methodToJSON(md))
	}
	for _, t := range d.types {
		switch t := t.(type) {
		case protoreflect.MessageDescriptor:
			m := messageJSON{Name: string(t.FullName()), Fields: []fieldJSON{}}
			for i := range t.Fields().Len() {
				f := t.Fields().Get(i)
				fj := fieldJSON{Name: string(f.Name()), Number: int32(f.Number()), Type: fieldType(f), JSON: f.JSONName()}
				if o := f.ContainingOneof(); o != nil && !o.IsSynthetic() {
					fj.Oneof = string(o.Name())
				}
				m.Fields = append(m.Fields, fj)
			}
			out.Messages = append(out.Messages, m)
		case protoreflect.EnumDescriptor:
			en := enumJSON{Name: string(t.FullName()), Values: map[string]int32{}}
			for i := range t.Values().Len() {
				v := t.Values().Get(i)
				en.Values[string(v.Name())] = int32(v.Number())
			}
			out.Enums = append(out.Enums, en)
		}
	}
	return out
}
