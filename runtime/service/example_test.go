package service_test

import (
	"log"

	"github.com/protoc-gen-micro/micro/runtime/service"
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
