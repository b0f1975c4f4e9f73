package compress_test

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/protoc-gen-micro/micro/runtime/compress"
)

var sizes = []int{0, 1, 15, 16, 511, 512, 513, 4 << 10, 64<<10 - 1, 64<<10 + 1, 1 << 20}

func TestGzipRoundTrip(t *testing.T) {
	c := gzipCompressor(t)
	random := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{1}).Read(random)
	for _, n := range sizes {
		for _, in := range [][]byte{message(n), random[:n]} {
			prefix := []byte("prefix")
			z, err := c.Compress(bytes.Clone(prefix), in)
			if err != nil {
				t.Fatalf("%d bytes: Compress: %v", n, err)
			}
			if !bytes.HasPrefix(z, prefix) {
				t.Fatalf("%d bytes: Compress did not append to dst", n)
			}
			z = z[len(prefix):]

			// Any gzip reader reads it.
			std, err := gzip.NewReader(bytes.NewReader(z))
			if err != nil {
				t.Fatalf("%d bytes: gzip.NewReader: %v", n, err)
			}
			if got, err := io.ReadAll(std); err != nil || !bytes.Equal(got, in) {
				t.Fatalf("%d bytes: compress/gzip read %d bytes, %v", n, len(got), err)
			}

			out, err := c.Decompress(bytes.Clone(prefix), z, n)
			if err != nil {
				t.Fatalf("%d bytes: Decompress with limit %d: %v", n, n, err)
			}
			if !bytes.HasPrefix(out, prefix) || !bytes.Equal(out[len(prefix):], in) {
				t.Fatalf("%d bytes: Decompress returned %d bytes, not prefix and input", n, len(out))
			}
			if n > 0 {
				if _, err := c.Decompress(nil, z, n-1); !errors.Is(err, compress.ErrTooLarge) {
					t.Fatalf("%d bytes: Decompress with limit %d: %v, want ErrTooLarge", n, n-1, err)
				}
			}
		}
	}
}

// TestGzipReadsHeaders reads members that other writers make: levels,
// and the optional header fields compress/gzip writes.
func TestGzipReadsHeaders(t *testing.T) {
	c := gzipCompressor(t)
	in := message(10 << 10)
	for _, tc := range []struct {
		name  string
		level int
		hdr   gzip.Header
	}{
		{"store", gzip.NoCompression, gzip.Header{}},
		{"huffman only", gzip.HuffmanOnly, gzip.Header{}},
		{"best speed", gzip.BestSpeed, gzip.Header{}},
		{"best", gzip.BestCompression, gzip.Header{}},
		{"name comment extra", gzip.DefaultCompression, gzip.Header{
			Name: "message.bin", Comment: "a comment ü", Extra: []byte("ab\x04\x00data"),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := gzip.NewWriterLevel(&buf, tc.level)
			if err != nil {
				t.Fatal(err)
			}
			w.Header = tc.hdr
			w.Write(in)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			out, err := c.Decompress(nil, buf.Bytes(), len(in))
			if err != nil || !bytes.Equal(out, in) {
				t.Fatalf("Decompress = %d bytes, %v", len(out), err)
			}
		})
	}
}

// TestGzipInteropGNU trades messages with another implementation, GNU gzip,
// in both directions.
func TestGzipInteropGNU(t *testing.T) {
	if _, err := exec.LookPath("gzip"); err != nil {
		t.Skip("gzip is not installed")
	}
	gnu := func(stdin []byte, args ...string) []byte {
		t.Helper()
		cmd := exec.Command("gzip", args...)
		cmd.Stdin = bytes.NewReader(stdin)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("gzip %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	c := gzipCompressor(t)
	in := message(300 << 10)

	z, _ := c.Compress(nil, in)
	if out := gnu(z, "-d", "-c"); !bytes.Equal(out, in) {
		t.Errorf("gzip -d read %d bytes, want %d", len(out), len(in))
	}
	for _, level := range []string{"-1", "-9"} {
		out, err := c.Decompress(nil, gnu(in, level, "-c"), len(in))
		if err != nil || !bytes.Equal(out, in) {
			t.Errorf("gzip %s: Decompress = %d bytes, %v; want %d", level, len(out), err, len(in))
		}
	}
}

// TestGzipConcatenatedMembers: as in grpc-go (whose gzip.Reader keeps the
// default multistream mode), members in a row are one message, and the
// limit counts all of them.
func TestGzipConcatenatedMembers(t *testing.T) {
	c := gzipCompressor(t)
	a, b := message(3000), []byte("second member")
	za, _ := c.Compress(nil, a)
	zab, _ := c.Compress(za, b)
	want := append(bytes.Clone(a), b...)

	out, err := c.Decompress(nil, zab, len(want))
	if err != nil || !bytes.Equal(out, want) {
		t.Fatalf("Decompress = %d bytes, %v; want %d bytes", len(out), err, len(want))
	}
	if _, err := c.Decompress(nil, zab, len(want)-1); !errors.Is(err, compress.ErrTooLarge) {
		t.Fatalf("Decompress over the limit in the second member: %v, want ErrTooLarge", err)
	}
}

func TestGzipBadInput(t *testing.T) {
	c := gzipCompressor(t)
	in := message(5000)
	good, _ := c.Compress(nil, in)
	last := len(good) - 1
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for _, tc := range []struct {
		name string
		src  []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"header only", good[:10], "truncated"},
		{"no trailer", good[:len(good)-8], "truncated"},
		{"half a trailer", good[:len(good)-4], "truncated"},
		{"not gzip", []byte("this is plain text, not gzip"), "invalid header"},
		{"not deflate", edit(func(b []byte) []byte { b[2] = 7; return b }), "invalid header"},
		{"bad block type", edit(func(b []byte) []byte { b[10] |= 6; return b }), "corrupt input"},
		{"flipped data", edit(func(b []byte) []byte { b[len(b)/2] ^= 0x55; return b }), "corrupt input"},
		{"bad CRC", edit(func(b []byte) []byte { b[last-7] ^= 1; return b }), "invalid checksum"},
		{"ISIZE says 4 GiB", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[last-3:], 0xffffffff)
			return b
		}), "invalid checksum"},
		{"trailing garbage", append(bytes.Clone(good), "junk!junk!"...), "invalid header"},
		{"trailing zero", append(bytes.Clone(good), 0), "truncated"},
		{"trailing partial member", append(bytes.Clone(good), good[:5]...), "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("dst")
			out, err := c.Decompress(dst, tc.src, 1<<20)
			if err == nil {
				t.Fatalf("Decompress succeeded with %d bytes", len(out))
			}
			if errors.Is(err, compress.ErrTooLarge) {
				t.Fatalf("Decompress: %v, which is not about size", err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "compress: gzip: ") {
				t.Errorf("Decompress: %q, want it to say %q", err, tc.want)
			}
			if string(out) != "dst" {
				t.Errorf("Decompress returned %q, want dst unchanged", out)
			}
		})
	}
}

