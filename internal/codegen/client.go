package codegen

import "google.golang.org/protobuf/compiler/protogen"

func generateClientInterface(w *fileWriter, s *protogen.Service) {
	sn := w.names.services[s]
	serviceDoc(w, s, []any{sn.Client, " is the client API of the ", s.Desc.FullName(), " service."})
	w.P("type ", sn.Client, " interface {")
	for _, m := range s.Methods {
		methodComments(w, m)
		w.P(clientSignature(w, m))
	}
	w.P("}")
	w.P()
}

// clientSignature returns a client method's name and signature:
//
//	SayHello(ctx context.Context, in *HelloRequest, opts ...client.CallOption) (*HelloReply, error)
//	Chat(ctx context.Context, opts ...client.CallOption) (Greeter_ChatClientStream, error)
func clientSignature(w *fileWriter, m *protogen.Method) string {
	mn := w.names.services[m.Parent].methods[m]
	sig := mn.GoName + "(" + w.v.Ctx + " " + w.QualifiedGoIdent(contextPackage.Ident("Context"))
	if !m.Desc.IsStreamingClient() {
		sig += ", " + w.v.In + " *" + w.QualifiedGoIdent(m.Input.GoIdent)
	}
	sig += ", " + w.v.Opts + " ..." + w.QualifiedGoIdent(clientPackage.Ident("CallOption")) + ") "
	if isStreaming(m) {
		return sig + "(" + mn.ClientStream + ", error)"
	}
	return sig + "(*" + w.QualifiedGoIdent(m.Output.GoIdent) + ", error)"
}

func generateClientImplementation(w *fileWriter, s *protogen.Service) {
	sn := w.names.services[s]
	w.P("type ", sn.ClientImpl, " struct {")
	w.P("c ", clientPackage.Ident("Client"))
	w.P("name string")
	w.P("}")
	w.P()

	w.P("// ", sn.ClientConstructor, " returns a client of the ", s.Desc.FullName(), " service that")
	w.P("// calls it through c. name is the name the service is registered under,")
	w.P("// which c uses to find its nodes.")
	deprecationNotice(w, isDeprecatedService(s))
	w.P("func ", sn.ClientConstructor, "(name string, c ", clientPackage.Ident("Client"), ") ", sn.Client, " {")
	w.P("return &", sn.ClientImpl, "{c: c, name: name}")
	w.P("}")
	w.P()

	for _, m := range s.Methods {
		generateClientMethod(w, m)
	}
}

func generateClientMethod(w *fileWriter, m *protogen.Method) {
	sn := w.names.services[m.Parent]
	mn := sn.methods[m]
	v := w.v
	if isDeprecatedMethod(m) {
		w.P(deprecationComment)
	}
	w.P("func (", v.C, " *", sn.ClientImpl, ") ", clientSignature(w, m), " {")
	if !isStreaming(m) {
		w.P(v.Out, " := new(", m.Output.GoIdent, ")")
		w.P("if ", v.Err, " := ", v.C, ".c.Call(", v.Ctx, ", ", v.C, ".name, ", mn.Spec, ", ", v.In, ", ", v.Out, ", ", v.Opts, "...); ", v.Err, " != nil {")
		w.P("return nil, ", v.Err)
		w.P("}")
		w.P("return ", v.Out, ", nil")
		w.P("}")
		w.P()
		return
	}
	w.P(v.Stream, ", ", v.Err, " := ", v.C, ".c.Stream(", v.Ctx, ", ", v.C, ".name, ", mn.Spec, ", ", v.Opts, "...)")
	w.P("if ", v.Err, " != nil {")
	w.P("return nil, ", v.Err)
	w.P("}")
	if !m.Desc.IsStreamingClient() {
		// Server streaming: the one request goes out before the caller
		// sees the stream.
		for _, call := range []string{"SendMsg(" + v.In + ")", "CloseSend()"} {
			w.P("if ", v.Err, " := ", v.Stream, ".", call, "; ", v.Err, " != nil {")
			w.P(v.Stream, ".Close()")
			w.P("return nil, ", v.Err)
			w.P("}")
		}
	}
	w.P("return &", mn.ClientStreamImpl, "{", v.Stream, "}, nil")
	w.P("}")
	w.P()
}

// generateClientStreams writes the typed client side of each streaming
// method: an interface embedding client.Stream and its implementation.
func generateClientStreams(w *fileWriter, s *protogen.Service) {
	for _, m := range s.Methods {
		if !isStreaming(m) {
			continue
		}
		mn := w.names.services[s].methods[m]
		in, out := w.QualifiedGoIdent(m.Input.GoIdent), w.QualifiedGoIdent(m.Output.GoIdent)

		w.P("// ", mn.ClientStream, " is the client side of the ", m.Desc.FullName(), " stream.")
		w.P("type ", mn.ClientStream, " interface {")
		w.P(clientPackage.Ident("Stream"))
		if m.Desc.IsStreamingClient() {
			w.P("// Send sends a request.")
			w.P("Send(*", in, ") error")
		}
		if m.Desc.IsStreamingServer() {
			w.P("// Recv receives a response; io.EOF when the server ended the call")
			w.P("// with OK.")
			w.P("Recv() (*", out, ", error)")
		} else {
			w.P("// CloseAndRecv half-closes the stream and receives the response.")
			w.P("CloseAndRecv() (*", out, ", error)")
		}
		w.P("}")
		w.P()

		generateStreamAlias(w, mn.ClientStreamAlias, mn.ClientStream)

		w.P("type ", mn.ClientStreamImpl, " struct {")
		w.P(clientPackage.Ident("Stream"))
		w.P("}")
		w.P()

		if m.Desc.IsStreamingClient() {
			generateSend(w, mn.ClientStreamImpl, in)
		}
		if m.Desc.IsStreamingServer() {
			generateRecv(w, mn.ClientStreamImpl, "Recv", out, false)
		} else {
			generateRecv(w, mn.ClientStreamImpl, "CloseAndRecv", out, true)
		}
	}
}

// generateStreamAlias writes alias, go-micro's name of the stream type
// name.
func generateStreamAlias(w *fileWriter, alias, name string) {
	w.P("// ", alias, " is the name go-micro generates for")
	w.P("// ", name, ", kept so that go-micro code compiles.")
	w.P("type ", alias, " = ", name)
	w.P()
}

// generateSend writes the typed Send of a stream implementation.
func generateSend(w *fileWriter, impl, msg string) {
	v := w.v
	w.P("func (", v.X, " *", impl, ") Send(", v.M, " *", msg, ") error {")
	w.P("return ", v.X, ".SendMsg(", v.M, ")")
	w.P("}")
	w.P()
}

// generateRecv writes a typed receive of a stream implementation, named
// name; closeSend half-closes the stream first.
func generateRecv(w *fileWriter, impl, name, msg string, closeSend bool) {
	v := w.v
	w.P("func (", v.X, " *", impl, ") ", name, "() (*", msg, ", error) {")
	if closeSend {
		w.P("if ", v.Err, " := ", v.X, ".CloseSend(); ", v.Err, " != nil {")
		w.P("return nil, ", v.Err)
		w.P("}")
	}
	w.P(v.M, " := new(", msg, ")")
	w.P("if ", v.Err, " := ", v.X, ".RecvMsg(", v.M, "); ", v.Err, " != nil {")
	w.P("return nil, ", v.Err)
	w.P("}")
	w.P("return ", v.M, ", nil")
	w.P("}")
	w.P()
}

func isStreaming(m *protogen.Method) bool {
	return m.Desc.IsStreamingClient() || m.Desc.IsStreamingServer()
}
