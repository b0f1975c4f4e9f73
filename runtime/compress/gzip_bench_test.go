package compress_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"testing"

	"github.com/protoc-gen-micro/micro/runtime/compress"
)

var benchSizes = []int{16, 4 << 10, 1 << 20}

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// The "dst" benchmarks reuse their destination, as the transport does with
// its pooled buffers; "nil" ones start from nil each time, so they count the
// output's growth too. "unpooled" is a gzip.Writer or Reader made for every
// message: what the pools save. "speed" is NewGzip(gzip.BestSpeed).

func BenchmarkGzipCompress(b *testing.B) {
	c := gzipCompressor(b)
	fast, _ := compress.NewGzip(gzip.BestSpeed)
	for _, n := range benchSizes {
		in := message(n)
		for _, z := range []struct {
			name string
			c    compress.Compressor
		}{{"dst", c}, {"speed", fast}} {
			b.Run(sizeName(n)+"/"+z.name, func(b *testing.B) {
				b.SetBytes(int64(n))
				b.ReportAllocs()
				dst, _ := z.c.Compress(nil, in)
				for b.Loop() {
					dst, _ = z.c.Compress(dst[:0], in)
				}
				b.ReportMetric(float64(len(dst))/float64(n), "ratio")
			})
		}
		b.Run(sizeName(n)+"/nil", func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				c.Compress(nil, in)
			}
		})
		b.Run(sizeName(n)+"/unpooled", func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			var buf bytes.Buffer
			for b.Loop() {
				buf.Reset()
				w := gzip.NewWriter(&buf)
				w.Write(in)
				w.Close()
			}
		})
	}
}

func BenchmarkGzipDecompress(b *testing.B) {
	c := gzipCompressor(b)
	for _, n := range benchSizes {
		in := message(n)
		z, _ := c.Compress(nil, in)
		b.Run(sizeName(n)+"/dst", func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			dst := make([]byte, 0, n)
			for b.Loop() {
				c.Decompress(dst, z, n)
			}
		})
		b.Run(sizeName(n)+"/nil", func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				c.Decompress(nil, z, n)
			}
		})
		b.Run(sizeName(n)+"/unpooled", func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				r, _ := gzip.NewReader(bytes.NewReader(z))
				io.ReadAll(io.LimitReader(r, int64(n)+1))
			}
		})
	}
}

// BenchmarkGzipBomb is the cost of refusing a GiB bomb under a 4 MiB limit,
// into a pooled 4 MiB buffer.
func BenchmarkGzipBomb(b *testing.B) {
	const limit = 4 << 20
	c := gzipCompressor(b)
	src := bomb(b, 1<<10)
	dst := make([]byte, 0, limit)
	b.ReportAllocs()
	for b.Loop() {
		c.Decompress(dst, src, limit)
	}
}

// BenchmarkGzipTableGarbage is the cost of input that inflates to nothing
// but makes compress/flate build a large Huffman table for every block; its
// MB/s are of input.
func BenchmarkGzipTableGarbage(b *testing.B) {
	c := gzipCompressor(b)
	src := tableGarbage(4096)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		c.Decompress(nil, src, 4<<20)
	}
}
