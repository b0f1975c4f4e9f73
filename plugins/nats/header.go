package nats

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
)

// NATS header names this broker writes. Application headers travel under
// their own names; names starting with "Micro-" or "Nats-" are reserved.
const (
	hdrID       = "Micro-Id"      // the message ID
	hdrTimeout  = "Micro-Timeout" // the publisher's remaining time, decimal nanoseconds
	hdrMDPrefix = "Micro-Md-"     // + key: one value of the publisher's outgoing metadata
	hdrReason   = "Micro-Dead-Reason"
	// hdrAnswer asks core subscriptions to answer the message's reply
	// subject: set only by a publisher requiring subscribers, so that a
	// subscription never answers someone else's request (a JetStream
	// publish to the same subject waits for the stream's PubAck there).
	hdrAnswer = "Micro-Answer"
	hdrMsgID  = "Nats-Msg-Id" // JetStream's de-duplication key: the message ID
)

// maxTimeout bounds the timeout a peer can give a handler.
const maxTimeout = 24 * time.Hour

func reserved(k string) bool {
	return hasPrefixFold(k, "Micro-") || hasPrefixFold(k, "Nats-")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// checkField reports whether s can be a header name (name is true) or
// value on the NATS wire, which is line-based like MIME.
func checkField(s string, name bool) error {
	if name && s == "" {
		return fmt.Errorf("empty header name")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\r' || c == '\n' || c == 0 || name && (c == ':' || c <= ' ' || c == 0x7f) {
			return fmt.Errorf("header %q: byte %d (%q) cannot travel in a NATS header", s, i, c)
		}
	}
	return nil
}

// wireMsg is what travels in NATS headers besides the body.
type wireMsg struct {
	id      string
	header  map[string]string
	md      metadata.MD
	timeout time.Duration // 0: none
}

// encodeHeader writes m into a NATS header. Application headers with
// reserved names, and names or values that the line-based wire would
// corrupt, are refused.
func encodeHeader(m *wireMsg, rangeMD func(func(k, v string))) (natsgo.Header, error) {
	h := make(natsgo.Header, len(m.header)+3)
	h[hdrID] = []string{m.id}
	if m.timeout > 0 {
		h[hdrTimeout] = []string{strconv.FormatInt(int64(m.timeout), 10)}
	}
	for k, v := range m.header {
		if reserved(k) {
			return nil, fmt.Errorf("header %q: names starting with Micro- or Nats- are reserved", k)
		}
		if err := checkField(k, true); err != nil {
			return nil, err
		}
		if err := checkField(v, false); err != nil {
			return nil, err
		}
		h[k] = []string{v}
	}
	var err error
	rangeMD(func(k, v string) {
		if err != nil {
			return
		}
		if err = checkField(k, true); err == nil {
			err = checkField(v, false)
		}
		h.Add(hdrMDPrefix+k, v)
	})
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return h, nil
}

// decodeHeader reads what encodeHeader wrote, from a peer: it never
// trusts it. A header without an ID is refused; unknown reserved names
// are ignored so that newer peers can add some.
func decodeHeader(h natsgo.Header) (wireMsg, error) {
	var m wireMsg
	for k, vs := range h {
		if len(vs) == 0 {
			continue
		}
		switch {
		case k == hdrID:
			m.id = vs[0]
		case k == hdrTimeout:
			n, err := strconv.ParseInt(vs[0], 10, 64)
			if err != nil || n <= 0 {
				return wireMsg{}, fmt.Errorf("%s %q: want a positive number of nanoseconds", hdrTimeout, vs[0])
			}
			m.timeout = min(time.Duration(n), maxTimeout)
		case hasPrefixFold(k, hdrMDPrefix):
			key := strings.ToLower(k[len(hdrMDPrefix):])
			if key == "" {
				continue
			}
			if m.md == nil {
				m.md = metadata.MD{}
			}
			m.md[key] = append(m.md[key], vs...)
		case reserved(k):
		default:
			if m.header == nil {
				m.header = make(map[string]string, len(h))
			}
			m.header[k] = vs[0]
		}
	}
	if m.id == "" {
		return wireMsg{}, fmt.Errorf("no %s header: not published by this broker", hdrID)
	}
	return m, nil
}