// TestGzipTruncated cuts a valid message at every length.
func TestGzipTruncated(t *testing.T) {
	c := gzipCompressor(t)
	good, _ := c.Compress(nil, message(3000))
	for n := range len(good) {
		if _, err := c.Decompress(nil, good[:n], 1<<20); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("first %d of %d bytes: %v, want a truncated-input error", n, len(good), err)
		}
	}
}

// TestGzipBomb decompresses a GiB bomb under a 4 MiB limit: it must stop
// after limit+1 bytes of output, having allocated about its output.
func TestGzipBomb(t *testing.T) {
	const limit = 4 << 20
	c := gzipCompressor(t)
	src := bomb(t, 1<<10)
	t.Logf("bomb: %d bytes of gzip inflate to 1 GiB", len(src))

	// Into a slice with room for more than the limit: bytes past limit+1
	// keep their marks, so the output stopped there.
	const prefix = 3
	dst := bytes.Repeat([]byte{0xaa}, prefix+limit+64<<10)[:prefix]
	c.Decompress(nil, []byte{}, 0) // a pooled reader, as in steady use
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	out, err := c.Decompress(dst, src, limit)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, compress.ErrTooLarge) {
		t.Fatalf("Decompress: %v, want ErrTooLarge", err)
	}
	if len(out) != prefix {
		t.Errorf("Decompress returned %d bytes, want dst (%d)", len(out), prefix)
	}
	spare := dst[:cap(dst)]
	if i := bytes.IndexByte(spare[prefix:prefix+limit+1], 0xaa); i >= 0 {
		t.Errorf("output byte %d was not written; want limit+1 bytes", i)
	}
	if i := bytes.IndexByte(spare[prefix+limit+1:], 0); i >= 0 {
		t.Errorf("Decompress wrote output byte %d, past limit+1", limit+1+i)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<10 {
		t.Errorf("Decompress into a large enough dst allocated %d bytes", alloc)
	}

	// Into nil it grows a buffer by doubling, to the limit: in all twice
	// the limit.
	runtime.ReadMemStats(&before)
	out, err = c.Decompress(nil, src, limit)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, compress.ErrTooLarge) || out != nil {
		t.Fatalf("Decompress = %d bytes, %v; want nil, ErrTooLarge", len(out), err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("into nil: %d bytes allocated for a %d-byte limit", alloc, limit)
	if alloc > 2*limit+64<<10 {
		t.Errorf("Decompress allocated %d bytes for a %d-byte limit", alloc, limit)
	}
}

// TestBombIsValid checks the bomb's construction on a smaller one, which
// compress/gzip reads to the end.
func TestBombIsValid(t *testing.T) {
	r, err := gzip.NewReader(bytes.NewReader(bomb(t, 8)))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, r)
	if err != nil || n != 8<<20 {
		t.Fatalf("bomb inflated to %d bytes, %v; want 8 MiB", n, err)
	}
}

