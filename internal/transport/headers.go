package transport

import (
	"github.com/protoc-gen-micro/micro/internal/wire"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"golang.org/x/net/http2/hpack"
)

// reservedHeader reports whether a header belongs to the protocol and is
// never surfaced as custom metadata.
func reservedHeader(name string) bool {
	if len(name) > 0 && name[0] == ':' {
		return true
	}
	switch name {
	case "content-type", "te", "grpc-timeout", "grpc-status", "grpc-message",
		"grpc-status-details-bin", "grpc-encoding", "grpc-accept-encoding",
		"connection", "transfer-encoding", "upgrade", "keep-alive", "proxy-connection",
		"content-length", "host":
		return true
	}
	return false
}

// fieldsToMD turns received custom header fields into metadata; a -bin
// value that is not base64 is an error the caller reports.
func fieldsToMD(fields []hpack.HeaderField) (metadata.MD, error) {
	md := make(metadata.MD, len(fields))
	for _, f := range fields {
		v := f.Value
		if wire.IsBinHeader(f.Name) {
			d, err := wire.DecodeBin(v)
			if err != nil {
				return md, err
			}
			v = d
		}
		md[f.Name] = append(md[f.Name], v)
	}
	return md, nil
}

// writeMD hpack-encodes custom metadata, base64-encoding -bin values and
// skipping keys the protocol reserves or HTTP/2 forbids.
func writeMD(enc *hpack.Encoder, md metadata.MD) {
	for k, vs := range md {
		if reservedHeader(k) || !wire.ValidMetadataKey(k) {
			continue
		}
		bin := wire.IsBinHeader(k)
		for _, v := range vs {
			if bin {
				v = wire.EncodeBin(v)
			} else if !wire.ValidFieldValue(v) {
				continue // checked when set; never put on the wire
			}
			enc.WriteField(hpack.HeaderField{Name: k, Value: v})
		}
	}
}

// connectionHeader reports whether a header is connection-specific, which
// HTTP/2 forbids (RFC 9113 §8.2.2).
func connectionHeader(k string) bool {
	switch k {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return true
	}
	return false
}
