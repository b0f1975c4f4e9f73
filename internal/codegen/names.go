package codegen

import (
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/compiler/protogen"
)

// serviceNames are the Go identifiers generated for one service.
type serviceNames struct {
	Name              string // GreeterName: the fully qualified service name
	Client            string // GreeterService: the client interface
	ClientImpl        string // greeterService
	ClientConstructor string // NewGreeterService
	Handler           string // GreeterHandler: the server interface
	Unimplemented     string // UnimplementedGreeterHandler
	Register          string // RegisterGreeterHandler
	Desc              string // GreeterServiceDesc: the method table

	methods map[*protogen.Method]*methodNames
}

// methodNames are the Go identifiers generated for one method. The stream
// names are empty for unary methods.
type methodNames struct {
	GoName             string // SayHello: the method on the client and handler interfaces
	Procedure          string // GreeterSayHelloProcedure
	Spec               string // GreeterSayHelloMethod: the *spec.Method
	ClientStream       string // Greeter_ChatClientStream
	ClientStreamImpl   string // greeterChatClientStream
	ClientStreamAlias  string // Greeter_ChatService: go-micro's name
	HandlerStream      string // Greeter_ChatHandlerStream
	HandlerStreamImpl  string // greeterChatHandlerStream
	HandlerStreamAlias string // Greeter_ChatStream: go-micro's name
}

// namer names the services of one Go package and checks that no generated
// package-level identifier is declared twice in that package, whether by
// protoc-gen-go or by another service. A collision is an error rather than
// a rename: a renamed identifier would depend on what else the package
// declares, so adding a message could change the API of a service.
type namer struct {
	declared map[string]origin
	services map[*protogen.Service]*serviceNames
	errs     []error
	reported map[[2]string]bool // element pairs already in errs
}

// origin is the proto element a package-level Go identifier is declared for.
type origin struct {
	element string // "message greeter.v1.HelloRequest", "method greeter.v1.Greeter.Chat"
	file    *protogen.File
	ours    bool // declared by protoc-gen-micro, not protoc-gen-go
}

// newPackageNamer names every service declared in files of the request that
// belong to the Go package importPath, whether or not they are generated in
// this run, and records the collisions that involve a file to generate. The
// files are visited in the order of their paths, so the errors come in the
// same order every time.
func newPackageNamer(gen *protogen.Plugin, importPath protogen.GoImportPath) *namer {
	var files []*protogen.File
	for _, f := range gen.Files {
		if f.GoImportPath == importPath {
			files = append(files, f)
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Desc.Path() < files[j].Desc.Path() })

	n := &namer{
		declared: map[string]origin{},
		services: map[*protogen.Service]*serviceNames{},
		reported: map[[2]string]bool{},
	}
	for _, f := range files {
		reserveProtocGenGoNames(n, f)
	}
	for _, f := range files {
		for _, s := range f.Services {
			n.services[s] = n.nameService(f, s)
		}
	}
	return n
}

// reserve records a name protoc-gen-go declares for element of f.
func (n *namer) reserve(f *protogen.File, name, element string) {
	if _, ok := n.declared[name]; !ok {
		n.declared[name] = origin{element: element, file: f}
	}
}

// declare records name as generated for element of f, and an error if the
// package already declares it, and returns name.
func (n *namer) declare(f *protogen.File, name, element string) string {
	prev, ok := n.declared[name]
	if !ok {
		n.declared[name] = origin{element: element, file: f, ours: true}
		return name
	}
	n.collide(f, name, element, prev)
	return name
}

// collide records that name, generated for element of f, collides with
// what prev declared, unless neither is in a file to generate. Only the
// first name that two elements share is reported, so two services that
// camel-case alike make one error, not eight.
func (n *namer) collide(f *protogen.File, name, element string, prev origin) {
	pair := [2]string{element, prev.element}
	if (!f.Generate && !prev.file.Generate) || n.reported[pair] {
		return
	}
	n.reported[pair] = true
	other := prev.element
	if prev.ours {
		other = "the same name generated for " + other
	}
	if prev.file != f {
		other += " in " + prev.file.Desc.Path()
	}
	n.errs = append(n.errs, fmt.Errorf("%s: generated name %q of %s collides with %s", f.Desc.Path(), name, element, other))
}

func (n *namer) nameService(f *protogen.File, s *protogen.Service) *serviceNames {
	base, lower := s.GoName, unexport(s.GoName)
	service := "service " + string(s.Desc.FullName())
	sn := &serviceNames{
		Name:              n.declare(f, base+"Name", service),
		Client:            n.declare(f, base+"Service", service),
		ClientImpl:        n.declare(f, lower+"Service", service),
		ClientConstructor: n.declare(f, "New"+base+"Service", service),
		Handler:           n.declare(f, base+"Handler", service),
		Unimplemented:     n.declare(f, "Unimplemented"+base+"Handler", service),
		Register:          n.declare(f, "Register"+base+"Handler", service),
		Desc:              n.declare(f, base+"ServiceDesc", service),
		methods:           map[*protogen.Method]*methodNames{},
	}
	// The methods of a service share the scope of its client and handler
	// interfaces: two whose names camel-case alike ("say_hello",
	// "SayHello") collide there.
	methodScope := map[string]*protogen.Method{}
	for _, m := range s.Methods {
		method := "method " + string(m.Desc.FullName())
		if prev, ok := methodScope[m.GoName]; ok {
			n.collide(f, m.GoName, method, origin{element: "method " + string(prev.Desc.FullName()), file: f, ours: true})
			continue // its other names collide too; one error is enough
		}
		methodScope[m.GoName] = m

		goName := m.GoName
		mn := &methodNames{
			GoName:    goName,
			Procedure: n.declare(f, base+goName+"Procedure", method),
			Spec:      n.declare(f, base+goName+"Method", method),
		}
		if isStreaming(m) {
			mn.ClientStream = n.declare(f, base+"_"+goName+"ClientStream", method)
			mn.ClientStreamImpl = n.declare(f, lower+goName+"ClientStream", method)
			mn.ClientStreamAlias = n.declare(f, base+"_"+goName+"Service", method)
			mn.HandlerStream = n.declare(f, base+"_"+goName+"HandlerStream", method)
			mn.HandlerStreamImpl = n.declare(f, lower+goName+"HandlerStream", method)
			mn.HandlerStreamAlias = n.declare(f, base+"_"+goName+"Stream", method)
		}
		sn.methods[m] = mn
	}
	return sn
}

