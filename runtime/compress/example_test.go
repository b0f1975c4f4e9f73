package compress_test

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"strings"

	"github.com/protoc-gen-micro/micro/runtime/compress"
)

// A sender compresses with the algorithm it names in grpc-encoding; the
// receiver looks that name up and decompresses, up to its message limit.
func Example() {
	msg := []byte(strings.Repeat("a gRPC message ", 100))

	gz, _ := compress.Get(compress.Gzip)
	z, _ := gz.Compress(nil, msg)
	fmt.Println("compressed smaller:", len(z) < len(msg))

	c, ok := compress.Get("gzip") // the grpc-encoding header
	if !ok {
		fmt.Println("UNIMPLEMENTED")
		return
	}
	out, err := c.Decompress(nil, z, 4<<20)
	fmt.Println(bytes.Equal(out, msg), err)

	_, err = c.Decompress(nil, z, 1000)
	if errors.Is(err, compress.ErrTooLarge) {
		fmt.Println("RESOURCE_EXHAUSTED:", err)
	}
	// Output:
	// compressed smaller: true
	// true <nil>
	// RESOURCE_EXHAUSTED: compress: decompressed message too large: over 1000 bytes
}

// deflate is the "deflate" grpc-encoding: zlib (RFC 1950), as grpc-java
// writes it.
type deflate struct{}

func (deflate) Name() string { return "deflate" }

func (deflate) Compress(dst, src []byte) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	w := zlib.NewWriter(buf) // pool these, as the built-in gzip does, if you compress often
	if _, err := w.Write(src); err != nil {
		return dst, err
	}
	if err := w.Close(); err != nil {
		return dst, err
	}
	return buf.Bytes(), nil
}

func (deflate) Decompress(dst, src []byte, limit int) ([]byte, error) {
	r, err := zlib.NewReader(bytes.NewReader(src))
	if err != nil {
		return dst, err
	}
	// ReadLimited stops after limit+1 bytes, so a bomb is never inflated
	// past the limit.
	return compress.ReadLimited(dst, r, limit)
}

// A compressor registered at init is offered and accepted by every client
// and server in the process.
func ExampleRegister() {
	compress.Register(deflate{})

	c, ok := compress.Get("deflate")
	fmt.Println("registered:", ok)
	z, _ := c.Compress(nil, []byte(strings.Repeat("hello ", 100)))
	out, err := c.Decompress(nil, z, 4<<20)
	fmt.Println(len(out), err)
	// Output:
	// registered: true
	// 600 <nil>
}
