package codegen

import "google.golang.org/protobuf/compiler/protogen"

func generateHandlerInterface(w *fileWriter, s *protogen.Service) {
	sn := w.names.services[s]
	serviceDoc(w, s, []any{sn.Handler, " is the server API of the ", s.Desc.FullName(), " service."},
		[]any{"Register an implementation with ", sn.Register, "."})
	w.P("type ", sn.Handler, " interface {")
	for _, m := range s.Methods {
		methodComments(w, m)
		w.P(handlerSignature(w, m))
	}
	w.P("}")
	w.P()
}

// generateUnimplementedHandler writes a GreeterHandler whose methods answer
// with the code Unimplemented, to be embedded in implementations.
func generateUnimplementedHandler(w *fileWriter, s *protogen.Service) {
	sn := w.names.services[s]
	w.P("// ", sn.Unimplemented, " answers every method of the")
	w.P("// ", s.Desc.FullName(), " service with the code Unimplemented. Embed it by")
	w.P("// value in an implementation of ", sn.Handler, " to keep the implementation")
	w.P("// compiling when a method is added to the service: the new method answers")
	w.P("// Unimplemented until it is implemented.")
	w.P("type ", sn.Unimplemented, " struct{}")
	w.P()
	for _, m := range s.Methods {
		if isDeprecatedMethod(m) {
			w.P(deprecationComment)
		}
		w.P("func (", sn.Unimplemented, ") ", handlerMethod(w, m, false), " {")
		w.P("return ", statusPackage.Ident("New"), "(", statusPackage.Ident("Unimplemented"), `, "`, m.Desc.FullName(), ` is not implemented")`)
		w.P("}")
		w.P()
	}
}

// handlerSignature returns a handler method's name and signature, go-micro's:
//
//	SayHello(ctx context.Context, in *HelloRequest, out *HelloReply) error
//	LotsOfReplies(ctx context.Context, in *HelloRequest, stream Greeter_LotsOfRepliesHandlerStream) error
//	Chat(ctx context.Context, stream Greeter_ChatHandlerStream) error
func handlerSignature(w *fileWriter, m *protogen.Method) string {
	return handlerMethod(w, m, true)
}

// handlerMethod returns a handler method's name and signature, with
// parameter names if named.
func handlerMethod(w *fileWriter, m *protogen.Method, named bool) string {
	mn := w.names.services[m.Parent].methods[m]
	param := func(name, typ string) string {
		if named {
			return name + " " + typ
		}
		return typ
	}
	v := w.v
	sig := mn.GoName + "(" + param(v.Ctx, w.QualifiedGoIdent(contextPackage.Ident("Context")))
	if !m.Desc.IsStreamingClient() {
		sig += ", " + param(v.In, "*"+w.QualifiedGoIdent(m.Input.GoIdent))
	}
	if isStreaming(m) {
		sig += ", " + param(v.Stream, mn.HandlerStream)
	} else {
		sig += ", " + param(v.Out, "*"+w.QualifiedGoIdent(m.Output.GoIdent))
	}
	return sig + ") error"
}

