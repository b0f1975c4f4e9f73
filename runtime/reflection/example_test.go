package reflection_test

import (
	"fmt"
	"log"

	"github.com/protoc-gen-micro/micro/runtime/reflection"
	"github.com/protoc-gen-micro/micro/runtime/server"
)

// Registering reflection with a bare server, after which
// grpcurl -plaintext ADDRESS list works without .proto files; a service
// made with the service package has it already.
func ExampleRegister() {
	srv := server.NewServer(server.WithAddress("127.0.0.1:0"))
	if err := reflection.Register(srv); err != nil {
		log.Fatal(err)
	}
	for _, desc := range srv.Services() {
		fmt.Println(desc.Name)
	}
	// Output:
	// grpc.reflection.v1.ServerReflection
	// grpc.reflection.v1alpha.ServerReflection
}
