package client

import (
	"context"

	"github.com/protoc-gen-micro/micro/internal/connectclient"
	"github.com/protoc-gen-micro/micro/internal/transport"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/spec"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// Protocol is the wire protocol a client speaks to servers.
type Protocol uint8

const (
	// ProtocolGRPC is gRPC over HTTP/2, with or without TLS: the default.
	ProtocolGRPC Protocol = iota
	// ProtocolConnect is the Connect protocol (connectrpc.com/docs/protocol)
	// over HTTP/1.1, or over HTTP/2 when TLS's ALPN agrees on it, for
	// servers that speak only Connect or sit behind HTTP/1.1 proxies. Bidi
	// streaming calls need HTTP/2, so over cleartext they fail.
	ProtocolConnect
	// ProtocolConnectH2C is the Connect protocol over cleartext HTTP/2
	// with prior knowledge (h2c), for bidi streaming without TLS. With
	// WithTLSConfig it is Connect over HTTP/2 only.
	ProtocolConnectH2C
)

// WithProtocol sets the protocol the client speaks; ProtocolGRPC by
// default. Codecs, compression, limits, TLS, deadlines, metadata, retries
// and interceptors work alike over every protocol.
func WithProtocol(p Protocol) Option {
	return clientOption(func(o *options) { o.protocol = p })
}

// callStream is one call in flight, whatever the protocol: the gRPC
// transport's stream or a Connect one. call, callOnce and clientStream
// drive both alike.
type callStream interface {
	SendHeader()
	SendMsg(m any, last bool) error
	CloseSend() error
	Header() (metadata.MD, error)
	Trailer() metadata.MD
	RecvMsg(m any) error
	RecvEnd() error
	Status() (*status.Error, bool)
	Cancel()
	Context() context.Context
}

// newConnectTransport returns the Connect transport of a client speaking
// Connect, nil for gRPC.
func newConnectTransport(o *options) *connectclient.Transport {
	if o.protocol != ProtocolConnect && o.protocol != ProtocolConnectH2C {
		return nil
	}
	return connectclient.New(connectclient.Config{
		TLSConfig:      o.tlsConfig,
		H2C:            o.protocol == ProtocolConnectH2C,
		DialTimeout:    o.dialTimeout,
		MaxRecvMsgSize: o.maxRecvMsgSize,
		DialFailed: func(service, addr string, err error) error {
			return status.Errorf(status.Unavailable, "%w", &connectError{addr: addr, service: service, err: err})
		},
	})
}

// openStream starts a call to addr: over the pooled gRPC connection, or
// as a Connect request. A failure to connect is an Unavailable error that
// errors.Is transport.ErrUnprocessed.
func (c *rpcClient) openStream(ctx context.Context, service, addr string, m *spec.Method, sc transport.StreamConfig) (callStream, error) {
	if c.connectTr != nil {
		cs, err := c.connectTr.NewStream(ctx, connectclient.Call{
			Service: service, Addr: addr, Procedure: m.Procedure, Streaming: m.StreamType != spec.Unary,
			Codec: sc.Codec, Compressor: sc.Compressor,
		})
		if err != nil {
			return nil, err
		}
		return cs, nil
	}
	cc, err := c.connect(ctx, service, addr)
	if err != nil {
		return nil, err
	}
	cs, err := cc.NewStream(ctx, sc)
	if err != nil {
		return nil, err
	}
	return cs, nil
}
