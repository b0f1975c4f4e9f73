// Package codegen generates the Go client and server code of protobuf
// services for the micro runtime. protoc-gen-micro is a thin main over it.
//
// For every file to generate that declares services, Generate writes
// <name>.pb.micro.go beside protoc-gen-go's <name>.pb.go, in the same Go
// package; files without services produce nothing. For a service Greeter
// with a method SayHello the file declares:
//
//   - GreeterName and GreeterSayHelloProcedure: the service's fully qualified
//     name and the method's HTTP/2 path;
//   - GreeterSayHelloMethod: the *spec.Method the client and server share,
//     which a raw client.Call takes;
//   - GreeterService, NewGreeterService: the client;
//   - GreeterHandler, RegisterGreeterHandler, GreeterServiceDesc: the server
//     interface, its registration and its method table;
//   - UnimplementedGreeterHandler: to embed by value in an implementation,
//     which then answers the methods it lacks with the code Unimplemented and
//     keeps compiling when a method is added to the service;
//   - for a streaming method Chat, Greeter_ChatClientStream (client side) and
//     Greeter_ChatHandlerStream (server side): typed streams, with
//     go-micro's names for them, Greeter_ChatService and Greeter_ChatStream,
//     as aliases.
//
// The handler signatures are go-micro's, so go-micro handlers compile
// unchanged.
//
// # Names that collide
//
// Generate fails, naming both proto elements, when a package-level
// identifier it would declare is already declared in the Go package: by
// protoc-gen-go (a message named GreeterService, say), by another service
// or by another method of the same service. It also fails when two methods
// of a service have the same Go name (say_hello and SayHello). It never
// renames an identifier to make it fit, as that would make a service's API
// depend on what else its package declares. The package's declarations are
// those of the files of the CodeGeneratorRequest, so generate all files of
// a Go package in one run, as protoc-gen-go advises. Parameters and local
// variables of generated functions that would shadow an imported package's
// name get "_" appended; they are not part of the API.
//
// # Regenerating
//
// The golden files under testdata/ and the example in examples/greeter are
// regenerated, without protoc, by
//
//	go test ./internal/codegen -run . -update
package codegen

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

const (
	// PluginName is the name of the protoc plugin.
	PluginName = "protoc-gen-micro"
	// Version is the plugin's version, written into every generated file.
	Version = "v0.1.0"

	// FileSuffix ends the name of every generated file.
	FileSuffix = ".pb.micro.go"
)

const (
	contextPackage = protogen.GoImportPath("context")
	specPackage    = protogen.GoImportPath("github.com/protoc-gen-micro/micro/runtime/spec")
	clientPackage  = protogen.GoImportPath("github.com/protoc-gen-micro/micro/runtime/client")
	serverPackage  = protogen.GoImportPath("github.com/protoc-gen-micro/micro/runtime/server")
	statusPackage  = protogen.GoImportPath("github.com/protoc-gen-micro/micro/runtime/status")

	deprecationComment = "// Deprecated: Do not use."
)

