package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/protoc-gen-micro/micro/internal/chain"
	"github.com/protoc-gen-micro/micro/internal/connectclient"
	"github.com/protoc-gen-micro/micro/internal/transport"
	"github.com/protoc-gen-micro/micro/internal/wire"
	"github.com/protoc-gen-micro/micro/runtime/codec"
	"github.com/protoc-gen-micro/micro/runtime/compress"
	"github.com/protoc-gen-micro/micro/runtime/interceptor"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/selector"
	"github.com/protoc-gen-micro/micro/runtime/spec"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// NewClient returns a client speaking gRPC over HTTP/2, or the protocol
// WithProtocol names. With neither a registry nor a selector, calls must
// name addresses with WithAddress.
func NewClient(opts ...Option) Client {
	o := options{dialTimeout: 5 * time.Second, retries: 2, retryRatio: 0.2, retryMinPerSecond: 10}
	for _, opt := range opts {
		opt.applyToClient(&o)
	}
	if o.selector == nil && o.registry != nil {
		o.selector = selector.NewSelector(o.registry)
	}
	c := &rpcClient{opts: o, budget: newRetryBudget(o.retryRatio, o.retryMinPerSecond, time.Now)}
	c.codec = codec.Proto
	if o.contentType != "" {
		if cd, ok := codec.Get(o.contentType); ok {
			c.codec = cd
		} else {
			c.badCodec = o.contentType
		}
	}
	c.pool = &connPool{
		cfg:         transport.DialConfig{TLSConfig: o.tlsConfig, MaxRecvMsgSize: o.maxRecvMsgSize},
		dialTimeout: o.dialTimeout,
		conns:       map[string]*poolEntry{},
	}
	c.pool.ctx, c.pool.cancel = context.WithCancel(context.Background())
	c.connectTr = newConnectTransport(&o)
	return c
}

type rpcClient struct {
	opts     options
	codec    codec.Codec
	badCodec string
	pool     *connPool
	// connectTr makes the calls of a client speaking Connect; nil for gRPC.
	connectTr *connectclient.Transport
	budget    *retryBudget
	noOpts    callOptions // shared, read-only: the options of a call given none
	closed    atomic.Bool
}

func (c *rpcClient) callOptions(opts []CallOption) *callOptions {
	if len(opts) == 0 {
		return &c.noOpts
	}
	co := &callOptions{}
	for _, o := range opts {
		o.applyToCall(co)
	}
	return co
}

// errClosed is what calls made after Close return.
var errClosed = status.New(status.Canceled, "client: the client is closed")

func (c *rpcClient) Call(ctx context.Context, service string, m *spec.Method, req, rsp any, opts ...CallOption) error {
	if c.closed.Load() {
		return errClosed
	}
	co := c.callOptions(opts)
	if len(c.opts.interceptors) == 0 {
		return c.call(ctx, service, m, req, rsp, co)
	}
	f := func(ctx context.Context, req, rsp any) error { return c.call(ctx, service, m, req, rsp, co) }
	return chain.Unary(c.opts.interceptors, m, f)(ctx, req, rsp)
}

func (c *rpcClient) Stream(ctx context.Context, service string, m *spec.Method, opts ...CallOption) (Stream, error) {
	if c.closed.Load() {
		return nil, errClosed
	}
	co := c.callOptions(opts)
	if len(c.opts.interceptors) == 0 {
		return c.newStream(ctx, service, m, co)
	}
	f := func(ctx context.Context) (interceptor.ClientStream, error) { return c.newStream(ctx, service, m, co) }
	return chain.StreamingClient(c.opts.interceptors, m, f)(ctx)
}

// Close closes every pooled connection and the selector.
func (c *rpcClient) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.pool.closeAll()
	if c.connectTr != nil {
		c.connectTr.Close()
	}
	if c.opts.selector != nil {
		return c.opts.selector.Close()
	}
	return nil
}

func (c *rpcClient) codecFor(co *callOptions) (codec.Codec, error) {
	name := co.contentType
	if name == "" {
		if c.badCodec != "" {
			return nil, status.Errorf(status.Internal, "client: no codec registered for content type %q", c.badCodec)
		}
		return c.codec, nil
	}
	cd, ok := codec.Get(name)
	if !ok {
		return nil, status.Errorf(status.Internal, "client: no codec registered for content type %q", name)
	}
	return cd, nil
}

