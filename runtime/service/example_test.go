package service_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/runtime/interceptor"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/service"
	"github.com/protoc-gen-micro/micro/runtime/spec"
)

func ExampleNewService() {
	svc := service.NewService(
		service.WithName("greeter"),
		service.WithVersion("v1"),
		service.WithAddress(":8080"),
	)
	// Register handlers with svc.Server(), e.g. with the generated
	// greeterv1.RegisterGreeterHandler(svc.Server(), &Greeter{}).

	// Run serves until SIGINT or SIGTERM, then deregisters and drains.
	if err := svc.Run(); err != nil {
		log.Fatal(err)
	}
}

// helloGreeter implements SayHello; the embedded
// UnimplementedGreeterHandler answers the rest.
type helloGreeter struct {
	greeterpb.UnimplementedGreeterHandler
}

func (helloGreeter) SayHello(_ context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	out.Message = "Hello " + in.GetName()
	return nil
}

// One service calls another by name: both share a registry, here one in
// memory (the default is mDNS, across the local network). Start and Stop
// instead of Run, as a test would, so that the example ends.
func ExampleNewService_call() {
	reg := memory.NewRegistry()

	greeter := service.NewService(service.WithName("greeter"), service.WithRegistry(reg),
		service.WithAddress("127.0.0.1:0"))
	if err := greeterpb.RegisterGreeterHandler(greeter.Server(), helloGreeter{}); err != nil {
		log.Fatal(err)
	}
	if err := greeter.Start(); err != nil {
		log.Fatal(err)
	}
	defer greeter.Stop()

	caller := service.NewService(service.WithName("caller"), service.WithRegistry(reg),
		service.WithAddress("127.0.0.1:0"))
	if err := caller.Start(); err != nil {
		log.Fatal(err)
	}
	defer caller.Stop()

	rsp, err := greeterpb.NewGreeterService("greeter", caller.Client()).
		SayHello(context.Background(), &greeterpb.HelloRequest{Name: "Ada"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rsp.GetMessage())
	// Output: Hello Ada
}

// trace prints the unary calls it sees, on the side it is told.
func trace(side string) interceptor.Interceptor {
	return interceptor.UnaryInterceptorFunc(func(m *spec.Method, next interceptor.UnaryFunc) interceptor.UnaryFunc {
		return func(ctx context.Context, req, rsp any) error {
			fmt.Println(side, m.Procedure)
			return next(ctx, req, rsp)
		}
	})
}

// A service's interceptors wrap both the calls it serves and the calls its
// client makes.
func ExampleWithInterceptors() {
	reg := memory.NewRegistry()
	greeter := service.NewService(service.WithName("greeter"), service.WithRegistry(reg),
		service.WithAddress("127.0.0.1:0"), service.WithInterceptors(trace("greeter serves")))
	if err := greeterpb.RegisterGreeterHandler(greeter.Server(), helloGreeter{}); err != nil {
		log.Fatal(err)
	}
	if err := greeter.Start(); err != nil {
		log.Fatal(err)
	}
	defer greeter.Stop()

	caller := service.NewService(service.WithName("caller"), service.WithRegistry(reg),
		service.WithAddress("127.0.0.1:0"), service.WithInterceptors(trace("caller calls")))
	if err := caller.Start(); err != nil {
		log.Fatal(err)
	}
	defer caller.Stop()

	_, err := greeterpb.NewGreeterService("greeter", caller.Client()).
		SayHello(context.Background(), &greeterpb.HelloRequest{Name: "Ada"})
	fmt.Println(err)
	// Output:
	// caller calls /greeter.v1.Greeter/SayHello
	// greeter serves /greeter.v1.Greeter/SayHello
	// <nil>
}

// WithFlags lets the command line configure the service; each flag has a
// MICRO_ environment variable too (-server_name and MICRO_SERVER_NAME), and
// what the code sets wins over both.
func ExampleWithFlags() {
	fs := flag.NewFlagSet("greeter", flag.ExitOnError)
	svc := service.NewService(service.WithFlags(fs))

	// In a program: flag.Parse() with flag.CommandLine, or fs.Parse(os.Args[1:]).
	if err := fs.Parse([]string{"-server_name=greeter", "-registry=memory"}); err != nil {
		log.Fatal(err)
	}
	fmt.Println(svc.Name(), svc.Registry())
	// Output: greeter memory
}

// WithTLSConfig gives the server and the client one TLS configuration. With
// ClientCAs and ClientAuth set, the server requires client certificates
// (mutual TLS), and handlers find the caller's with server.PeerFromContext.
// MICRO_TLS_CERT, MICRO_TLS_KEY and MICRO_TLS_CA do the same from files.
func ExampleWithTLSConfig() {
	cert, err := tls.LoadX509KeyPair("greeter.crt", "greeter.key")
	if err != nil {
		log.Fatal(err)
	}
	caPEM, err := os.ReadFile("ca.crt")
	if err != nil {
		log.Fatal(err)
	}
	ca := x509.NewCertPool()
	ca.AppendCertsFromPEM(caPEM)

	svc := service.NewService(
		service.WithName("greeter"),
		service.WithTLSConfig(&tls.Config{
			Certificates: []tls.Certificate{cert}, // presented as server and as client
			RootCAs:      ca,                      // servers called must be signed by ca
			ClientCAs:    ca,                      // and so must clients
			ClientAuth:   tls.RequireAndVerifyClientCert,
		}),
	)
	if err := svc.Run(); err != nil {
		log.Fatal(err)
	}
}
