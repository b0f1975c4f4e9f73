package wire

import "strings"

// EncodeMessage percent-encodes a grpc-message value: bytes outside printable
// ASCII, and '%' itself, become %XX, as the gRPC spec asks.
func EncodeMessage(msg string) string {
	i := 0
	for ; i < len(msg); i++ {
		if needsEscape(msg[i]) {
			break
		}
	}
	if i == len(msg) {
		return msg
	}
	var sb strings.Builder
	sb.Grow(len(msg) + 16)
	sb.WriteString(msg[:i])
	const hex = "0123456789ABCDEF"
	for ; i < len(msg); i++ {
		c := msg[i]
		if needsEscape(c) {
			sb.WriteByte('%')
			sb.WriteByte(hex[c>>4])
			sb.WriteByte(hex[c&15])
		} else {
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

func needsEscape(c byte) bool { return c < ' ' || c > '~' || c == '%' }

// DecodeMessage reverses EncodeMessage leniently, as grpc-go does: a '%' not
// followed by two hex digits is kept as it is rather than failing the call.
func DecodeMessage(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	var sb strings.Builder
	sb.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				sb.WriteByte(hi<<4 | lo)
				i += 2
				continue
			}
		}
		sb.WriteByte(s[i])
	}
	return sb.String()
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
