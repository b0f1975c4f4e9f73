package wire

// IdentityEncoding is the grpc-encoding of an uncompressed message. It is
// the transport's to handle and never names a compressor.
const IdentityEncoding = "identity"

// AcceptEncoding returns the value of a grpc-accept-encoding header: the
// names of the registered compressors, joined with ",". Package compress
// sets it when it registers its first compressor; until then it is empty.
var AcceptEncoding = func() string { return "" }
