package gomicro

import (
	"github.com/protoc-gen-micro/micro/gomicro/server"
	"github.com/protoc-gen-micro/micro/runtime/broker"
	rtserver "github.com/protoc-gen-micro/micro/runtime/server"
)

// wrappedServer is the runtime server of a service whose handlers the
// service's HandlerWrappers wrap: each Handle adds them as a per-handler
// runtime interceptor.
type wrappedServer struct {
	rtserver.Server
	svc *gmService
}

func (w *wrappedServer) Handle(desc *rtserver.ServiceDesc, impl any, opts ...rtserver.HandlerOption) error {
	if hw := w.svc.Options().HandlerWrappers; len(hw) > 0 {
		ic := server.HandlerInterceptor(w.svc.Name(), hw...)
		opts = append(opts[:len(opts):len(opts)], rtserver.WithInterceptors(ic))
	}
	return w.Server.Handle(desc, impl, opts...)
}

// Broker returns the service's broker, which RegisterSubscriber uses.
func (w *wrappedServer) Broker() broker.Broker { return w.svc.rt.Broker() }
