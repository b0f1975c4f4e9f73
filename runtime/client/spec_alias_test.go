package client_test

import "github.com/protoc-gen-micro/micro/runtime/spec"

type specMethod = spec.Method
