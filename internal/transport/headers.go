package transport

import (
	"encoding/base64"
	"strings"

	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/status"
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

func isBinHeader(name string) bool { return strings.HasSuffix(name, "-bin") }

// decodeBin decodes a -bin header value, accepting padded and unpadded
// base64 as the gRPC spec asks.
func decodeBin(v string) (string, error) {
	if len(v)%4 == 0 {
		b, err := base64.StdEncoding.DecodeString(v)
		return string(b), err
	}
	b, err := base64.RawStdEncoding.DecodeString(v)
	return string(b), err
}

// encodeBin encodes a -bin header value without padding, as grpc-go does.
func encodeBin(v string) string { return base64.RawStdEncoding.EncodeToString([]byte(v)) }

// fieldsToMD turns received custom header fields into metadata; a -bin
// value that is not base64 is an error the caller reports.
func fieldsToMD(fields []hpack.HeaderField) (metadata.MD, error) {
	md := make(metadata.MD, len(fields))
	for _, f := range fields {
		v := f.Value
		if isBinHeader(f.Name) {
			d, err := decodeBin(v)
			if err != nil {
				return md, err
			}
			v = d
		}
		md[f.Name] = append(md[f.Name], v)
	}
	return md, nil
}

// validHeaderName reports whether a metadata key may be sent: lower-case
// token characters only, as HTTP/2 requires.
func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// checkMD refuses metadata HTTP/2 cannot carry: keys that are not
// lower-case tokens, and text values with control characters (NUL, CR, LF
// and the like); -bin values are base64-encoded and may hold anything.
// Reserved keys are accepted and never sent.
func checkMD(md metadata.MD) error {
	for k, vs := range md {
		if reservedHeader(k) {
			continue
		}
		if !validHeaderName(k) {
			return status.Errorf(status.Internal, "transport: metadata key %q is not a valid HTTP/2 header name", k)
		}
		if isBinHeader(k) {
			continue
		}
		for _, v := range vs {
			if !validFieldValue(v) {
				return status.Errorf(status.Internal, "transport: metadata value of %q contains a control character HTTP/2 forbids", k)
			}
		}
	}
	return nil
}

// writeMD hpack-encodes custom metadata, base64-encoding -bin values and
// skipping keys the protocol reserves or HTTP/2 forbids.
func writeMD(enc *hpack.Encoder, md metadata.MD) {
	for k, vs := range md {
		if reservedHeader(k) || !validHeaderName(k) {
			continue
		}
		bin := isBinHeader(k)
		for _, v := range vs {
			if bin {
				v = encodeBin(v)
			} else if !validFieldValue(v) {
				continue // checked when set; never put on the wire
			}
			enc.WriteField(hpack.HeaderField{Name: k, Value: v})
		}
	}
}

// validFieldName reports whether a received header name is a lower-case
// HTTP token, as RFC 9113 §8.2.1 requires of HTTP/2 field names.
func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if fieldByte[k[i]]&nameOK == 0 {
			return false
		}
	}
	return true
}

// validFieldValue reports whether a header value is free of the bytes
// RFC 9113 §8.2.1 forbids (NUL, CR, LF) and of other control characters
// but horizontal tab, as x/net's checks do.
func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if fieldByte[v[i]]&valueOK == 0 {
			return false
		}
	}
	return true
}

// fieldByte classifies bytes for the checks above with one load a byte:
// they run on every field of every request.
var fieldByte = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		if c >= ' ' && c != 0x7f || c == '\t' {
			t[c] |= valueOK
		}
	}
	for _, c := range "0123456789abcdefghijklmnopqrstuvwxyz!#$%&'*+-.^_`|~" {
		t[c] |= nameOK
	}
	return t
}()

const (
	nameOK uint8 = 1 << iota
	valueOK
)

// connectionHeader reports whether a header is connection-specific, which
// HTTP/2 forbids (RFC 9113 §8.2.2).
func connectionHeader(k string) bool {
	switch k {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return true
	}
	return false
}
