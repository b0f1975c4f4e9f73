package webrpc

import (
	"encoding/base64"
	"net/url"
	"strings"

	"github.com/protoc-gen-micro/micro/runtime/status"
)

// getQuery is what a Connect GET request's query says.
type getQuery struct {
	encoding    string // the codec's name: "json", "proto"
	message     []byte // the request message, base64 decoded when asked
	compression string
	connect     string // "v1" when the client said so
	hasEncoding bool
	hasMessage  bool
}

// parseGetQuery reads the parameters of a Connect GET request. A message
// longer than max once decoded is refused before it is decoded; unknown
// parameters are ignored and the first of repeated ones wins, as
// url.Values.Get has it.
func parseGetQuery(raw string, max int) (getQuery, *status.Error) {
	var (
		q      getQuery
		msg    string
		b64    bool
		hasB64 bool
	)
	// Percent-encoding at most triples a byte and base64 adds a third.
	limit := 3*base64.URLEncoding.EncodedLen(max) + 3
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(pair, "=")
		if len(k) > 32 {
			continue // no parameter of ours has so long a name
		}
		key, err := url.QueryUnescape(k)
		if err != nil {
			return q, status.Errorf(status.InvalidArgument, "malformed query parameter name %q", k)
		}
		if key == "message" && len(v) > limit {
			return q, status.Errorf(status.ResourceExhausted, "message parameter of %d bytes is larger than configured max %d", len(v), max)
		}
		if len(v) > 256 && key != "message" {
			continue
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return q, status.Errorf(status.InvalidArgument, "malformed query parameter %s: %v", key, err)
		}
		switch key {
		case "encoding":
			if !q.hasEncoding {
				q.encoding, q.hasEncoding = val, true
			}
		case "message":
			if !q.hasMessage {
				msg, q.hasMessage = val, true
			}
		case "base64":
			if !hasB64 {
				b64, hasB64 = val == "1", true
			}
		case "compression":
			if q.compression == "" {
				q.compression = val
			}
		case "connect":
			if q.connect == "" {
				q.connect = val
			}
		}
	}
	if !b64 {
		if len(msg) > max {
			return q, status.Errorf(status.ResourceExhausted, "message size %d is larger than configured max %d", len(msg), max)
		}
		q.message = []byte(msg)
		return q, nil
	}
	enc := base64.URLEncoding
	if len(msg)%4 != 0 {
		enc = base64.RawURLEncoding
	}
	if enc.DecodedLen(len(msg)) > max+2 {
		return q, status.Errorf(status.ResourceExhausted, "message of about %d bytes is larger than configured max %d", enc.DecodedLen(len(msg)), max)
	}
	b, err := enc.DecodeString(msg)
	if err != nil {
		// Some clients send standard base64; accept it too.
		std := base64.StdEncoding
		if len(msg)%4 != 0 {
			std = base64.RawStdEncoding
		}
		b, err = std.DecodeString(msg)
	}
	if err != nil {
		return q, status.Errorf(status.InvalidArgument, "message parameter is not base64url: %v", err)
	}
	if len(b) > max {
		return q, status.Errorf(status.ResourceExhausted, "message size %d is larger than configured max %d", len(b), max)
	}
	q.message = b
	return q, nil
}
