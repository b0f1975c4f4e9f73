package webrpc

import (
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/protoc-gen-micro/micro/internal/wire"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// connectHTTPStatus is the Connect protocol's HTTP status of a unary
// error.
func connectHTTPStatus(c status.Code) int {
	switch c {
	case status.Canceled:
		return 499
	case status.InvalidArgument, status.FailedPrecondition, status.OutOfRange:
		return 400
	case status.DeadlineExceeded:
		return 504
	case status.NotFound:
		return 404
	case status.AlreadyExists, status.Aborted:
		return 409
	case status.PermissionDenied:
		return 403
	case status.ResourceExhausted:
		return 429
	case status.Unimplemented:
		return 501
	case status.Unavailable:
		return 503
	case status.Unauthenticated:
		return 401
	}
	return 500
}

// newWireError is the Connect protocol's JSON form of s. Each detail
// carries, besides its type and base64 value, its protojson form as
// "debug" when its type is linked in, for people reading with curl.
func newWireError(s *status.Error) *wire.ConnectError {
	we := &wire.ConnectError{Code: wire.ConnectCodeName(s.Code()), Message: s.Message()}
	for _, d := range s.Details() {
		url := d.GetTypeUrl()
		wd := wire.ConnectDetail{
			Type:  url[strings.LastIndexByte(url, '/')+1:],
			Value: base64.RawStdEncoding.EncodeToString(d.GetValue()),
		}
		if m, err := d.UnmarshalNew(); err == nil {
			if b, err := protojson.Marshal(m); err == nil {
				wd.Debug = b
			}
		}
		we.Details = append(we.Details, wd)
	}
	return we
}

// marshalEndStream is the JSON of the Connect end-of-stream message.
func marshalEndStream(s *status.Error, trailer metadata.MD) []byte {
	var end wire.ConnectEndStream
	if s != nil && s.Code() != status.OK {
		end.Error = newWireError(s)
	}
	if len(trailer) > 0 {
		end.Metadata = make(map[string][]string, len(trailer))
		rangeMD(trailer, func(k, v string) { end.Metadata[k] = append(end.Metadata[k], v) })
	}
	b, err := json.Marshal(&end)
	if err != nil {
		// Only strings and byte slices: it cannot fail.
		return []byte(`{"error":{"code":"internal","message":"marshal end of stream"}}`)
	}
	return b
}
