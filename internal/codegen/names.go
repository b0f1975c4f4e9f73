package codegen

import (
	"go/token"
	"go/types"
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
	Register          string // RegisterGreeterHandler
	Desc              string // GreeterServiceDesc: the method table

	methods map[*protogen.Method]*methodNames
}

// methodNames are the Go identifiers generated for one method. The stream
// names are empty for unary methods.
type methodNames struct {
	GoName           string // SayHello: the method on the client and handler interfaces
	Procedure        string // GreeterSayHelloProcedure
	Spec             string // greeterSayHelloMethod: the *spec.Method
	ClientStream     string // Greeter_ChatService
	ClientStreamImpl string // greeterChatService
	ServerStream     string // Greeter_ChatStream
	ServerStreamImpl string // greeterChatStream
}

// namer hands out the identifiers of the services of one Go package, so that
// they collide neither with each other nor with what protoc-gen-go declares in
// that package. See the package documentation for the rule.
type namer struct {
	used     map[string]bool
	services map[*protogen.Service]*serviceNames
}

// newPackageNamer names every service declared in files of the request that
// belong to the Go package importPath, whether or not they are generated in
// this run, so that the names do not depend on which files of the package
// were asked for.
func newPackageNamer(gen *protogen.Plugin, importPath protogen.GoImportPath) *namer {
	var files []*protogen.File
	for _, f := range gen.Files {
		if f.GoImportPath == importPath {
			files = append(files, f)
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Desc.Path() < files[j].Desc.Path() })

	n := &namer{used: map[string]bool{}, services: map[*protogen.Service]*serviceNames{}}
	for _, f := range files {
		reserveProtocGenGoNames(n.used, f)
	}
	for _, f := range files {
		for _, s := range f.Services {
			n.services[s] = n.nameService(s)
		}
	}
	return n
}

// claim returns name, or name with "_" appended as often as needed for it to
// be neither a Go keyword nor a predeclared identifier nor already used, and
// marks the result used.
func (n *namer) claim(name string) string {
	for n.used[name] || token.IsKeyword(name) || types.Universe.Lookup(name) != nil {
		name += "_"
	}
	n.used[name] = true
	return name
}

func (n *namer) nameService(s *protogen.Service) *serviceNames {
	base, lower := s.GoName, unexport(s.GoName)
	sn := &serviceNames{
		Name:              n.claim(base + "Name"),
		Client:            n.claim(base + "Service"),
		ClientImpl:        n.claim(lower + "Service"),
		ClientConstructor: n.claim("New" + base + "Service"),
		Handler:           n.claim(base + "Handler"),
		Register:          n.claim("Register" + base + "Handler"),
		Desc:              n.claim(base + "ServiceDesc"),
		methods:           map[*protogen.Method]*methodNames{},
	}
	// Method names share the scope of the client and handler interfaces:
	// two methods whose names camel-case alike ("say_hello", "SayHello")
	// are told apart the same way.
	methodScope := map[string]bool{}
	for _, m := range s.Methods {
		goName := m.GoName
		for methodScope[goName] {
			goName += "_"
		}
		methodScope[goName] = true

		mn := &methodNames{
			GoName:    goName,
			Procedure: n.claim(base + goName + "Procedure"),
			Spec:      n.claim(lower + goName + "Method"),
		}
		if m.Desc.IsStreamingClient() || m.Desc.IsStreamingServer() {
			mn.ClientStream = n.claim(base + "_" + goName + "Service")
			mn.ClientStreamImpl = n.claim(lower + goName + "Service")
			mn.ServerStream = n.claim(base + "_" + goName + "Stream")
			mn.ServerStreamImpl = n.claim(lower + goName + "Stream")
		}
		sn.methods[m] = mn
	}
	return sn
}

// reserveProtocGenGoNames marks the package-level identifiers that
// protoc-gen-go declares for f.
func reserveProtocGenGoNames(used map[string]bool, f *protogen.File) {
	used[f.GoDescriptorIdent.GoName] = true
	fileVar := unexport(f.GoDescriptorIdent.GoName) + "_"
	for _, suffix := range []string{
		"rawDesc", "rawDescOnce", "rawDescData", "rawDescGZIP",
		"goTypes", "depIdxs", "enumTypes", "msgTypes", "extTypes", "init",
	} {
		used[fileVar+suffix] = true
	}
	for _, e := range f.Enums {
		reserveEnum(used, e)
	}
	for _, m := range f.Messages {
		reserveMessage(used, m)
	}
	for _, x := range f.Extensions {
		used["E_"+x.GoIdent.GoName] = true
	}
}

func reserveEnum(used map[string]bool, e *protogen.Enum) {
	used[e.GoIdent.GoName] = true
	used[e.GoIdent.GoName+"_name"] = true
	used[e.GoIdent.GoName+"_value"] = true
	for _, v := range e.Values {
		used[v.GoIdent.GoName] = true
		if v.PrefixedAlias.GoName != "" {
			used[v.PrefixedAlias.GoName] = true
		}
	}
}

func reserveMessage(used map[string]bool, m *protogen.Message) {
	if m.Desc.IsMapEntry() {
		return // protoc-gen-go declares nothing for map entries
	}
	used[m.GoIdent.GoName] = true
	used[m.GoIdent.GoName+"_builder"] = true // opaque and hybrid APIs
	for _, f := range m.Fields {
		used["Default_"+m.GoIdent.GoName+"_"+f.GoName] = true
		if f.Oneof != nil {
			used[f.GoIdent.GoName] = true         // oneof wrapper type
			used[f.GoIdent.GoName+"_case"] = true // opaque and hybrid APIs
		}
	}
	for _, o := range m.Oneofs {
		used["is"+o.GoIdent.GoName] = true
		used["case_"+o.GoIdent.GoName] = true
		used[o.GoIdent.GoName+"_not_set_case"] = true
	}
	for _, e := range m.Enums {
		reserveEnum(used, e)
	}
	for _, n := range m.Messages {
		reserveMessage(used, n)
	}
	for _, x := range m.Extensions {
		used["E_"+x.GoIdent.GoName] = true
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
