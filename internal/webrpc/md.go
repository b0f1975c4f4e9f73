package webrpc

import (
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/protoc-gen-micro/micro/internal/wire"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
)

// reservedHeader reports whether a lower-case header name belongs to HTTP,
// CORS or one of the protocols, so that it is neither custom metadata
// received nor metadata a handler may send.
func reservedHeader(k string) bool {
	switch k {
	case "content-type", "content-length", "content-encoding", "accept-encoding",
		"te", "trailer", "transfer-encoding", "connection", "keep-alive", "upgrade",
		"proxy-connection", "host", "vary", "x-grpc-web":
		return true
	}
	return strings.HasPrefix(k, "connect-") || strings.HasPrefix(k, "grpc-") ||
		strings.HasPrefix(k, "access-control-") || strings.HasPrefix(k, "trailer-")
}

// headerToMD turns a request's custom headers into metadata: lower-case
// keys, -bin values base64-decoded (padded or not, as gRPC accepts). A -bin
// value that is not base64 is left out, as the gRPC transport does.
func headerToMD(h http.Header) metadata.MD {
	md := make(metadata.MD, len(h))
	for k, vs := range h {
		k = strings.ToLower(k)
		if reservedHeader(k) {
			continue
		}
		bin := wire.IsBinHeader(k)
		for _, v := range vs {
			if bin {
				d, err := wire.DecodeBin(v)
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

// rangeMD calls f with every key and value of md fit to send as a header:
// reserved and invalid keys are skipped, -bin values base64-encoded.
func rangeMD(md metadata.MD, f func(k, v string)) {
	for k, vs := range md {
		if reservedHeader(k) || !wire.ValidMetadataKey(k) {
			continue
		}
		bin := wire.IsBinHeader(k)
		for _, v := range vs {
			if bin {
				v = base64.RawStdEncoding.EncodeToString([]byte(v))
			} else if !wire.ValidFieldValue(v) {
				continue
			}
			f(k, v)
		}
	}
}
