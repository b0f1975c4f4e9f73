package compress_test

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/bits"
	"math/rand/v2"
	"testing"

	"github.com/protoc-gen-micro/micro/runtime/compress"
)

func gzipCompressor(t testing.TB) compress.Compressor {
	t.Helper()
	c, ok := compress.Get(compress.Gzip)
	if !ok {
		t.Fatal("gzip is not registered")
	}
	return c
}

// message returns n bytes that compress as a protobuf message of records
// does: field tags, varints, names and addresses, timestamps.
func message(n int) []byte {
	first := []string{"Ada", "Grace", "Alan", "Barbara", "Edsger", "Donald", "Ken", "Rob", "Margaret", "Frances"}
	last := []string{"Lovelace", "Hopper", "Turing", "Liskov", "Dijkstra", "Knuth", "Thompson", "Pike", "Hamilton", "Allen"}
	states := []string{"PENDING", "SHIPPED", "DELIVERED", "CANCELLED"}
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	b := make([]byte, 0, n+128)
	var r []byte
	for id := uint64(1000); len(b) < n; id++ {
		r = binary.AppendUvarint(append(r[:0], 0x08), id)
		r = appendString(r, 0x12, first[rng.IntN(10)]+" "+last[rng.IntN(10)])
		r = appendString(r, 0x1a, fmt.Sprintf("user%d@example.com", rng.IntN(100_000)))
		r = binary.LittleEndian.AppendUint64(append(r, 0x21), 1_700_000_000_000+rng.Uint64N(1<<30))
		r = appendString(r, 0x2a, states[rng.IntN(len(states))])
		r = binary.AppendUvarint(append(r, 0x30), rng.Uint64N(100_000))
		b = appendString(b, 0x0a, string(r))
	}
	return b[:n]
}

// appendString appends a length-delimited field shorter than 128 bytes.
func appendString(b []byte, tag byte, s string) []byte {
	return append(append(b, tag, byte(len(s))), s...)
}

// bomb returns one gzip member that inflates to mib MiB of zeros. It repeats
// the deflate blocks of one compressed MiB of zeros (blocks that refer only
// to bytes they produce, ended on a byte by a sync flush), so it is built
// without compressing the whole. Deflate's ratio is at most about 1032:1:
// a GiB of output takes about a MiB of input, and no smaller gzip makes it.
func bomb(t testing.TB, mib int) []byte {
	t.Helper()
	zeros := make([]byte, 1<<20)
	var blocks bytes.Buffer
	fw, err := flate.NewWriter(&blocks, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write(zeros); err != nil {
		t.Fatal(err)
	}
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}

	b := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}
	crc := uint32(0)
	for range mib {
		b = append(b, blocks.Bytes()...)
		crc = crc32.Update(crc, crc32.IEEETable, zeros)
	}
	// A final, empty stored block, then CRC-32 and ISIZE.
	b = append(b, 1, 0, 0, 0xff, 0xff)
	b = binary.LittleEndian.AppendUint32(b, crc)
	return binary.LittleEndian.AppendUint32(b, uint32(mib<<20))
}

// tableGarbage returns a gzip member of n empty dynamic Huffman blocks, each
// with a literal/length code whose codes longer than 9 bits spread over as
// many 9-bit prefixes as 286 symbols allow, reaching 15 bits: the most
// overflow tables compress/flate allocates for a block. It inflates to
// nothing.
func tableGarbage(n int) []byte {
	var lengths [286 + 1]int // literal/length codes, then one distance code
	copy(lengths[:], []int{3, 4, 5, 7, 8, 9, 11, 12, 13, 14, 15, 15})
	for i := 12; i < 286; i++ {
		lengths[i] = 10
	}
	lengths[256] = 1 // end of block, code 0
	lengths[286] = 1 // the one distance code

	var w bitWriter
	w.b = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}
	for i := range n {
		final := uint32(0)
		if i == n-1 {
			final = 1
		}
		w.write(final, 1)
		w.write(2, 2) // dynamic Huffman
		w.write(286-257, 5)
		w.write(1-1, 5)
		w.write(19-4, 4)
		// Code length codes in RFC 1951's order (16, 17, 18 first):
		// 0 to 15 all 4 bits long, so code length l is written as l.
		w.write(0, 3*3)
		for range 19 - 3 {
			w.write(4, 3)
		}
		for _, l := range lengths {
			w.write(uint32(bits.Reverse8(uint8(l))>>4), 4) // Huffman codes go MSB first
		}
		w.write(0, 1) // end of block
	}
	b := w.flush()
	return append(b, 0, 0, 0, 0, 0, 0, 0, 0) // CRC-32 and ISIZE of nothing
}

// bitWriter writes deflate's bit stream, least significant bit first.
type bitWriter struct {
	b     []byte
	acc   uint64
	nbits uint
}

func (w *bitWriter) write(v uint32, n uint) {
	w.acc |= uint64(v) << w.nbits
	w.nbits += n
	for w.nbits >= 8 {
		w.b = append(w.b, byte(w.acc))
		w.acc >>= 8
		w.nbits -= 8
	}
}

func (w *bitWriter) flush() []byte {
	if w.nbits > 0 {
		w.b = append(w.b, byte(w.acc))
	}
	w.acc, w.nbits = 0, 0
	return w.b
}
