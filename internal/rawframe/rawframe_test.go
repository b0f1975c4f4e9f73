package rawframe

import (
	"bytes"
	"testing"

	"golang.org/x/net/http2"
)

// A frame Frame builds is read back by x/net's Framer as it was given.
func TestFrameReadBack(t *testing.T) {
	payload := []byte("12345678")
	fr := http2.NewFramer(nil, bytes.NewReader(Frame(http2.FramePing, http2.FlagPingAck, 0, payload)))
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	p, ok := f.(*http2.PingFrame)
	if !ok || !p.IsAck() || string(p.Data[:]) != string(payload) {
		t.Fatalf("read back %#v", f)
	}
	// A length its type forbids is written as given.
	if b := Frame(http2.FramePing, 0, 0, []byte{1}); b[2] != 1 || len(b) != 10 {
		t.Fatalf("% x", b)
	}
}
