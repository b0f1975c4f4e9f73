// Package health serves the gRPC health checking protocol
// (grpc.health.v1.Health), which load balancers, Kubernetes probes and
// grpc-health-probe ask to learn whether a server, or one of its services,
// can take calls. It is what grpc-go users know as
// google.golang.org/grpc/health:
//
//	hs := health.NewServer()
//	if err := health.Register(srv, hs); err != nil { ... }
//	hs.SetServingStatus("greeter.v1.Greeter", health.Serving)
//
// A service made with the service package registers one already and keeps
// its statuses in step with its life; reach it with Service.Health.
//
// Its messages are not generated code and are not registered in
// protoregistry.GlobalFiles, so a program may link grpc-go's health
// package as well. health reports statuses; deciding them is the caller's.
package health

import (
	"context"
	"errors"
	"strconv"
	"sync"

	"github.com/protoc-gen-micro/micro/internal/grpcapi"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Status is a serving status, as grpc.health.v1 names it.
type Status int32

// The statuses. ServiceUnknown is only ever sent to a watcher of a service
// without a status; Check answers NOT_FOUND for it instead.
const (
	Unknown        Status = 0
	Serving        Status = 1
	NotServing     Status = 2
	ServiceUnknown Status = 3
)

// String returns the status's name in the protocol, e.g. "NOT_SERVING".
func (s Status) String() string {
	switch s {
	case Unknown:
		return "UNKNOWN"
	case Serving:
		return "SERVING"
	case NotServing:
		return "NOT_SERVING"
	case ServiceUnknown:
		return "SERVICE_UNKNOWN"
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// Bounds on what callers can make a Server hold.
const (
	// maxListed is the most statuses List answers with; above it, List
	// fails with RESOURCE_EXHAUSTED, as grpc-go's does.
	maxListed = 100
	// defaultMaxWatchers bounds the Watch calls open at once, across
	// every name; one more fails with RESOURCE_EXHAUSTED. Each holds a
	// goroutine, a one-slot channel and, with the first of its name, an
	// entry in a map.
	defaultMaxWatchers = 1000
	// maxNameLen bounds a service name a caller may Watch (a watched name
	// is held until the call ends); longer ones fail with
	// INVALID_ARGUMENT.
	maxNameLen = 1024
)

// Server holds serving statuses and answers Check, Watch and List for them.
// Its zero value is not usable; make one with NewServer. Its methods may
// be called at any time, from any goroutine.
type Server struct {
	mu          sync.Mutex
	statuses    map[string]Status
	watchers    map[string]map[*watcher]struct{}
	nwatchers   int
	maxWatchers int
	// shutdown says Shutdown was called and Resume not since; closed
	// ends the Watch calls open when it was.
	shutdown bool
	closed   chan struct{}
}

// watcher is one Watch call. Its slot holds the latest status it has not
// sent yet: a slow caller costs one status, never a queue, and never
// blocks SetServingStatus.
type watcher struct {
	slot chan Status
}

// NewServer returns a server with the overall status (the empty service
// name) SERVING, as grpc-go's does.
func NewServer() *Server {
	return &Server{
		statuses:    map[string]Status{"": Serving},
		watchers:    map[string]map[*watcher]struct{}{},
		maxWatchers: defaultMaxWatchers,
		closed:      make(chan struct{}),
	}
}

// SetServingStatus sets service's status (the empty name is the server as
// a whole) and tells its watchers. It is ignored after Shutdown until
// Resume.
func (s *Server) SetServingStatus(service string, st Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return
	}
	s.setLocked(service, st)
}

func (s *Server) setLocked(service string, st Status) {
	s.statuses[service] = st
	for w := range s.watchers[service] {
		w.put(st)
	}
}

// put replaces the unsent status with st. Only setLocked and addWatcher
// put, under s.mu, so the send never blocks.
func (w *watcher) put(st Status) {
	select {
	case <-w.slot:
	default:
	}
	w.slot <- st
}

// Shutdown sets every status NOT_SERVING and ignores SetServingStatus
// until Resume. Open Watch calls are sent NOT_SERVING and then end with
// UNAVAILABLE, as do calls to Watch until Resume, so that a graceful stop
// of the server does not wait its grace period for them; their callers
// watch again, elsewhere or after Resume.
func (s *Server) Shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return
	}
	for service := range s.statuses {
		s.setLocked(service, NotServing)
	}
	s.shutdown = true
	close(s.closed)
}

// Resume sets every status SERVING and takes SetServingStatus again.
func (s *Server) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		s.shutdown = false
		s.closed = make(chan struct{})
	}
	for service := range s.statuses {
		s.setLocked(service, Serving)
	}
}

// check answers Check.
func (s *Server) check(service string) (Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.statuses[service]
	if !ok {
		return 0, status.New(status.NotFound, "unknown service")
	}
	return st, nil
}

// list answers List.
func (s *Server) list() (map[string]Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.statuses) > maxListed {
		return nil, status.Errorf(status.ResourceExhausted, "server health list exceeds maximum capacity: %d", maxListed)
	}
	out := make(map[string]Status, len(s.statuses))
	for k, v := range s.statuses {
		out[k] = v
	}
	return out, nil
}

