package compat

import (
	"encoding/base64"
	"sort"
	"strings"

	"github.com/protoc-gen-micro/micro/conformance/internal/conformancepb"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
)

// MD turns the runner's headers into metadata. The runner writes the
// values of -bin headers in base64, while metadata holds them decoded.
func MD(headers []*conformancepb.Header) metadata.MD {
	md := make(metadata.MD, len(headers))
	for _, h := range headers {
		name := strings.ToLower(h.GetName())
		for _, v := range h.GetValue() {
			if strings.HasSuffix(name, "-bin") {
				if b, err := decodeBinary(v); err == nil {
					v = string(b)
				}
			}
			md.Append(name, v)
		}
	}
	return md
}

// Headers turns metadata into the runner's headers, sorted by name, with
// -bin values in base64.
func Headers(md metadata.MD) []*conformancepb.Header {
	names := make([]string, 0, len(md))
	for k := range md {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]*conformancepb.Header, 0, len(names))
	for _, name := range names {
		vals := append([]string(nil), md[name]...)
		if strings.HasSuffix(name, "-bin") {
			for i, v := range vals {
				vals[i] = base64.RawStdEncoding.EncodeToString([]byte(v))
			}
		}
		out = append(out, &conformancepb.Header{Name: name, Value: vals})
	}
	return out
}

// decodeBinary accepts padded and unpadded base64, as gRPC does.
func decodeBinary(v string) ([]byte, error) {
	if len(v)%4 == 0 {
		return base64.StdEncoding.DecodeString(v)
	}
	return base64.RawStdEncoding.DecodeString(v)
}
