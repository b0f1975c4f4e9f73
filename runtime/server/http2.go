package server

// NewServer returns a server speaking gRPC over HTTP/2.
func NewServer(opts ...Option) Server {
	panic("server: not yet implemented")
}
