package compress

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Gzip is the grpc-encoding of the built-in gzip compressor.
const Gzip = "gzip"

func init() {
	Register(&gzipCompressor{level: gzip.DefaultCompression})
}

// NewGzip returns a gzip compressor that compresses at level, one of
// compress/gzip's levels from gzip.HuffmanOnly to gzip.BestCompression, to
// Register in place of the built-in one, which uses gzip.DefaultCompression
// as grpc-go does. A level trades ratio for time: gzip.BestSpeed compresses
// a small message many times faster than the default level and a large one
// several times faster, to a somewhat larger output. Every level
// decompresses the same.
func NewGzip(level int) (Compressor, error) {
	if _, err := gzip.NewWriterLevel(nil, level); err != nil {
		return nil, fmt.Errorf("compress: %w", err)
	}
	return &gzipCompressor{level: level}, nil
}

// gzipCompressor is gzip (RFC 1952) over the standard library.
//
// Its writers and readers are pooled because they are far larger than most
// messages: a gzip.Writer at the default level holds about 800 KiB of hash
// chains and window, a gzip.Reader a 32 KiB window and its Huffman tables.
// Reset reuses all of it, so compressing a message allocates nothing beyond
// its output. (Levels 2 and up clear 640 KiB of hash chains on Reset, which
// is most of what compressing a small message costs.)
//
// Decompressing still allocates what compress/gzip and compress/flate make
// afresh: a header's extra field, and the overflow tables of every dynamic
// Huffman block with codes longer than 9 bits, up to some 40 KiB a block.
// That is bounded by the input, not by the limit: crafted blocks that inflate
// to nothing make about 250 bytes of garbage for each byte of input, though
// only one block's tables are live at a time.
type gzipCompressor struct {
	level   int
	writers sync.Pool // of *gzipWriter
	readers sync.Pool // of *gzipReader
}

type gzipWriter struct {
	z   *gzip.Writer
	out appendWriter
}

// appendWriter appends what is written to b, so Compress writes straight
// into the caller's slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

type gzipReader struct {
	z   gzip.Reader
	src bytes.Reader // an io.ByteReader, so gzip adds no bufio.Reader
}

func (c *gzipCompressor) Name() string { return Gzip }

// Compress appends one gzip member, with an empty header, to dst.
func (c *gzipCompressor) Compress(dst, src []byte) ([]byte, error) {
	w, _ := c.writers.Get().(*gzipWriter)
	if w == nil {
		w = new(gzipWriter)
		z, err := gzip.NewWriterLevel(&w.out, c.level)
		if err != nil {
			return dst, fmt.Errorf("compress: gzip: %w", err)
		}
		w.z = z
	} else {
		w.z.Reset(&w.out)
	}
	w.out.b = dst
	_, err := w.z.Write(src)
	if err == nil {
		err = w.z.Close()
	}
	out := w.out.b
	w.out.b = nil // the pool must not hold on to the caller's memory
	c.writers.Put(w)
	if err != nil {
		return dst, fmt.Errorf("compress: gzip: %w", err)
	}
	return out, nil
}

// Decompress appends the content of src to dst. Like grpc-go, it reads
// concatenated gzip members as one message, the concatenation of their
// contents, and refuses anything after the last member that is not another
// member. On error it returns dst.
func (c *gzipCompressor) Decompress(dst, src []byte, limit int) ([]byte, error) {
	r, _ := c.readers.Get().(*gzipReader)
	if r == nil {
		r = new(gzipReader)
	}
	r.src.Reset(src)
	err := r.z.Reset(&r.src)
	out := dst
	if err == nil {
		out, err = ReadLimited(dst, &r.z, limit)
	}
	r.src.Reset(nil)
	c.readers.Put(r)
	switch {
	case err == nil, errors.Is(err, ErrTooLarge):
		return out, err
	case err == io.EOF, err == io.ErrUnexpectedEOF:
		return dst, fmt.Errorf("compress: gzip: truncated input: %w", io.ErrUnexpectedEOF)
	default:
		return dst, fmt.Errorf("compress: gzip: corrupt input: %w", err)
	}
}
