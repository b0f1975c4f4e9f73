package server

import "net/http"

// WithWebHandler serves HTTP/1.1, and the HTTP/2 streams that are not
// gRPC, with h instead of webrpc's handler, so that their limits are
// tested with handlers that block, stream or read as a test needs.
func WithWebHandler(h http.Handler) Option {
	return serverOption(func(o *options) { o.http1Handler = h })
}

// HTTP1Pending returns how many HTTP/1.1 requests run or wait for a slot.
func HTTP1Pending(s Server) int64 {
	rs := s.(*rpcServer)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.http1 == nil {
		return 0
	}
	return rs.http1.hs.Handler.(*http1Limiter).pending.Load()
}

// OnHTTP1Shutdown calls f when Stop starts draining the HTTP/1.1 side.
func OnHTTP1Shutdown(s Server, f func()) {
	rs := s.(*rpcServer)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.http1.hs.RegisterOnShutdown(f)
}

// HTTP1Fresh returns how many HTTP/1.1 connections have not yet sent a
// whole request.
func HTTP1Fresh(s Server) int {
	rs := s.(*rpcServer)
	rs.mu.Lock()
	h := rs.http1
	rs.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.fresh)
}