// compressorFor returns the compressor of a call's requests, nil for none.
func (c *rpcClient) compressorFor(co *callOptions) (compress.Compressor, error) {
	name := co.sendCompression
	if name == "" {
		name = c.opts.sendCompression
	}
	if name == "" || name == wire.IdentityEncoding {
		return nil, nil
	}
	comp, ok := compress.Get(name)
	if !ok {
		return nil, status.Errorf(status.Internal, "client: no compressor registered for %q (have %s)", name, wire.AcceptEncoding())
	}
	return comp, nil
}

func (c *rpcClient) withTimeout(ctx context.Context, co *callOptions) (context.Context, context.CancelFunc) {
	d := co.timeout
	if d == 0 {
		if _, ok := ctx.Deadline(); ok {
			return ctx, nil
		}
		d = c.opts.requestTimeout
	}
	if d <= 0 {
		return ctx, nil
	}
	return context.WithTimeout(ctx, d)
}

func (c *rpcClient) retries(co *callOptions) int {
	if co.retriesSet {
		return co.retries
	}
	return c.opts.retries
}

// pick chooses where an attempt goes: one of the call's addresses, or a
// node from the selector, which must then hear how the attempt went (see
// mark). node is nil for direct addresses.
func (c *rpcClient) pick(ctx context.Context, service string, co *callOptions, exclude []string) (string, *registry.Node, error) {
	if len(co.addresses) > 0 {
		start := rand.IntN(len(co.addresses))
		for i := range co.addresses {
			a := co.addresses[(start+i)%len(co.addresses)]
			if !contains(exclude, a) {
				return a, nil, nil
			}
		}
		return "", nil, status.Errorf(status.Unavailable, "client: every address given for %s failed", service)
	}
	sel := c.opts.selector
	if sel == nil {
		return "", nil, status.Errorf(status.Unavailable, "client: no registry or selector to find service %q; use client.WithRegistry or call with client.WithAddress", service)
	}
	node, err := sel.Select(ctx, service, exclude)
	if err != nil {
		return "", nil, status.Errorf(status.Unavailable, "client: %w", err)
	}
	return node.Address, node, nil
}

// mark tells the selector how a call to node went.
func (c *rpcClient) mark(service string, node *registry.Node, err error) {
	if node != nil {
		c.opts.selector.Mark(service, node, nodeFault(err))
	}
}

// retryable reports whether a failed call may go to another node: always
// when it provably never reached a handler; when the connection failed
// after it was sent, only for methods that declare themselves idempotent
// (option idempotency_level), which a second execution cannot harm, or
// when the caller says so; never on a deadline, which is not Unavailable.
func retryable(err error, m *spec.Method, co *callOptions) bool {
	if errors.Is(err, transport.ErrUnprocessed) {
		return true
	}
	return status.CodeOf(err) == status.Unavailable && (m.Idempotency != spec.IdempotencyUnknown || co.retryOnUnavailable)
}

// nodeFault keeps only the errors that say something about the node, not
// about the call.
func nodeFault(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, transport.ErrUnprocessed) || status.CodeOf(err) == status.Unavailable {
		return err
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// call makes a unary call: it retries on another node a call that failed
// retryably (see retryable), within the call's deadline and the client's
// retry budget.
func (c *rpcClient) call(ctx context.Context, service string, m *spec.Method, req, rsp any, co *callOptions) error {
	cd, err := c.codecFor(co)
	if err != nil {
		return err
	}
	comp, err := c.compressorFor(co)
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx, co)
	if cancel != nil {
		defer cancel()
	}
	c.budget.call()
	var tried []string // grows only when a call is retried
	var lastErr error
	for attempt := 0; ; attempt++ {
		addr, node, err := c.pick(ctx, service, co, tried)
		if err != nil {
			if lastErr != nil {
				return lastErr
			}
			return err
		}
		err = c.callOnce(ctx, service, addr, m, req, rsp, co, transport.StreamConfig{Method: m.Procedure, Codec: cd, Compressor: comp})
		c.mark(service, node, err)
		if err != nil && ctx.Err() != nil {
			return ctxError(ctx, err)
		}
		if err == nil || !retryable(err, m, co) || attempt >= c.retries(co) || !c.budget.retry() {
			return err
		}
		lastErr = err
		tried = append(tried, addr)
	}
}

