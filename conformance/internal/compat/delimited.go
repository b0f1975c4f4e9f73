// Package compat holds what the server and client under test share: the
// size-delimited framing the runner speaks on stdin and stdout, and the
// conversions between the conformance protocol's Header and Error messages
// and the runtime's metadata and status.
package compat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"
)

// maxMessage bounds one delimited message; the largest the runner sends
// carries a request a few MiB over the receive limit.
const maxMessage = 64 << 20

// ReadDelimited reads one message: a 4-byte big-endian length, then that
// many bytes of protobuf. It returns io.EOF at a clean end of input.
func ReadDelimited(r io.Reader, m proto.Message) error {
	var prefix [4]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("compat: truncated length prefix: %w", err)
		}
		return err
	}
	n := binary.BigEndian.Uint32(prefix[:])
	if n > maxMessage {
		return fmt.Errorf("compat: message of %d bytes is over the %d-byte limit", n, maxMessage)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return fmt.Errorf("compat: reading a %d-byte message: %w", n, err)
	}
	return proto.Unmarshal(buf, m)
}

// WriteDelimited writes m behind its 4-byte big-endian length, in one
// Write, so that concurrent writers serialized by a mutex never interleave.
func WriteDelimited(w io.Writer, m proto.Message) error {
	size := proto.Size(m)
	buf := make([]byte, 4, 4+size)
	binary.BigEndian.PutUint32(buf, uint32(size))
	buf, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(buf, m)
	if err != nil {
		return err
	}
	_, err = w.Write(buf)
	return err
}
