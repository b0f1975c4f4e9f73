package wire

import (
	"strconv"

	"github.com/protoc-gen-micro/micro/runtime/status"
)

// codeStrings holds the decimal form of each code, so writing grpc-status
// allocates nothing.
var codeStrings = [...]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16"}

// CodeString returns c as it is written in the grpc-status trailer.
func CodeString(c status.Code) string {
	if int(c) < len(codeStrings) {
		return codeStrings[c]
	}
	return strconv.FormatUint(uint64(c), 10)
}

// ParseCode parses a grpc-status value. Values outside 0-16 are Unknown, as
// the gRPC spec asks of clients.
func ParseCode(s string) (status.Code, bool) {
	if len(s) == 0 || len(s) > 10 {
		return status.Unknown, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return status.Unknown, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > uint64(status.Unauthenticated) {
		return status.Unknown, true
	}
	return status.Code(n), true
}

// HTTPToCode maps an HTTP status of a response that carried no grpc-status
// to a gRPC code, as the gRPC spec's http-grpc-status-mapping does.
func HTTPToCode(httpStatus int) status.Code {
	switch httpStatus {
	case 400:
		return status.Internal
	case 401:
		return status.Unauthenticated
	case 403:
		return status.PermissionDenied
	case 404:
		return status.Unimplemented
	case 429, 502, 503, 504:
		return status.Unavailable
	}
	return status.Unknown
}
