package brokerpb

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Field numbers of Delivery and of a map entry.
const (
	fieldSubscription = 1
	fieldTopic        = 2
	fieldIDs          = 3
	fieldBodies       = 4
	fieldAttempts     = 5
	fieldTimeouts     = 6
	fieldExtras       = 7

	fieldKey   = 1
	fieldValue = 2
)

var errInvalidUTF8 = errors.New("string field contains invalid UTF-8")

// UnmarshalVT decodes b into x, which must be empty, as proto.Unmarshal
// with DiscardUnknown would, without reflection and with each column
// allocated once at its final size. Every ID and body is its own
// allocation: a handler that keeps one keeps nothing else of the batch
// alive. The codec uses it for every Deliver request (see package codec).
func (x *Delivery) UnmarshalVT(b []byte) error {
	// First pass: validate the framing and size the columns.
	var ids, bodies, attempts, timeouts int
	err := rangeFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == fieldAttempts:
			attempts += countVarints(typ, v)
		case num == fieldTimeouts:
			timeouts += countVarints(typ, v)
		case num == fieldIDs && typ == protowire.BytesType:
			ids++
		case num == fieldBodies && typ == protowire.BytesType:
			bodies++
		}
		return nil
	})
	if err != nil {
		return err
	}
	x.Ids = make([]string, 0, ids)
	x.Bodies = make([][]byte, 0, bodies)
	x.Attempts = make([]uint32, 0, attempts)
	x.TimeoutNanos = make([]int64, 0, timeouts)
	err = rangeFields(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		switch num {
		case fieldSubscription, fieldTopic:
			if typ != protowire.BytesType {
				return nil
			}
			if !utf8.Valid(v) {
				return fmt.Errorf("brokerpb: Delivery field %d: %w", num, errInvalidUTF8)
			}
			if num == fieldSubscription {
				x.Subscription = string(v)
			} else {
				x.Topic = string(v)
			}
		case fieldIDs:
			if typ != protowire.BytesType {
				return nil
			}
			if !utf8.Valid(v) {
				return fmt.Errorf("brokerpb: Delivery field %d: %w", num, errInvalidUTF8)
			}
			x.Ids = append(x.Ids, string(v))
		case fieldBodies:
			if typ != protowire.BytesType {
				return nil
			}
			x.Bodies = append(x.Bodies, append([]byte(nil), v...))
		case fieldAttempts:
			return decodeVarints(typ, v, n, func(u uint64) { x.Attempts = append(x.Attempts, uint32(u)) })
		case fieldTimeouts:
			return decodeVarints(typ, v, n, func(u uint64) { x.TimeoutNanos = append(x.TimeoutNanos, int64(u)) })
		case fieldExtras:
			if typ != protowire.BytesType {
				return nil
			}
			return x.decodeExtrasEntry(v)
		}
		return nil
	})
	if err != nil {
		return err
	}

	return nil
}

// decodeExtrasEntry decodes one entry of the extras map; as in any map
// entry, fields may come in any order, the last of a field wins and a
// missing one is the zero value.
func (x *Delivery) decodeExtrasEntry(b []byte) error {
	var key uint32
	var value []byte
	err := rangeFields(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		switch {
		case num == fieldKey && typ == protowire.VarintType:
			key = uint32(n)
		case num == fieldValue && typ == protowire.BytesType:
			value = v
		}
		return nil
	})
	if err != nil {
		return err
	}
	e := &Extras{}
	if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(value, e); err != nil {
		return fmt.Errorf("brokerpb: Delivery extras[%d]: %w", key, err)
	}
	if x.Extras == nil {
		x.Extras = map[uint32]*Extras{}
	}
	x.Extras[key] = e
	return nil
}

// rangeFields calls f with each field of the encoded message b: its number
// and wire type and, for a length-delimited field, its bytes, for a varint
// its value. Fixed-size fields and groups are passed with neither. It
// fails on malformed framing, as proto.Unmarshal does.
func rangeFields(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("brokerpb: %w", protowire.ParseError(n))
		}
		if num > protowire.MaxValidNumber {
			return fmt.Errorf("brokerpb: field number %d out of range", num)
		}
		b = b[n:]
		var v []byte
		var u uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			u, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("brokerpb: field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := f(num, typ, v, u); err != nil {
			return err
		}
	}
	return nil
}

// countVarints returns how many elements of a repeated varint field a
// field of type typ and bytes v holds: those of a packed field end with a
// byte below 0x80.
func countVarints(typ protowire.Type, v []byte) int {
	switch typ {
	case protowire.VarintType:
		return 1
	case protowire.BytesType:
		n := 0
		for _, c := range v {
			if c < 0x80 {
				n++
			}
		}
		return n
	}
	return 0
}

// decodeVarints decodes a repeated varint field in either encoding:
// packed (v holds the varints) or one element (n).
func decodeVarints(typ protowire.Type, v []byte, n uint64, add func(uint64)) error {
	switch typ {
	case protowire.VarintType:
		add(n)
	case protowire.BytesType:
		for len(v) > 0 {
			u, k := protowire.ConsumeVarint(v)
			if k < 0 {
				return fmt.Errorf("brokerpb: packed varints: %w", protowire.ParseError(k))
			}
			add(u)
			v = v[k:]
		}
	}
	return nil
}
