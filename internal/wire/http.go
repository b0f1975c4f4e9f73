package wire

import (
	"net/http"
	"strings"

	"github.com/protoc-gen-micro/micro/runtime/metadata"
)

// ReservedHTTPHeader reports whether a lower-case header name belongs to
// HTTP, CORS or one of the protocols served over net/http (Connect,
// gRPC-Web, gRPC), so that it is neither custom metadata received nor
// metadata a peer may send. Both sides of the Connect protocol use it.
func ReservedHTTPHeader(k string) bool {
	switch k {
	case "content-type", "content-length", "content-encoding", "accept-encoding",
		"te", "trailer", "transfer-encoding", "connection", "keep-alive", "upgrade",
		"proxy-connection", "host", "vary", "x-grpc-web":
		return true
	}
	return strings.HasPrefix(k, "connect-") || strings.HasPrefix(k, "grpc-") ||
		strings.HasPrefix(k, "access-control-") || strings.HasPrefix(k, "trailer-")
}

// HTTPHeaderToMD turns custom headers into metadata: lower-case keys,
// -bin values base64-decoded (padded or not, as gRPC accepts). A -bin
// value that is not base64 is left out, as the gRPC transport does.
func HTTPHeaderToMD(h http.Header) metadata.MD {
	md := make(metadata.MD, len(h))
	for k, vs := range h {
		k = strings.ToLower(k)
		if ReservedHTTPHeader(k) {
			continue
		}
		bin := IsBinHeader(k)
		for _, v := range vs {
			if bin {
				d, err := DecodeBin(v)
				if err != nil {
					continue
				}
				v = d
			}
			md[k] = append(md[k], v)
		}
	}
	return md
}
