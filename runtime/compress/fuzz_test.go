package compress_test

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/protoc-gen-micro/micro/runtime/compress"
)

// reference decompresses src as grpc-go does: compress/gzip read through
// an io.LimitReader of limit+1 bytes.
func reference(src []byte, limit int) ([]byte, error) {
	r, err := gzip.NewReader(bytes.NewReader(src))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(r, int64(limit)+1))
}

func FuzzDecompress(f *testing.F) {
	c := gzipCompressor(f)
	small, _ := c.Compress(nil, []byte("hello, world"))
	records, _ := c.Compress(nil, message(2000))
	empty, _ := c.Compress(nil, nil)
	var headers bytes.Buffer
	w := gzip.NewWriter(&headers)
	w.Header = gzip.Header{Name: "n", Comment: "c", Extra: []byte("ab\x02\x00xy")}
	w.Write([]byte("with header fields"))
	w.Close()
	badCRC := bytes.Clone(small)
	badCRC[len(badCRC)-8] ^= 0xff
	hugeISIZE := bytes.Clone(small)
	binary.LittleEndian.PutUint32(hugeISIZE[len(hugeISIZE)-4:], 0xffffffff)
	// A stored block that claims 65535 bytes and holds 3.
	storedClaim := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255, 1, 0xff, 0xff, 0, 0, 'a', 'b', 'c'}
	// A header whose FEXTRA claims 65535 bytes.
	extraClaim := []byte{0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 255, 0xff, 0xff, 'x'}

	for _, seed := range []struct {
		src   []byte
		limit uint16
	}{
		{small, 100},
		{small, 11},
		{records, 2000},
		{records, 1999},
		{empty, 0},
		{append(bytes.Clone(small), records...), 4000},
		{headers.Bytes(), 100},
		{bomb(f, 1), 4096},
		{append(bomb(f, 1), bomb(f, 1)...), 65535},
		{small[:len(small)-3], 100},
		{badCRC, 100},
		{hugeISIZE, 100},
		{append(bytes.Clone(small), "trailing"...), 100},
		{storedClaim, 65535},
		{extraClaim, 65535},
		{nil, 10},
	} {
		f.Add(seed.src, seed.limit)
	}

	f.Fuzz(func(t *testing.T, src []byte, limit uint16) {
		n := int(limit)
		want, wantErr := reference(src, n)
		tooBig := len(want) > n

		// Into a slice with room to spare, marked to show what is written.
		const mark = 0xa5
		dst := bytes.Repeat([]byte{mark}, 2+n+64)[:2]
		out, err := c.Decompress(dst, src, n)
		switch {
		case err == nil:
			if wantErr != nil || tooBig {
				t.Fatalf("Decompress succeeded with %d bytes; compress/gzip: %d bytes, %v", len(out)-2, len(want), wantErr)
			}
			if !bytes.Equal(out[2:], want) || len(out)-2 > n {
				t.Fatalf("Decompress = %d bytes, compress/gzip %d", len(out)-2, len(want))
			}
		case errors.Is(err, compress.ErrTooLarge):
			if !tooBig {
				t.Fatalf("Decompress: %v; compress/gzip: %d bytes, %v", err, len(want), wantErr)
			}
		default:
			if wantErr == nil && !tooBig {
				t.Fatalf("Decompress: %v; compress/gzip read it", err)
			}
		}
		if err != nil && len(out) != 2 {
			t.Fatalf("Decompress failed and returned %d bytes, not dst", len(out))
		}
		for _, b := range dst[2+n+1 : cap(dst)] {
			if b != mark {
				t.Fatal("Decompress wrote past limit+1 bytes of output")
			}
		}

		// Again, into nil, through a reader back from the pool: the same.
		again, err2 := c.Decompress(nil, src, n)
		if (err == nil) != (err2 == nil) || errors.Is(err, compress.ErrTooLarge) != errors.Is(err2, compress.ErrTooLarge) {
			t.Fatalf("Decompress again: %v, first %v", err2, err)
		}
		if err == nil && !bytes.Equal(again, out[2:]) {
			t.Fatal("Decompress again returned other bytes")
		}
	})
}

func FuzzRoundTrip(f *testing.F) {
	c := gzipCompressor(f)
	fast, err := compress.NewGzip(gzip.BestSpeed)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{nil, []byte("a"), []byte("hello, world"), message(300), bytes.Repeat([]byte{0}, 5000)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, z := range []compress.Compressor{c, fast} {
			b, err := z.Compress([]byte("p"), in)
			if err != nil {
				t.Fatal(err)
			}
			if b[0] != 'p' {
				t.Fatal("Compress did not append to dst")
			}
			out, err := c.Decompress([]byte("q"), b[1:], len(in))
			if err != nil || out[0] != 'q' || !bytes.Equal(out[1:], in) {
				t.Fatalf("round trip of %d bytes: %d bytes, %v", len(in), len(out)-1, err)
			}
			if std, err := reference(b[1:], len(in)); err != nil || !bytes.Equal(std, in) {
				t.Fatalf("compress/gzip read %d of %d bytes: %v", len(std), len(in), err)
			}
			if len(in) > 0 {
				if _, err := c.Decompress(nil, b[1:], len(in)-1); !errors.Is(err, compress.ErrTooLarge) {
					t.Fatalf("limit %d for %d bytes: %v, want ErrTooLarge", len(in)-1, len(in), err)
				}
			}
		}
	})
}