// Generate writes the micro code of every file to generate that declares
// services. It is the function protogen.Options.Run calls. It writes
// nothing and returns an error naming every collision if a generated name
// collides with another declaration of its Go package.
func Generate(gen *protogen.Plugin) error {
	gen.SupportedFeatures = uint64(pluginpb.CodeGeneratorResponse_FEATURE_PROTO3_OPTIONAL |
		pluginpb.CodeGeneratorResponse_FEATURE_SUPPORTS_EDITIONS)
	gen.SupportedEditionsMinimum = descriptorpb.Edition_EDITION_PROTO2
	gen.SupportedEditionsMaximum = descriptorpb.Edition_EDITION_2024

	namers := map[protogen.GoImportPath]*namer{}
	var errs []error
	for _, f := range gen.Files {
		if f.Generate && len(f.Services) > 0 && namers[f.GoImportPath] == nil {
			n := newPackageNamer(gen, f.GoImportPath)
			namers[f.GoImportPath] = n
			errs = append(errs, n.errs...)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, f := range gen.Files {
		if f.Generate && len(f.Services) > 0 {
			generateFile(gen, f, namers[f.GoImportPath])
		}
	}
	return nil
}

// fileWriter is the generated file with what its emitters share.
type fileWriter struct {
	*protogen.GeneratedFile
	file  *protogen.File
	names *namer
	v     locals
}

func generateFile(gen *protogen.Plugin, f *protogen.File, n *namer) {
	g := gen.NewGeneratedFile(f.GeneratedFilenamePrefix+FileSuffix, f.GoImportPath)
	w := &fileWriter{GeneratedFile: g, file: f, names: n}
	w.v = newLocals(importedNames(g, referencedIdents(f)))

	generateHeader(gen, w)
	generateVersionCheck(w)
	generateNameConstants(w)
	generateProcedureConstants(w)
	generateMethodSpecs(w)
	for _, s := range f.Services {
		generateClientInterface(w, s)
		generateClientImplementation(w, s)
		generateClientStreams(w, s)
		generateHandlerInterface(w, s)
		generateUnimplementedHandler(w, s)
		generateHandlerStreams(w, s)
		generateRegisterHandler(w, s)
		generateServiceDesc(w, s)
	}
}

// referencedIdents lists an identifier of every package the file refers to,
// runtime packages first, so that they keep their own names and a message
// package that shares one is the one renamed.
func referencedIdents(f *protogen.File) []protogen.GoIdent {
	idents := []protogen.GoIdent{
		specPackage.Ident("Method"),
		clientPackage.Ident("Client"),
		serverPackage.Ident("Server"),
	}
	if hasMethods(f) {
		idents = append(idents, contextPackage.Ident("Context"), statusPackage.Ident("Error"))
	}
	for _, s := range f.Services {
		for _, m := range s.Methods {
			idents = append(idents, m.Input.GoIdent, m.Output.GoIdent)
		}
	}
	return idents
}

func generateHeader(gen *protogen.Plugin, w *fileWriter) {
	w.P("// Code generated by ", PluginName, ". DO NOT EDIT.")
	w.P("// versions:")
	w.P("// - ", PluginName, " ", Version)
	w.P("// - protoc           ", protocVersion(gen))
	w.P("// source: ", w.file.Desc.Path())
	w.P()
	w.P("package ", w.file.GoPackageName)
	w.P()
}

func protocVersion(gen *protogen.Plugin) string {
	v := gen.Request.GetCompilerVersion()
	if v == nil {
		return "(unknown)"
	}
	s := fmt.Sprintf("v%d.%d.%d", v.GetMajor(), v.GetMinor(), v.GetPatch())
	if suffix := v.GetSuffix(); suffix != "" {
		s += "-" + suffix
	}
	return s
}

func generateVersionCheck(w *fileWriter) {
	w.P("// This is a compile-time assertion that this generated file and the runtime")
	w.P("// it is compiled with are compatible: it fails to compile against a runtime")
	w.P("// older than the one this file was generated for.")
	w.P("const _ = ", specPackage.Ident("SupportPackageIsVersion1"))
	w.P()
}

func generateNameConstants(w *fileWriter) {
	w.P("const (")
	for _, s := range w.file.Services {
		name := w.names.services[s].Name
		w.P("// ", name, " is the fully qualified name of the ", s.Desc.Name(), " service.")
		w.P(name, ` = "`, s.Desc.FullName(), `"`)
	}
	w.P(")")
	w.P()
}

func generateProcedureConstants(w *fileWriter) {
	if !hasMethods(w.file) {
		return
	}
	w.P("// These constants are the HTTP/2 paths of the methods, /<service>/<method>.")
	w.P("const (")
	for _, s := range w.file.Services {
		for _, m := range s.Methods {
			procedure := w.names.services[s].methods[m].Procedure
			w.P("// ", procedure, " is the path of the ", m.Desc.FullName(), " method.")
			w.P(procedure, ` = "/`, s.Desc.FullName(), "/", m.Desc.Name(), `"`)
		}
	}
	w.P(")")
	w.P()
}

func generateMethodSpecs(w *fileWriter) {
	if !hasMethods(w.file) {
		return
	}
	w.P("// These describe the methods to the client and the server.")
	w.P("var (")
	for _, s := range w.file.Services {
		sn := w.names.services[s]
		for _, m := range s.Methods {
			mn := sn.methods[m]
			call := "Call"
			if isStreaming(m) {
				call = "Stream"
			}
			w.P("// ", mn.Spec, " describes the ", m.Desc.FullName(), " method.")
			w.P("// A raw client.Client's ", call, " takes it.")
			w.P(mn.Spec, " = &", specPackage.Ident("Method"), "{")
			w.P("Service: ", sn.Name, ",")
			w.P(`Name: "`, m.Desc.Name(), `",`)
			w.P("Procedure: ", mn.Procedure, ",")
			w.P("StreamType: ", streamType(m), ",")
			w.P("Idempotency: ", idempotency(m), ",")
			w.P("}")
		}
	}
	w.P(")")
	w.P()
}

func hasMethods(f *protogen.File) bool {
	for _, s := range f.Services {
		if len(s.Methods) > 0 {
			return true
		}
	}
	return false
}

func streamType(m *protogen.Method) protogen.GoIdent {
	switch {
	case m.Desc.IsStreamingClient() && m.Desc.IsStreamingServer():
		return specPackage.Ident("BidiStream")
	case m.Desc.IsStreamingClient():
		return specPackage.Ident("ClientStream")
	case m.Desc.IsStreamingServer():
		return specPackage.Ident("ServerStream")
	}
	return specPackage.Ident("Unary")
}

func idempotency(m *protogen.Method) protogen.GoIdent {
	opts, _ := m.Desc.Options().(*descriptorpb.MethodOptions)
	switch opts.GetIdempotencyLevel() {
	case descriptorpb.MethodOptions_NO_SIDE_EFFECTS:
		return specPackage.Ident("NoSideEffects")
	case descriptorpb.MethodOptions_IDEMPOTENT:
		return specPackage.Ident("Idempotent")
	}
	return specPackage.Ident("IdempotencyUnknown")
}

// serviceDoc writes a doc comment: summary lines, then the service's comments
// from the .proto file, then a deprecation notice if the service is
// deprecated.
func serviceDoc(w *fileWriter, s *protogen.Service, summary ...[]any) {
	for _, line := range summary {
		w.P(append([]any{"// "}, line...)...)
	}
	if c := s.Comments.Leading; c != "" {
		w.P("//")
		w.P(trimComments(c))
	}
	if isDeprecatedService(s) {
		w.P("//")
		w.P(deprecationComment)
	}
}

// methodComments writes the method's comments from the .proto file and a
// deprecation notice if the method is deprecated.
func methodComments(w *fileWriter, m *protogen.Method) {
	c := m.Comments.Leading
	if c != "" {
		w.P(trimComments(c))
	}
	if isDeprecatedMethod(m) {
		if c != "" {
			w.P("//")
		}
		w.P(deprecationComment)
	}
}

// deprecationNotice writes a deprecation paragraph, after summary lines, if
// deprecated.
func deprecationNotice(w *fileWriter, deprecated bool) {
	if deprecated {
		w.P("//")
		w.P(deprecationComment)
	}
}

func trimComments(c protogen.Comments) string {
	s := c.String()
	return s[:len(s)-1] // drop the final newline; g.P adds one
}

func isDeprecatedService(s *protogen.Service) bool {
	opts, _ := s.Desc.Options().(*descriptorpb.ServiceOptions)
	return opts.GetDeprecated()
}

func isDeprecatedMethod(m *protogen.Method) bool {
	opts, _ := m.Desc.Options().(*descriptorpb.MethodOptions)
	return opts.GetDeprecated()
}
