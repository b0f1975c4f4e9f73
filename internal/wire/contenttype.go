package wire

import "strings"

// ContentType returns the gRPC content type for a codec name:
// "application/grpc" for proto, "application/grpc+NAME" otherwise.
func ContentType(name string) string {
	if name == "" || name == "proto" {
		return "application/grpc"
	}
	return "application/grpc+" + name
}

// Subtype parses a gRPC content type and returns its subtype ("" for bare
// application/grpc). ok is false when ct is not a gRPC content type.
func Subtype(ct string) (subtype string, ok bool) {
	const base = "application/grpc"
	if len(ct) < len(base) || !strings.EqualFold(ct[:len(base)], base) {
		return "", false
	}
	rest := ct[len(base):]
	if rest == "" {
		return "", true
	}
	switch rest[0] {
	case '+':
		sub := rest[1:]
		if i := strings.IndexByte(sub, ';'); i >= 0 {
			sub = sub[:i]
		}
		return strings.ToLower(strings.TrimSpace(sub)), true
	case ';':
		return "", true
	}
	return "", false
}