// generateHandlerStreams writes the typed server side of each streaming
// method: an interface embedding server.Stream and its implementation.
func generateHandlerStreams(w *fileWriter, s *protogen.Service) {
	for _, m := range s.Methods {
		if !isStreaming(m) {
			continue
		}
		mn := w.names.services[s].methods[m]
		in, out := w.QualifiedGoIdent(m.Input.GoIdent), w.QualifiedGoIdent(m.Output.GoIdent)

		w.P("// ", mn.HandlerStream, " is the server side of the ", m.Desc.FullName(), " stream.")
		w.P("type ", mn.HandlerStream, " interface {")
		w.P(serverPackage.Ident("Stream"))
		if m.Desc.IsStreamingServer() {
			w.P("// Send sends a response.")
			w.P("Send(*", out, ") error")
		}
		if m.Desc.IsStreamingClient() {
			w.P("// Recv receives a request; io.EOF once the client has half-closed.")
			w.P("Recv() (*", in, ", error)")
		}
		if !m.Desc.IsStreamingServer() {
			w.P("// SendAndClose sends the response.")
			w.P("SendAndClose(*", out, ") error")
		}
		w.P("// Close returns nil: the stream ends when the handler returns. It")
		w.P("// exists so that go-micro handlers compile unchanged.")
		w.P("Close() error")
		w.P("}")
		w.P()

		generateStreamAlias(w, mn.HandlerStreamAlias, mn.HandlerStream)

		w.P("type ", mn.HandlerStreamImpl, " struct {")
		w.P(serverPackage.Ident("Stream"))
		w.P("}")
		w.P()

		if m.Desc.IsStreamingServer() {
			generateSend(w, mn.HandlerStreamImpl, out)
		}
		if m.Desc.IsStreamingClient() {
			generateRecv(w, mn.HandlerStreamImpl, "Recv", in, false)
		}
		if !m.Desc.IsStreamingServer() {
			v := w.v
			w.P("func (", v.X, " *", mn.HandlerStreamImpl, ") SendAndClose(", v.M, " *", out, ") error {")
			w.P("return ", v.X, ".SendMsg(", v.M, ")")
			w.P("}")
			w.P()
		}
		w.P("func (", w.v.X, " *", mn.HandlerStreamImpl, ") Close() error {")
		w.P("return nil")
		w.P("}")
		w.P()
	}
}

func generateRegisterHandler(w *fileWriter, s *protogen.Service) {
	sn := w.names.services[s]
	w.P("// ", sn.Register, " registers h with s as the implementation of the")
	w.P("// ", s.Desc.FullName(), " service.")
	deprecationNotice(w, isDeprecatedService(s))
	w.P("func ", sn.Register, "(s ", serverPackage.Ident("Server"), ", h ", sn.Handler,
		", opts ...", serverPackage.Ident("HandlerOption"), ") error {")
	w.P("return s.Handle(&", sn.Desc, ", h, opts...)")
	w.P("}")
	w.P()
}

// generateServiceDesc writes the method table the server dispatches on:
// per method, constructors for its messages and a function that calls the
// handler with typed arguments.
func generateServiceDesc(w *fileWriter, s *protogen.Service) {
	sn := w.names.services[s]
	v := w.v
	w.P("// ", sn.Desc, " is the method table of the ", s.Desc.FullName(), " service.")
	w.P("var ", sn.Desc, " = ", serverPackage.Ident("ServiceDesc"), "{")
	w.P("Name: ", sn.Name, ",")
	w.P("HandlerType: (*", sn.Handler, ")(nil),")
	w.P("Methods: []", serverPackage.Ident("MethodDesc"), "{")
	for _, m := range s.Methods {
		mn := sn.methods[m]
		in, out := w.QualifiedGoIdent(m.Input.GoIdent), w.QualifiedGoIdent(m.Output.GoIdent)
		call := v.Impl + ".(" + sn.Handler + ")." + mn.GoName + "(" + v.Ctx
		w.P("{")
		w.P("Method: ", mn.Spec, ",")
		w.P("NewRequest: func() any { return new(", in, ") },")
		switch {
		case !isStreaming(m):
			w.P("NewResponse: func() any { return new(", out, ") },")
			w.P("Unary: func(", v.Impl, " any, ", v.Ctx, " ", contextPackage.Ident("Context"), ", ", v.Req, ", ", v.Rsp, " any) error {")
			w.P("return ", call, ", ", v.Req, ".(*", in, "), ", v.Rsp, ".(*", out, "))")
		case m.Desc.IsStreamingClient():
			w.P("Stream: func(", v.Impl, " any, ", v.Ctx, " ", contextPackage.Ident("Context"), ", _ any, ", v.Stream, " ", serverPackage.Ident("Stream"), ") error {")
			w.P("return ", call, ", &", mn.HandlerStreamImpl, "{", v.Stream, "})")
		default:
			w.P("Stream: func(", v.Impl, " any, ", v.Ctx, " ", contextPackage.Ident("Context"), ", ", v.Req, " any, ", v.Stream, " ", serverPackage.Ident("Stream"), ") error {")
			w.P("return ", call, ", ", v.Req, ".(*", in, "), &", mn.HandlerStreamImpl, "{", v.Stream, "})")
		}
		w.P("},")
		w.P("},")
	}
	w.P("},")
	w.P("}")
	w.P()
}
