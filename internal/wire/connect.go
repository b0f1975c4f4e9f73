package wire

import (
	"encoding/json"
	"strings"

	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// connectCodes are the Connect protocol's names of the status codes,
// indexed by code.
var connectCodes = [...]string{
	"ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found",
	"already_exists", "permission_denied", "resource_exhausted", "failed_precondition",
	"aborted", "out_of_range", "unimplemented", "internal", "unavailable", "data_loss",
	"unauthenticated",
}

// ConnectCodeName returns the Connect protocol's name of c, "unknown" for
// a code it has no name for.
func ConnectCodeName(c status.Code) string {
	if int(c) < len(connectCodes) {
		return connectCodes[c]
	}
	return "unknown"
}

// ParseConnectCode returns the code a Connect error names; ok is false for
// a name the protocol does not define.
func ParseConnectCode(name string) (c status.Code, ok bool) {
	for i, n := range connectCodes {
		if n == name {
			return status.Code(i), true
		}
	}
	return status.Unknown, false
}

// ConnectDetail is one detail of a Connect error in JSON: the detail's
// fully-qualified type name and its protobuf encoding in base64.
type ConnectDetail struct {
	Type  string          `json:"type"`
	Value string          `json:"value"`
	Debug json.RawMessage `json:"debug,omitempty"`
}

// ConnectError is the JSON of a Connect error: the body of a unary error
// response and the "error" of an end-of-stream message.
type ConnectError struct {
	Code    string          `json:"code"`
	Message string          `json:"message,omitempty"`
	Details []ConnectDetail `json:"details,omitempty"`
}

// ConnectEndStream is the JSON of the Connect end-of-stream message, which
// carries a streaming call's status and trailers.
type ConnectEndStream struct {
	Error    *ConnectError       `json:"error,omitempty"`
	Metadata map[string][]string `json:"metadata,omitempty"`
}

// typeURLPrefix is what a Connect detail's bare type name lacks to be the
// type URL of an Any.
const typeURLPrefix = "type.googleapis.com/"

// Status returns the error as a *status.Error, its details as Anys. A code
// the protocol does not name, or "ok", which is no error, becomes fallback;
// a detail whose value is not base64 is left out.
func (e *ConnectError) Status(fallback status.Code) *status.Error {
	code, ok := ParseConnectCode(e.Code)
	if !ok || code == status.OK {
		code = fallback
	}
	s := status.New(code, e.Message)
	if len(e.Details) == 0 {
		return s
	}
	anys := make([]proto.Message, 0, len(e.Details))
	for _, d := range e.Details {
		v, err := DecodeBin(d.Value) // padded or not: peers send either
		if err != nil || d.Type == "" {
			continue
		}
		url := d.Type
		if !strings.Contains(url, "/") {
			url = typeURLPrefix + url
		}
		anys = append(anys, &anypb.Any{TypeUrl: url, Value: []byte(v)})
	}
	// An Any is attached as it is: this cannot fail.
	withDetails, _ := s.WithDetails(anys...)
	return withDetails
}
