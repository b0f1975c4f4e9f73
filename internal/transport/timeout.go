package transport

import (
	"fmt"
	"math"
	"time"
)

// encodeTimeout writes d as a grpc-timeout value: at most 8 digits and a
// unit, rounding up so the server never sees a shorter deadline.
func encodeTimeout(d time.Duration) string {
	if d <= 0 {
		return "0n"
	}
	const max = 99999999
	units := [...]struct {
		d time.Duration
		u byte
	}{{time.Nanosecond, 'n'}, {time.Microsecond, 'u'}, {time.Millisecond, 'm'}, {time.Second, 'S'}, {time.Minute, 'M'}, {time.Hour, 'H'}}
	for _, u := range units {
		v := d / u.d
		if d%u.d != 0 {
			v++ // round up; (d + u.d - 1) would overflow near MaxInt64
		}
		if v <= max {
			return fmt.Sprintf("%d%c", int64(v), u.u)
		}
	}
	return fmt.Sprintf("%dH", max)
}

// decodeTimeout parses a grpc-timeout value: 1-8 ASCII digits and a unit.
func decodeTimeout(s string) (time.Duration, error) {
	if len(s) < 2 {
		return 0, fmt.Errorf("grpc-timeout %q is too short", s)
	}
	if len(s) > 9 {
		return 0, fmt.Errorf("grpc-timeout %q has more than 8 digits", s)
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, fmt.Errorf("grpc-timeout %q has an unknown unit", s)
	}
	var v int64
	for i := 0; i < len(s)-1; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("grpc-timeout %q is not a number", s)
		}
		v = v*10 + int64(c-'0')
	}
	if v > math.MaxInt64/int64(unit) {
		return math.MaxInt64, nil
	}
	return time.Duration(v) * unit, nil
}

// ParseTimeout parses a grpc-timeout value; internal/webrpc reads
// gRPC-Web's with it.
func ParseTimeout(s string) (time.Duration, error) { return decodeTimeout(s) }