func TestGzipLimit(t *testing.T) {
	c := gzipCompressor(t)
	in := message(1000)
	z, _ := c.Compress(nil, in)
	empty, _ := c.Compress(nil, nil)
	for _, tc := range []struct {
		src     []byte
		limit   int
		tooBig  bool
		wantLen int
	}{
		{z, 1000, false, 1000},
		{z, 1 << 40, false, 1000},
		{z, int(^uint(0) >> 1), false, 1000}, // math.MaxInt
		{z, 999, true, 0},
		{z, 0, true, 0},
		{z, -1, true, 0},
		{empty, 0, false, 0},
		{empty, -5, false, 0}, // a negative limit is 0
	} {
		out, err := c.Decompress(nil, tc.src, tc.limit)
		if tc.tooBig != errors.Is(err, compress.ErrTooLarge) || !tc.tooBig && err != nil {
			t.Errorf("limit %d: %v", tc.limit, err)
		}
		if len(out) != tc.wantLen {
			t.Errorf("limit %d: %d bytes, want %d", tc.limit, len(out), tc.wantLen)
		}
	}
}

// TestGzipAllocs: with a destination that has room, as the transport's
// pooled buffers do, compressing a message costs no allocation, and neither
// does decompressing one whose blocks are stored or use the fixed Huffman
// code. (For a dynamic Huffman block compress/flate allocates the overflow
// tables of codes longer than 9 bits, a few dozen small slices a block.)
func TestGzipAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	c := gzipCompressor(t)
	dst := make([]byte, 0, 64<<10)
	for _, in := range [][]byte{message(16), message(4 << 10)} {
		if a := testing.AllocsPerRun(100, func() { c.Compress(dst, in) }); a != 0 {
			t.Errorf("Compress of %d bytes: %v allocations", len(in), a)
		}
	}

	fixed, _ := c.Compress(nil, message(16))
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.NoCompression)
	w.Write(message(4 << 10))
	w.Close()
	for _, z := range [][]byte{fixed, buf.Bytes()} {
		if a := testing.AllocsPerRun(100, func() { c.Decompress(dst, z, 1<<20) }); a != 0 {
			t.Errorf("Decompress of %d bytes: %v allocations", len(z), a)
		}
	}
}

func TestGzipConcurrent(t *testing.T) {
	c := gzipCompressor(t)
	src := bomb(t, 16)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var z, out []byte
			for i := range 40 {
				in := message(sizes[(g+i)%(len(sizes)-1)]) // all but 1 MiB
				var err error
				if z, err = c.Compress(z[:0], in); err != nil {
					t.Error(err)
					return
				}
				if out, err = c.Decompress(out[:0], z, len(in)); err != nil || !bytes.Equal(out, in) {
					t.Errorf("goroutine %d: round trip of %d bytes: %d bytes, %v", g, len(in), len(out), err)
					return
				}
				if i%8 == 0 {
					if _, err := c.Decompress(nil, src, 1<<20); !errors.Is(err, compress.ErrTooLarge) {
						t.Errorf("bomb: %v", err)
					}
				}
			}
		}()
	}
	wg.Wait()
}

func TestNewGzip(t *testing.T) {
	for _, level := range []int{gzip.HuffmanOnly - 1, gzip.BestCompression + 1} {
		if c, err := compress.NewGzip(level); err == nil {
			t.Errorf("NewGzip(%d) = %v, want an error", level, c)
		}
	}
	in := message(20 << 10)
	for level := gzip.HuffmanOnly; level <= gzip.BestCompression; level++ {
		c, err := compress.NewGzip(level)
		if err != nil {
			t.Fatalf("NewGzip(%d): %v", level, err)
		}
		if c.Name() != compress.Gzip {
			t.Fatalf("NewGzip(%d).Name() = %q", level, c.Name())
		}
		z, _ := c.Compress(nil, in)
		if out, err := gzipCompressor(t).Decompress(nil, z, len(in)); err != nil || !bytes.Equal(out, in) {
			t.Fatalf("level %d: round trip: %d bytes, %v", level, len(out), err)
		}
	}

	compress.KeepRegistry(t)
	fast, _ := compress.NewGzip(gzip.BestSpeed)
	compress.Register(fast)
	if c, _ := compress.Get(compress.Gzip); c != fast {
		t.Error("Register(NewGzip(...)) did not replace the built-in gzip")
	}
}

// TestGzipTableGarbage: what a peer can make Decompress allocate is bounded
// by its input, not only by the limit. compress/flate allocates the overflow
// tables of each dynamic Huffman block afresh, so blocks that inflate to
// nothing still cost memory, all of it garbage at once.
func TestGzipTableGarbage(t *testing.T) {
	c := gzipCompressor(t)
	src := tableGarbage(4096)
	c.Decompress(nil, []byte{}, 0)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	out, err := c.Decompress(nil, src, 1<<20)
	runtime.ReadMemStats(&after)
	if err != nil || len(out) != 0 {
		t.Fatalf("Decompress = %d bytes, %v; want an empty message", len(out), err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d bytes of input, %d blocks, allocated %d bytes (%.0f a byte of input)", len(src), 4096, alloc, float64(alloc)/float64(len(src)))
	if alloc > 512*uint64(len(src)) {
		t.Errorf("Decompress allocated %d bytes for %d of input", alloc, len(src))
	}
}
