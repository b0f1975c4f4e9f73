// Package endpoint names methods the way go-micro does.
package endpoint

import (
	"strings"

	"github.com/protoc-gen-micro/micro/runtime/spec"
)

// Of returns m's name as go-micro spells endpoints: the service's name
// without its protobuf package, a dot, the method's: "Greeter.SayHello".
func Of(m *spec.Method) string {
	svc := m.Service
	if i := strings.LastIndexByte(svc, '.'); i >= 0 {
		svc = svc[i+1:]
	}
	return svc + "." + m.Name
}
