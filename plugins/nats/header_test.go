package nats

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
)

// wire renders h as the header block of a NATS HMSG.
func wire(h natsgo.Header) []byte {
	var b strings.Builder
	b.WriteString("NATS/1.0\r\n")
	for _, k := range slices.Sorted(maps.Keys(h)) {
		for _, v := range h[k] {
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

func rangeMD(md metadata.MD) func(func(k, v string)) {
	return func(f func(k, v string)) {
		for _, k := range slices.Sorted(maps.Keys(md)) {
			for _, v := range md[k] {
				f(k, v)
			}
		}
	}
}

// roundTrip encodes w, renders and parses the header block as the NATS
// client does, and decodes it again.
func roundTrip(t *testing.T, w *wireMsg) (wireMsg, error) {
	t.Helper()
	h, err := encodeHeader(w, rangeMD(w.md))
	if err != nil {
		return wireMsg{}, err
	}
	parsed, err := natsgo.DecodeHeadersMsg(wire(h))
	if err != nil {
		t.Fatalf("the NATS client cannot parse what encodeHeader wrote: %v\n%q", err, wire(h))
	}
	return decodeHeader(parsed)
}

func TestHeaderRoundTrip(t *testing.T) {
	w := wireMsg{
		id:      "abc",
		header:  map[string]string{"content-type": "application/json", "Kind": "Order Created"},
		md:      metadata.MD{"x-trace-id": {"1", "2"}, "x-tenant": {"t"}},
		timeout: 1500 * time.Millisecond,
	}
	got, err := roundTrip(t, &w)
	if err != nil || !reflect.DeepEqual(got, w) {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, w)
	}
	for _, bad := range []map[string]string{
		{"Micro-Id": "x"}, {"nats-msg-id": "x"}, {"a:b": "x"}, {"a b": "x"}, {"ok": "a\r\nInjected: 1"}, {"": "x"},
	} {
		if _, err := encodeHeader(&wireMsg{id: "x", header: bad}, rangeMD(nil)); err == nil {
			t.Errorf("encodeHeader accepted header %q", bad)
		}
	}
	if _, err := encodeHeader(&wireMsg{id: "x"}, rangeMD(metadata.MD{"k": {"v\n"}})); err == nil {
		t.Error("encodeHeader accepted a metadata value with a newline")
	}
	for _, h := range []natsgo.Header{
		{"kind": {"x"}},                                     // no ID
		{hdrID: {"x"}, hdrTimeout: {"-5"}},                  // negative timeout
		{hdrID: {"x"}, hdrTimeout: {"9999999999999999999"}}, // overflows int64
	} {
		if _, err := decodeHeader(h); err == nil {
			t.Errorf("decodeHeader accepted %v", h)
		}
	}
	if w, err := decodeHeader(natsgo.Header{hdrID: {"x"}, hdrTimeout: {"9000000000000000000"}}); err != nil || w.timeout != maxTimeout {
		t.Errorf("a huge timeout gave %v, %v; want it capped at %v", w.timeout, err, maxTimeout)
	}
}

// FuzzDecodeHeader feeds header blocks from the wire, as the NATS client
// parses them, to decodeHeader: it must not panic, what it accepts must
// be well-formed, and what it accepts and can be sent again must read
// back the same.
func FuzzDecodeHeader(f *testing.F) {
	f.Add([]byte("NATS/1.0\r\nMicro-Id: a\r\nMicro-Timeout: 100\r\nMicro-Md-X-Trace: 1\r\nkind: k\r\n\r\n"))
	f.Add([]byte("NATS/1.0 503\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := natsgo.DecodeHeadersMsg(data)
		if err != nil {
			return
		}
		w, err := decodeHeader(h)
		if err != nil {
			return
		}
		if w.id == "" || w.timeout < 0 || w.timeout > maxTimeout {
			t.Fatalf("accepted %+v", w)
		}
		for k := range w.header {
			if reserved(k) {
				t.Fatalf("reserved header %q passed to the handler", k)
			}
		}
		for k := range w.md {
			if k == "" || k != strings.ToLower(k) {
				t.Fatalf("metadata key %q", k)
			}
		}
		again, err := roundTrip(t, &w)
		if err != nil {
			return // not every name a peer sends can be sent again
		}
		if w.id != again.id || w.timeout != again.timeout || !maps.Equal(w.header, again.header) || !maps.EqualFunc(w.md, again.md, slices.Equal) {
			t.Fatalf("decoded %+v, then after a round trip %+v", w, again)
		}
	})
}