// addWatcher adds a watcher of service, its slot holding the current
// status, and returns it with the channel closed by Shutdown.
func (s *Server) addWatcher(service string) (*watcher, <-chan struct{}, error) {
	if len(service) > maxNameLen {
		return nil, nil, status.Errorf(status.InvalidArgument, "service name longer than %d bytes", maxNameLen)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nwatchers >= s.maxWatchers {
		return nil, nil, status.Errorf(status.ResourceExhausted, "health: more than %d Watch calls at once", s.maxWatchers)
	}
	w := &watcher{slot: make(chan Status, 1)}
	st, ok := s.statuses[service]
	if !ok {
		st = ServiceUnknown
	}
	w.put(st)
	set := s.watchers[service]
	if set == nil {
		set = map[*watcher]struct{}{}
		s.watchers[service] = set
	}
	set[w] = struct{}{}
	s.nwatchers++
	return w, s.closed, nil
}

func (s *Server) removeWatcher(service string, w *watcher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := s.watchers[service]
	delete(set, w)
	if len(set) == 0 {
		delete(s.watchers, service)
	}
	s.nwatchers--
}

// watch answers Watch: the current status at once, then every change
// (repeats of the last status sent are skipped), until the caller goes
// away or Shutdown.
func (s *Server) watch(ctx context.Context, service string, send func(Status) error) error {
	w, closed, err := s.addWatcher(service)
	if err != nil {
		return err
	}
	defer s.removeWatcher(service, w)
	last := Status(-1)
	sendLatest := func(st Status) error {
		if st == last {
			return nil
		}
		last = st
		return send(st)
	}
	for {
		select {
		case st := <-w.slot:
			if err := sendLatest(st); err != nil {
				return err
			}
		case <-closed:
			// Shutdown put NOT_SERVING in the slot before closing, unless
			// it was taken already: the caller hears it before the end.
			select {
			case st := <-w.slot:
				if err := sendLatest(st); err != nil {
					return err
				}
			default:
			}
			return status.New(status.Unavailable, "health: server is shutting down")
		case <-ctx.Done():
			return status.Convert(ctx.Err())
		}
	}
}

// Register registers h with srv as the grpc.health.v1.Health service.
func Register(srv server.Server, h *Server) error {
	if h == nil {
		return errors.New("health: Register: nil *Server")
	}
	return srv.Handle(serviceDesc, h)
}

// Fields of the messages, looked up once.
var (
	requestService = grpcapi.NewRequest(grpcapi.HealthCheck).Descriptor().Fields().ByName("service")
	responseStatus = grpcapi.NewResponse(grpcapi.HealthCheck).Descriptor().Fields().ByName("status")
	listStatuses   = grpcapi.NewResponse(grpcapi.HealthList).Descriptor().Fields().ByName("statuses")
)

func newResponse(st Status) *dynamicpb.Message {
	m := grpcapi.NewResponse(grpcapi.HealthCheck)
	m.Set(responseStatus, protoreflect.ValueOfEnum(protoreflect.EnumNumber(st)))
	return m
}

// serviceDesc is the hand-written method table of grpc.health.v1.Health
// over dynamicpb messages.
var serviceDesc = &server.ServiceDesc{
	Name: grpcapi.HealthService,
	Methods: []server.MethodDesc{
		{
			Method:      grpcapi.HealthCheck,
			NewRequest:  func() any { return grpcapi.NewRequest(grpcapi.HealthCheck) },
			NewResponse: func() any { return grpcapi.NewResponse(grpcapi.HealthCheck) },
			Unary: func(impl any, _ context.Context, req, rsp any) error {
				st, err := impl.(*Server).check(req.(*dynamicpb.Message).Get(requestService).String())
				if err != nil {
					return err
				}
				rsp.(*dynamicpb.Message).Set(responseStatus, protoreflect.ValueOfEnum(protoreflect.EnumNumber(st)))
				return nil
			},
		},
		{
			Method:      grpcapi.HealthList,
			NewRequest:  func() any { return grpcapi.NewRequest(grpcapi.HealthList) },
			NewResponse: func() any { return grpcapi.NewResponse(grpcapi.HealthList) },
			Unary: func(impl any, _ context.Context, _, rsp any) error {
				statuses, err := impl.(*Server).list()
				if err != nil {
					return err
				}
				m := rsp.(*dynamicpb.Message).Mutable(listStatuses).Map()
				for name, st := range statuses {
					m.Set(protoreflect.ValueOfString(name).MapKey(), protoreflect.ValueOfMessage(newResponse(st)))
				}
				return nil
			},
		},
		{
			Method:     grpcapi.HealthWatch,
			NewRequest: func() any { return grpcapi.NewRequest(grpcapi.HealthWatch) },
			Stream: func(impl any, ctx context.Context, req any, stream server.Stream) error {
				service := req.(*dynamicpb.Message).Get(requestService).String()
				return impl.(*Server).watch(ctx, service, func(st Status) error {
					return stream.SendMsg(newResponse(st))
				})
			},
		},
	},
}
