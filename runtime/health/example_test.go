package health_test

import (
	"fmt"
	"log"

	"github.com/protoc-gen-micro/micro/runtime/health"
	"github.com/protoc-gen-micro/micro/runtime/server"
)

// Registering a health server with a bare server; a service made with the
// service package has one already (Service.Health).
func ExampleRegister() {
	srv := server.NewServer(server.WithAddress("127.0.0.1:0"))
	hs := health.NewServer() // "" (the whole server) is SERVING
	if err := health.Register(srv, hs); err != nil {
		log.Fatal(err)
	}
	// Say what grpc-health-probe -service greeter.v1.Greeter is told.
	hs.SetServingStatus("greeter.v1.Greeter", health.NotServing)

	for _, desc := range srv.Services() {
		fmt.Println(desc.Name)
	}
	fmt.Println(health.NotServing)
	// Output:
	// grpc.health.v1.Health
	// NOT_SERVING
}
