package webrpc

import (
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/status"
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

func isBin(k string) bool { return strings.HasSuffix(k, "-bin") }

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
		bin := isBin(k)
		for _, v := range vs {
			if bin {
				d, ok := decodeBin(v)
				if !ok {
					continue
				}
				v = d
			}
			md[k] = append(md[k], v)
		}
	}
	return md
}

func decodeBin(v string) (string, bool) {
	enc := base64.RawStdEncoding
	if len(v)%4 == 0 && strings.HasSuffix(v, "=") {
		enc = base64.StdEncoding
	}
	b, err := enc.DecodeString(v)
	return string(b), err == nil
}

// rangeMD calls f with every key and value of md fit to send as a header:
// reserved and invalid keys are skipped, -bin values base64-encoded.
func rangeMD(md metadata.MD, f func(k, v string)) {
	for k, vs := range md {
		if reservedHeader(k) || !validName(k) {
			continue
		}
		bin := isBin(k)
		for _, v := range vs {
			if bin {
				v = base64.RawStdEncoding.EncodeToString([]byte(v))
			} else if !validValue(v) {
				continue
			}
			f(k, v)
		}
	}
}

// checkMD refuses metadata a handler cannot send as HTTP headers, as the
// gRPC transport does.
func checkMD(md metadata.MD) error {
	for k, vs := range md {
		if reservedHeader(k) {
			continue
		}
		if !validName(k) {
			return status.Errorf(status.Internal, "webrpc: metadata key %q is not a valid lower-case header name", k)
		}
		if isBin(k) {
			continue
		}
		for _, v := range vs {
			if !validValue(v) {
				return status.Errorf(status.Internal, "webrpc: metadata value of %q contains a control character HTTP forbids", k)
			}
		}
	}
	return nil
}

// validName reports whether k is a lower-case HTTP token.
func validName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validValue reports whether v is a header value: visible ASCII, spaces
// and tabs (non-ASCII bytes are allowed, as HTTP allows obs-text).
func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