func (c *rpcClient) callOnce(ctx context.Context, service, addr string, m *spec.Method, req, rsp any, co *callOptions, sc transport.StreamConfig) error {
	cs, err := c.openStream(ctx, service, addr, m, sc)
	if err != nil {
		return err
	}
	if err := cs.SendMsg(req, true); err != nil && err != io.EOF {
		cs.Cancel()
		return err
	}
	err = cs.RecvMsg(rsp)
	switch {
	case err == io.EOF:
		err = status.New(status.Unimplemented, "cardinality violation: received no response message from a unary call")
	case err == nil:
		err = cs.RecvEnd()
	}
	if co.header != nil {
		*co.header, _ = cs.Header()
	}
	if co.trailer != nil {
		*co.trailer = cs.Trailer()
	}
	return err
}

// newStream opens a stream. Opening a stream writes nothing, so only
// a failure to connect is retried on another node. The selector hears how
// the stream went when it ends, so that LeastRequest counts it in flight
// until then.
func (c *rpcClient) newStream(ctx context.Context, service string, m *spec.Method, co *callOptions) (Stream, error) {
	cd, err := c.codecFor(co)
	if err != nil {
		return nil, err
	}
	comp, err := c.compressorFor(co)
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.withTimeout(ctx, co)
	c.budget.call()
	var tried []string
	var lastErr error
	for attempt := 0; ; attempt++ {
		addr, node, err := c.pick(ctx, service, co, tried)
		if err != nil {
			if lastErr != nil {
				err = lastErr
			}
			if cancel != nil {
				cancel()
			}
			return nil, err
		}
		cs, err := c.openStream(ctx, service, addr, m, transport.StreamConfig{Method: m.Procedure, Codec: cd, Compressor: comp, WatchContext: true})
		if err != nil {
			c.mark(service, node, err)
		}
		if err != nil && ctx.Err() != nil {
			if cancel != nil {
				cancel()
			}
			return nil, ctxError(ctx, err)
		}
		if err == nil {
			cs.SendHeader()
			return &clientStream{
				cs: cs, cancel: cancel, co: co, single: m.StreamType == spec.Unary || m.StreamType == spec.ClientStream,
				client: c, service: service, node: node,
			}, nil
		}
		if !errors.Is(err, transport.ErrUnprocessed) || attempt >= c.retries(co) || !c.budget.retry() {
			if cancel != nil {
				cancel()
			}
			return nil, err
		}
		lastErr = err
		tried = append(tried, addr)
	}
}

// connect returns the pooled connection to addr, or the failure to connect
// as an Unavailable *connectError naming the address and the service.
func (c *rpcClient) connect(ctx context.Context, service, addr string) (*transport.ClientConn, error) {
	cc, err := c.pool.get(ctx, addr)
	if err != nil {
		return nil, status.Errorf(status.Unavailable, "%w", &connectError{addr: addr, service: service, err: err})
	}
	return cc, nil
}

// connectError is a failure to connect to a node, told in one sentence:
// "client: cannot connect to 127.0.0.1:1 (service "greeter"): dial tcp
// 127.0.0.1:1: connect: connection refused". It unwraps to the pool's error,
// which is marked transport.ErrUnprocessed, so the client knows the call is
// safe to retry on another node.
type connectError struct {
	addr, service string
	err           error // the pool's: a *transport.DialError, or the wait cut short
}

func (e *connectError) Error() string {
	reason := e.err.Error()
	if de := (*transport.DialError)(nil); errors.As(e.err, &de) {
		reason = de.Err.Error()
	}
	return fmt.Sprintf("client: cannot connect to %s (service %q): %s", e.addr, e.service, reason)
}

func (e *connectError) Unwrap() error { return e.err }

// ctxError reports a call that failed after its context ended as the
// context's code (DeadlineExceeded or Canceled), whatever the transport saw
// at that moment, e.g. a dial cut short; the status keeps err's text.
func ctxError(ctx context.Context, err error) error {
	if s, ok := status.FromError(err); ok && (s.Code() == status.DeadlineExceeded || s.Code() == status.Canceled) {
		return err
	}
	code := status.Canceled
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		code = status.DeadlineExceeded
	}
	return status.Errorf(code, "%v: %v", ctx.Err(), err)
}