// reserveProtocGenGoNames records the package-level identifiers that
// protoc-gen-go declares for f.
func reserveProtocGenGoNames(n *namer, f *protogen.File) {
	file := "file " + f.Desc.Path()
	n.reserve(f, f.GoDescriptorIdent.GoName, file)
	fileVar := unexport(f.GoDescriptorIdent.GoName) + "_"
	for _, suffix := range []string{
		"rawDesc", "rawDescOnce", "rawDescData", "rawDescGZIP",
		"goTypes", "depIdxs", "enumTypes", "msgTypes", "extTypes", "init",
	} {
		n.reserve(f, fileVar+suffix, file)
	}
	for _, e := range f.Enums {
		reserveEnum(n, f, e)
	}
	for _, m := range f.Messages {
		reserveMessage(n, f, m)
	}
	for _, x := range f.Extensions {
		n.reserve(f, "E_"+x.GoIdent.GoName, "extension "+string(x.Desc.FullName()))
	}
}

func reserveEnum(n *namer, f *protogen.File, e *protogen.Enum) {
	enum := "enum " + string(e.Desc.FullName())
	n.reserve(f, e.GoIdent.GoName, enum)
	n.reserve(f, e.GoIdent.GoName+"_name", enum)
	n.reserve(f, e.GoIdent.GoName+"_value", enum)
	for _, v := range e.Values {
		value := "enum value " + string(e.Desc.FullName()) + "." + string(v.Desc.Name())
		n.reserve(f, v.GoIdent.GoName, value)
		if v.PrefixedAlias.GoName != "" {
			n.reserve(f, v.PrefixedAlias.GoName, value)
		}
	}
}

func reserveMessage(n *namer, f *protogen.File, m *protogen.Message) {
	if m.Desc.IsMapEntry() {
		return // protoc-gen-go declares nothing for map entries
	}
	message := "message " + string(m.Desc.FullName())
	n.reserve(f, m.GoIdent.GoName, message)
	n.reserve(f, m.GoIdent.GoName+"_builder", message) // opaque and hybrid APIs
	for _, fd := range m.Fields {
		field := "field " + string(fd.Desc.FullName())
		if fd.Oneof != nil {
			field = "oneof " + field
		}
		n.reserve(f, "Default_"+m.GoIdent.GoName+"_"+fd.GoName, field)
		if fd.Oneof != nil {
			n.reserve(f, fd.GoIdent.GoName, field)         // oneof wrapper type
			n.reserve(f, fd.GoIdent.GoName+"_case", field) // opaque and hybrid APIs
		}
	}
	for _, o := range m.Oneofs {
		oneof := "oneof " + string(o.Desc.FullName())
		n.reserve(f, "is"+o.GoIdent.GoName, oneof)
		n.reserve(f, "case_"+o.GoIdent.GoName, oneof)
		n.reserve(f, o.GoIdent.GoName+"_not_set_case", oneof)
	}
	for _, e := range m.Enums {
		reserveEnum(n, f, e)
	}
	for _, nested := range m.Messages {
		reserveMessage(n, f, nested)
	}
	for _, x := range m.Extensions {
		n.reserve(f, "E_"+x.GoIdent.GoName, "extension "+string(x.Desc.FullName()))
	}
}

// unexport lower-cases the first letter of s.
func unexport(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToLower(r)) + s[n:]
}

// locals names the parameters and local variables of generated functions. A
// local that would shadow the name of a package imported by the generated
// file gets "_" appended.
type locals struct {
	C, Ctx, In, Out, Opts, Err, Stream, X, M, Impl, Req, Rsp string
}

func newLocals(imported map[string]bool) locals {
	name := func(s string) string {
		for imported[s] {
			s += "_"
		}
		return s
	}
	return locals{
		C: name("c"), Ctx: name("ctx"), In: name("in"), Out: name("out"),
		Opts: name("opts"), Err: name("err"), Stream: name("stream"), X: name("x"),
		M: name("m"), Impl: name("impl"), Req: name("req"), Rsp: name("rsp"),
	}
}

// importedNames imports, in order, the packages of idents into g, which
// settles the names protogen gives them, and returns those names.
func importedNames(g *protogen.GeneratedFile, idents []protogen.GoIdent) map[string]bool {
	names := map[string]bool{}
	for _, id := range idents {
		if q, _, ok := strings.Cut(g.QualifiedGoIdent(id), "."); ok {
			names[q] = true
		}
	}
	return names
}
