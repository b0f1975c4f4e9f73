package wire

import (
	"encoding/base64"
	"strings"

	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// Custom metadata as header fields, shared by the HTTP/2 transport and the
// HTTP/1.1 protocols (internal/webrpc): the same keys are valid, and -bin
// values travel base64-encoded, on every path.

// IsBinHeader reports whether a metadata key carries binary values.
func IsBinHeader(name string) bool { return strings.HasSuffix(name, "-bin") }

// DecodeBin decodes a -bin header value, accepting padded and unpadded
// base64 as the gRPC spec asks.
func DecodeBin(v string) (string, error) {
	if len(v)%4 == 0 {
		b, err := base64.StdEncoding.DecodeString(v)
		return string(b), err
	}
	b, err := base64.RawStdEncoding.DecodeString(v)
	return string(b), err
}

// EncodeBin encodes a -bin header value without padding, as grpc-go does.
func EncodeBin(v string) string { return base64.RawStdEncoding.EncodeToString([]byte(v)) }

// ValidMetadataKey reports whether a metadata key may be sent: lower-case
// letters, digits, '-', '_' and '.', as gRPC allows.
func ValidMetadataKey(k string) bool {
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

// ValidFieldName reports whether a received header name is a lower-case
// HTTP token, as RFC 9113 §8.2.1 requires of HTTP/2 field names.
func ValidFieldName(k string) bool {
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

// ValidFieldValue reports whether a header value is free of the bytes
// RFC 9113 §8.2.1 forbids (NUL, CR, LF) and of other control characters
// but horizontal tab, as x/net's checks do.
func ValidFieldValue(v string) bool {
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

// CheckMD refuses metadata a handler cannot send as header fields: keys
// that are not valid metadata keys, and text values with control
// characters; -bin values are base64-encoded and may hold anything. Keys
// reserved (by the protocol, as the caller says) are accepted and never
// sent.
func CheckMD(md metadata.MD, reserved func(string) bool) error {
	for k, vs := range md {
		if reserved(k) {
			continue
		}
		if !ValidMetadataKey(k) {
			return status.Errorf(status.Internal, "metadata key %q is not a valid header name", k)
		}
		if IsBinHeader(k) {
			continue
		}
		for _, v := range vs {
			if !ValidFieldValue(v) {
				return status.Errorf(status.Internal, "metadata value of %q contains a control character headers may not hold", k)
			}
		}
	}
	return nil
}

// MergeMD appends src's values to dst's, making dst when it is nil.
func MergeMD(dst, src metadata.MD) metadata.MD {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		dst = make(metadata.MD, len(src))
	}
	for k, v := range src {
		dst[k] = append(dst[k], v...)
	}
	return dst
}
