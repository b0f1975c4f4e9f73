package compress_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/protoc-gen-micro/micro/runtime/compress"
)

// endless yields zeros forever and counts them.
type endless struct{ n int }

func (r *endless) Read(p []byte) (int, error) {
	clear(p)
	r.n += len(p)
	return len(p), nil
}

func TestReadLimitedStopsAfterLimitPlusOne(t *testing.T) {
	for _, limit := range []int{0, 1, 511, 512, 513, 100_000, 1 << 20} {
		for _, dst := range [][]byte{nil, []byte("abc"), make([]byte, 2, 2+limit), make([]byte, 2, 10+limit)} {
			r := &endless{}
			out, err := compress.ReadLimited(dst, r, limit)
			if !errors.Is(err, compress.ErrTooLarge) {
				t.Fatalf("limit %d: %v, want ErrTooLarge", limit, err)
			}
			if r.n != limit+1 {
				t.Errorf("limit %d, cap(dst)-len(dst) %d: read %d bytes, want limit+1", limit, cap(dst)-len(dst), r.n)
			}
			if len(out) != len(dst) {
				t.Errorf("limit %d: returned %d bytes, want dst (%d)", limit, len(out), len(dst))
			}
		}
	}
}

func TestReadLimited(t *testing.T) {
	data := []byte(strings.Repeat("0123456789", 300))
	for _, tc := range []struct {
		name string
		r    func() io.Reader
	}{
		{"plain", func() io.Reader { return bytes.NewReader(data) }},
		{"one byte at a time", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) }},
		{"EOF with the data", func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) }},
		{"half reads", func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, limit := range []int{len(data), len(data) + 1, 1 << 30} {
				out, err := compress.ReadLimited([]byte("x"), tc.r(), limit)
				if err != nil || string(out) != "x"+string(data) {
					t.Fatalf("limit %d: %d bytes, %v", limit, len(out), err)
				}
				if cap(out) > 1+limit {
					t.Errorf("limit %d: grew to capacity %d, past the limit", limit, cap(out))
				}
			}
			if _, err := compress.ReadLimited(nil, tc.r(), len(data)-1); !errors.Is(err, compress.ErrTooLarge) {
				t.Fatalf("limit %d: %v, want ErrTooLarge", len(data)-1, err)
			}
		})
	}
}

func TestReadLimitedPassesErrors(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("some"), iotest.ErrReader(boom))
	out, err := compress.ReadLimited([]byte("dst"), r, 100)
	if err != boom || string(out) != "dst" {
		t.Fatalf("ReadLimited = %q, %v; want dst, %v", out, err, boom)
	}
}

func TestErrTooLargeMessage(t *testing.T) {
	_, err := compress.ReadLimited(nil, &endless{}, 42)
	if got, want := err.Error(), "compress: decompressed message too large: over 42 bytes"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}
