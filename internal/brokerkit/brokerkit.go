// Package brokerkit holds what the broker implementations share and users
// do not need: the content-type header, topic and queue name rules, and the
// hook that attaches an acknowledger to a delivered message.
package brokerkit

import (
	"fmt"
	"strings"

	"github.com/protoc-gen-micro/micro/runtime/codec"
)

// HeaderContentType is the header naming the codec of a message's body, as
// "application/" + codec name; a message without it is protobuf.
const HeaderContentType = "content-type"

// ContentTypeOf returns the content-type header value for a codec name:
// "application/proto", "application/json".
func ContentTypeOf(codecName string) string { return "application/" + codecName }

// CodecOf returns the codec of a body whose content-type header is ct:
// protobuf when ct is empty.
func CodecOf(ct string) (codec.Codec, error) {
	if ct == "" {
		return codec.Proto, nil
	}
	name, ok := strings.CutPrefix(strings.ToLower(ct), "application/")
	if name == "x-protobuf" || name == "protobuf" {
		name = "proto"
	}
	if c, found := codec.Get(name); ok && found {
		return c, nil
	}
	return nil, fmt.Errorf("no codec for content type %q", ct)
}

// An Acknowledger settles a message delivered to a ManualAck subscription;
// Message.Ack and Message.Nack call it.
type Acknowledger interface {
	Ack() error
	Nack(reason error) error
}

// SetAcknowledger attaches a to m, a *broker.Message. Package broker sets it.
var SetAcknowledger func(m any, a Acknowledger)

// Topic and queue group names: 1 to maxNameLen bytes of ASCII letters,
// digits, '.', '-' and '_', starting and ending with a letter or digit,
// without "..". They become part of registry names, which some registries
// (DNS-SD) restrict this way.
const maxNameLen = 128

// ValidateTopic reports whether topic is a valid topic name. Topics are
// exact names; there are no wildcards.
func ValidateTopic(topic string) error { return validateName("topic", topic) }

// ValidateQueue reports whether name is a valid queue group name.
func ValidateQueue(name string) error { return validateName("queue group", name) }

func validateName(what, s string) error {
	if s == "" || len(s) > maxNameLen {
		return fmt.Errorf("broker: %s %q: must be 1 to %d bytes", what, s, maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		switch {
		case alnum:
		case (c == '.' || c == '-' || c == '_') && i > 0 && i < len(s)-1:
			if c == '.' && s[i+1] == '.' {
				return fmt.Errorf("broker: %s %q: empty element between dots", what, s)
			}
		default:
			return fmt.Errorf("broker: %s %q: byte %d (%q) not allowed: use letters, digits, '.', '-', '_', starting and ending with a letter or digit", what, s, i, c)
		}
	}
	return nil
}

// Stats are a broker's counters since it was created. The built-in
// brokers provide them with a Stats() Stats method.
type Stats struct {
	// Published counts Publish calls that were accepted.
	Published uint64
	// NoSubscribers counts publications to a topic without subscribers.
	NoSubscribers uint64
	// Delivered counts targets that acknowledged a message.
	Delivered uint64
	// Redelivered counts deliveries sent again after a failed attempt.
	Redelivered uint64
	// Undelivered counts targets that never acknowledged a message.
	Undelivered uint64
	// Busy counts deliveries refused by a subscription at capacity.
	Busy uint64
}
