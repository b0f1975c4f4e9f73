// Package connectclient is the client side of the Connect protocol
// (connectrpc.com/docs/protocol) over net/http, for runtime/client's
// WithProtocol: unary calls as one POST, streaming calls as enveloped
// messages ending with the end-of-stream message.
//
// It speaks to any Connect server, ours (internal/webrpc) or connect-go's,
// over HTTP/1.1, HTTP/2 negotiated by TLS, or cleartext HTTP/2 (h2c). It
// does not pick nodes, retry or run interceptors: runtime/client does, over
// a Stream as it does over a gRPC stream.
package connectclient

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"time"

	"github.com/protoc-gen-micro/micro/internal/transport"
	"github.com/protoc-gen-micro/micro/runtime/codec"
	"github.com/protoc-gen-micro/micro/runtime/compress"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// defaultMaxRecvMsgSize is the receive limit when Config leaves it 0, the
// same as the gRPC transport's.
const defaultMaxRecvMsgSize = 4 << 20

// maxIdleConnsPerHost keeps this many HTTP/1.1 connections to a server for
// reuse: each concurrent HTTP/1.1 call needs a connection of its own, and
// net/http's default of 2 would close the rest after every burst.
const maxIdleConnsPerHost = 64

// maxResponseHeaderBytes bounds the response headers a server can make us
// read.
const maxResponseHeaderBytes = 1 << 20

// idleConnTimeout closes a connection left idle this long, so that one a
// call returned after Close does not stay open for ever.
const idleConnTimeout = 90 * time.Second

// Config configures a Transport.
type Config struct {
	// TLSConfig makes calls over TLS (https); nil for cleartext.
	TLSConfig *tls.Config
	// H2C makes cleartext calls over HTTP/2 with prior knowledge instead of
	// HTTP/1.1; with TLS, it restricts ALPN to HTTP/2.
	H2C bool
	// DialTimeout bounds connecting and the TLS handshake; none when 0.
	DialTimeout time.Duration
	// MaxRecvMsgSize bounds a response message, before and after
	// decompression, and the end-of-stream and error JSON; 4 MiB when 0.
	MaxRecvMsgSize int
	// DialFailed turns a failure to reach addr (the request was never
	// sent) into the error the call fails with; err is a
	// *transport.DialError, which errors.Is transport.ErrUnprocessed. Nil
	// reports it as Unavailable.
	DialFailed func(service, addr string, err error) error
}

// Transport makes Connect calls over one net/http transport, which keeps
// the connections to every address.
type Transport struct {
	cfg    Config
	http   *http.Client
	tr     *http.Transport
	scheme string
	maxMsg int
}

// New returns a Transport for cfg.
func New(cfg Config) *Transport {
	if cfg.MaxRecvMsgSize <= 0 {
		cfg.MaxRecvMsgSize = defaultMaxRecvMsgSize
	}
	tr := &http.Transport{
		Protocols:              protocols(cfg),
		DialContext:            (&net.Dialer{Timeout: cfg.DialTimeout}).DialContext,
		TLSHandshakeTimeout:    cfg.DialTimeout,
		DisableCompression:     true, // we negotiate the encoding ourselves
		MaxIdleConnsPerHost:    maxIdleConnsPerHost,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		IdleConnTimeout:        idleConnTimeout,
	}
	scheme := "http"
	if cfg.TLSConfig != nil {
		// net/http sets NextProtos on the config it is given.
		tr.TLSClientConfig = cfg.TLSConfig.Clone()
		scheme = "https"
	}
	return &Transport{cfg: cfg, http: &http.Client{Transport: tr}, tr: tr, scheme: scheme, maxMsg: cfg.MaxRecvMsgSize}
}

// protocols is the HTTP versions cfg allows: over TLS, HTTP/1.1 and HTTP/2
// chosen by ALPN (only HTTP/2 for H2C); in cleartext, HTTP/1.1, or only
// HTTP/2 with prior knowledge for H2C.
func protocols(cfg Config) *http.Protocols {
	p := &http.Protocols{}
	switch {
	case cfg.H2C && cfg.TLSConfig == nil:
		p.SetUnencryptedHTTP2(true)
	case cfg.H2C:
		p.SetHTTP2(true)
	default:
		p.SetHTTP1(true)
		p.SetHTTP2(true)
	}
	return p
}

// Close closes the idle connections; calls in flight keep theirs until
// they end.
func (t *Transport) Close() { t.tr.CloseIdleConnections() }

// Call describes one call.
type Call struct {
	// Service names the service, for the error of a failed dial.
	Service string
	// Addr is the server's host:port.
	Addr string
	// Procedure is the method's path, e.g. "/greeter.v1.Greeter/SayHello".
	Procedure string
	// Streaming selects the streaming protocol; the unary one otherwise.
	Streaming bool
	// Codec encodes the messages; proto when nil.
	Codec codec.Codec
	// Compressor compresses the requests; nil sends them uncompressed.
	Compressor compress.Compressor
}

// NewStream starts a call. A unary call sends its request with its one
// message (SendMsg with last, or CloseSend). A streaming call's request
// starts at once, and NewStream returns once a connection carries it, so
// that a failure to connect is reported here, before anything was sent.
func (t *Transport) NewStream(ctx context.Context, call Call) (*Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxStatus(err)
	}
	if call.Codec == nil {
		call.Codec = codec.Proto
	}
	s := newStream(ctx, t, call)
	if !call.Streaming {
		return s, nil
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// dialFailed reports a call that never reached a connection.
func (t *Transport) dialFailed(call *Call, err error) error {
	de := &transport.DialError{Addr: call.Addr, Err: err}
	if t.cfg.DialFailed != nil {
		return t.cfg.DialFailed(call.Service, call.Addr, de)
	}
	return status.Errorf(status.Unavailable, "%w", de)
}