// clientStream adapts a call's stream to Stream.
type clientStream struct {
	cs      callStream
	cancel  context.CancelFunc
	co      *callOptions
	single  bool // the server sends one message (client-streaming)
	client  *rpcClient
	service string
	node    *registry.Node // to Mark when the stream ends; nil for direct addresses
	once    sync.Once
}

func (s *clientStream) Context() context.Context { return s.cs.Context() }

// SendMsg sends a message. If the call has already failed it returns the
// call's status; io.EOF means the server ended the call with OK.
func (s *clientStream) SendMsg(m any) error {
	err := s.cs.SendMsg(m, false)
	if err == io.EOF {
		if st, ended := s.cs.Status(); ended && st != nil {
			return st
		}
	}
	return err
}
func (s *clientStream) CloseSend() error { return s.cs.CloseSend() }
func (s *clientStream) Header() (metadata.MD, error) {
	return s.cs.Header()
}
func (s *clientStream) Trailer() metadata.MD { return s.cs.Trailer() }

// RecvMsg receives a message. When the server sends only one, as in a
// client-streaming call, it also waits for the status, so an error the
// server reports after its reply is not lost.
func (s *clientStream) RecvMsg(m any) error {
	err := s.cs.RecvMsg(m)
	if s.single {
		switch err {
		case nil:
			err = s.cs.RecvEnd()
		case io.EOF:
			err = status.New(status.Unimplemented, "cardinality violation: received no response message from a client-streaming call")
		}
		s.done(err) // the call has ended either way
		return err
	}
	if err == io.EOF {
		s.done(nil)
	} else if err != nil {
		s.done(err)
	}
	return err
}

func (s *clientStream) Close() error {
	s.cs.Cancel()
	s.done(nil) // ended by the caller, not by the node
	return nil
}

// done runs once, when the call ends with err.
func (s *clientStream) done(err error) {
	s.once.Do(func() {
		s.client.mark(s.service, s.node, err)
		if s.co.header != nil {
			*s.co.header, _ = s.cs.Header()
		}
		if s.co.trailer != nil {
			*s.co.trailer = s.cs.Trailer()
		}
		if s.cancel != nil {
			s.cancel()
		}
	})
}

// connPool keeps one connection per address and dials each address once
// even when many calls want it at the same moment.
type connPool struct {
	cfg         transport.DialConfig
	dialTimeout time.Duration
	// ctx is the parent of every dial; closeAll cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	mu    sync.Mutex
	conns map[string]*poolEntry
}

type poolEntry struct {
	cc    *transport.ClientConn
	err   error
	ready chan struct{}
}

// get returns the connection to addr, dialing it if there is none. The
// dial belongs to the pool, not to the caller that started it: it runs
// with the pool's own timeout, and each caller waits for it only as long
// as its own context allows, so one caller's short deadline never fails
// another's call.
func (p *connPool) get(ctx context.Context, addr string) (*transport.ClientConn, error) {
	for {
		p.mu.Lock()
		e := p.conns[addr]
		if e == nil {
			e = &poolEntry{ready: make(chan struct{})}
			p.conns[addr] = e
			go p.dial(addr, e)
		}
		p.mu.Unlock()
		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, &transport.DialError{Addr: addr, Err: fmt.Errorf("gave up waiting for the connection: %v", ctx.Err())}
		}
		if e.err == nil && e.cc.Usable() {
			return e.cc, nil
		}
		p.mu.Lock()
		if p.conns[addr] == e {
			delete(p.conns, addr)
		}
		p.mu.Unlock()
		if e.err != nil {
			return nil, e.err
		}
	}
}

func (p *connPool) dial(addr string, e *poolEntry) {
	ctx, cancel := context.WithTimeout(p.ctx, p.dialTimeout)
	defer cancel()
	e.cc, e.err = transport.Dial(ctx, addr, p.cfg)
	if e.err != nil {
		p.mu.Lock()
		if p.conns[addr] == e {
			delete(p.conns, addr)
		}
		p.mu.Unlock()
	}
	close(e.ready)
}

func (p *connPool) closeAll() {
	p.cancel()
	p.mu.Lock()
	conns := p.conns
	p.conns = map[string]*poolEntry{}
	p.mu.Unlock()
	for _, e := range conns {
		<-e.ready
		if e.cc != nil {
			e.cc.Close()
		}
	}
}
