package status

import "strconv"

// Code is a gRPC status code (0-16).
type Code uint32

// The status codes gRPC defines.
const (
	OK                 Code = 0
	Canceled           Code = 1
	Unknown            Code = 2
	InvalidArgument    Code = 3
	DeadlineExceeded   Code = 4
	NotFound           Code = 5
	AlreadyExists      Code = 6
	PermissionDenied   Code = 7
	ResourceExhausted  Code = 8
	FailedPrecondition Code = 9
	Aborted            Code = 10
	OutOfRange         Code = 11
	Unimplemented      Code = 12
	Internal           Code = 13
	Unavailable        Code = 14
	DataLoss           Code = 15
	Unauthenticated    Code = 16
)

var codeNames = [...]string{
	"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
	"AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
	"Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss",
	"Unauthenticated",
}

// String returns the code's name as grpc-go spells it, e.g. "NotFound".
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "Code(" + strconv.FormatUint(uint64(c), 10) + ")"
}

// wireCodes holds the decimal form of each code, so writing grpc-status
// allocates nothing.
var wireCodes = [...]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16"}

// WireString returns the code as it is written in the grpc-status trailer.
func (c Code) WireString() string {
	if int(c) < len(wireCodes) {
		return wireCodes[c]
	}
	return strconv.FormatUint(uint64(c), 10)
}

// ParseCode parses a grpc-status value. Values outside 0-16 are Unknown, as
// the gRPC spec asks of clients.
func ParseCode(s string) (Code, bool) {
	if len(s) == 0 || len(s) > 10 {
		return Unknown, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return Unknown, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > uint64(Unauthenticated) {
		return Unknown, true
	}
	return Code(n), true
}

// HTTPToCode maps an HTTP status of a response that carried no grpc-status
// to a gRPC code, as the gRPC spec's http-grpc-status-mapping does.
func HTTPToCode(httpStatus int) Code {
	switch httpStatus {
	case 400:
		return Internal
	case 401:
		return Unauthenticated
	case 403:
		return PermissionDenied
	case 404:
		return Unimplemented
	case 429, 502, 503, 504:
		return Unavailable
	}
	return Unknown
}
