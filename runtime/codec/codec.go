// Package codec turns messages into bytes and back, chosen by the content
// subtype of a call: "proto" for application/grpc and application/grpc+proto,
// "json" for application/grpc+json.
//
// codec knows nothing of framing or the wire; the transport prefixes each
// encoded message with its 5-byte envelope.
package codec

import (
	"fmt"
	"strings"
	"sync"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Codec encodes and decodes messages.
type Codec interface {
	// Name is the content subtype, e.g. "proto" or "json".
	Name() string
	// MarshalAppend appends the encoding of v to b. Appending lets the
	// transport encode into a pooled buffer without a copy.
	MarshalAppend(b []byte, v any) ([]byte, error)
	// Unmarshal decodes data into v. v must not keep data: the transport
	// reuses the buffer.
	Unmarshal(data []byte, v any) error
}

// Proto is the protobuf binary codec, the default.
var Proto Codec = protoCodec{}

// JSON is the protojson codec. It writes field names as in the .proto file
// camel-cased (protojson's default) and reads either spelling.
var JSON Codec = jsonCodec{}

type protoCodec struct{}

func (protoCodec) Name() string { return "proto" }

func (protoCodec) MarshalAppend(b []byte, v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("codec proto: %T is not a proto.Message", v)
	}
	return proto.MarshalOptions{}.MarshalAppend(b, m)
}

func (protoCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("codec proto: %T is not a proto.Message", v)
	}
	return proto.Unmarshal(data, m)
}

type jsonCodec struct{}

func (jsonCodec) Name() string { return "json" }

func (jsonCodec) MarshalAppend(b []byte, v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("codec json: %T is not a proto.Message", v)
	}
	return protojson.MarshalOptions{}.MarshalAppend(b, m)
}

func (jsonCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("codec json: %T is not a proto.Message", v)
	}
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(data, m)
}

var (
	mu     sync.RWMutex
	codecs = map[string]Codec{"proto": Proto, "json": JSON}
)

// Register makes c available under c.Name() to every client and server in
// the process, replacing any codec of that name.
func Register(c Codec) {
	mu.Lock()
	defer mu.Unlock()
	codecs[strings.ToLower(c.Name())] = c
}

// Get returns the codec for a content subtype ("" means proto).
func Get(subtype string) (Codec, bool) {
	if subtype == "" || subtype == "proto" {
		return Proto, true
	}
	mu.RLock()
	c, ok := codecs[subtype]
	mu.RUnlock()
	return c, ok
}

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
