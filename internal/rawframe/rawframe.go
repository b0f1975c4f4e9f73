// Package rawframe builds HTTP/2 frames byte by byte, for tests that must
// send what x/net's Framer refuses to write: wrong lengths, oversized
// frames, frames on the wrong stream.
package rawframe

import (
	"encoding/binary"

	"golang.org/x/net/http2"
)

// Frame returns a frame header for payload, as given, followed by payload.
func Frame(typ http2.FrameType, flags http2.Flags, streamID uint32, payload []byte) []byte {
	b := make([]byte, 9+len(payload))
	b[0], b[1], b[2] = byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload))
	b[3], b[4] = byte(typ), byte(flags)
	binary.BigEndian.PutUint32(b[5:], streamID)
	copy(b[9:], payload)
	return b
}
