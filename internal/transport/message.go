package transport

import (
	"encoding/binary"
	"errors"

	"github.com/protoc-gen-micro/micro/runtime/codec"
	"github.com/protoc-gen-micro/micro/runtime/compress"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/protobuf/proto"
)

// encode marshals m into a pooled buffer behind a 5-byte envelope prefix,
// compressed with comp unless comp is nil.
func encode(c codec.Codec, m any, comp compress.Compressor) (*[]byte, error) {
	var (
		bp  *[]byte
		b   []byte
		err error
	)
	if pm, ok := m.(proto.Message); ok && c == codec.Proto {
		// Size first so the buffer comes from the right pool class, then
		// marshal reusing the size just cached in the message.
		bp = getBuf(headerSize + proto.Size(pm))
		b = append((*bp)[:0], 0, 0, 0, 0, 0)
		b, err = proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, pm)
	} else {
		bp = getBuf(0)
		b = append((*bp)[:0], 0, 0, 0, 0, 0)
		b, err = c.MarshalAppend(b, m)
	}
	if err != nil {
		putBuf(bp)
		return nil, status.Errorf(status.Internal, "grpc: error while marshaling: %v", err)
	}
	*bp = b
	if comp != nil {
		return compressBuf(comp, bp)
	}
	binary.BigEndian.PutUint32(b[1:5], uint32(len(b)-headerSize))
	return bp, nil
}

// compressBuf compresses the message in bp (after its prefix) into a new
// pooled buffer, flagged compressed, and releases bp.
func compressBuf(comp compress.Compressor, bp *[]byte) (*[]byte, error) {
	body := (*bp)[headerSize:]
	cb := getBuf(headerSize + len(body)/2 + 64)
	out, err := comp.Compress(append((*cb)[:0], 1, 0, 0, 0, 0), body)
	putBuf(bp)
	if err != nil {
		putBuf(cb)
		return nil, status.Errorf(status.Internal, "grpc: error while compressing with %s: %v", comp.Name(), err)
	}
	binary.BigEndian.PutUint32(out[1:5], uint32(len(out)-headerSize))
	*cb = out
	return cb, nil
}

// decodeMsg unmarshals a received message into v: decompressed with comp
// when its flag says so, within limit bytes once decompressed. The caller
// consumes msg afterwards.
func decodeMsg(c codec.Codec, comp compress.Compressor, msg rmsg, limit int, v any) *status.Error {
	body := msg.body
	switch msg.flag {
	case 0:
	case 1:
		if comp == nil {
			return status.New(status.Internal, "grpc: received a compressed message, but no grpc-encoding was negotiated")
		}
		bp := getBuf(min(limit, max(4*len(body), 1024)))
		out, err := comp.Decompress((*bp)[:0], body, limit)
		if err == nil && len(out) > limit {
			err = compress.ErrTooLarge // a third-party compressor overshot
		}
		if err != nil {
			putBuf(bp)
			if errors.Is(err, compress.ErrTooLarge) {
				return status.Errorf(status.ResourceExhausted, "grpc: received message after decompression larger than max (%d)", limit)
			}
			return status.Errorf(status.Internal, "grpc: failed to decompress the received message with %s: %v", comp.Name(), err)
		}
		*bp = out
		defer putBuf(bp)
		body = out
	default:
		return status.Errorf(status.Internal, "grpc: received message with invalid compressed flag %d", msg.flag)
	}
	if err := c.Unmarshal(body, v); err != nil {
		return status.Errorf(status.Internal, "grpc: failed to unmarshal the received message: %v", err)
	}
	return nil
}
