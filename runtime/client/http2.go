package client

// NewClient returns a client speaking gRPC over HTTP/2.
func NewClient(opts ...Option) Client {
	panic("client: not yet implemented")
}
