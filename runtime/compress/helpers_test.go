package compress_test

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
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

// message returns n bytes that compress about as well as a protobuf message
// with text fields: words from a small vocabulary between varint-like bytes.
func message(n int) []byte {
	words := []string{"order", "id", "customer", "name", "héllo", "quantity", "price", "status", "🙂", "shipped"}
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	b := make([]byte, 0, n+16)
	for len(b) < n {
		b = append(b, byte(rng.IntN(256)), byte(rng.IntN(16)))
		b = append(b, words[rng.IntN(len(words))]...)
	}
	return b[:n]
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
