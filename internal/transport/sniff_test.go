package transport

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"
	"testing/iotest"
)

// FuzzSniff feeds sniffPreface any first bytes, one at a time or in
// chunks: it must call them HTTP/2 exactly when they start with the client
// preface, HTTP/1.x or garbage exactly when a byte of the first 24 differs
// from it (HTTP/1.x when the bytes up to it can begin a method),
// read one byte at a time no further than that byte, and leave every byte
// it read to be replayed, in order.
func FuzzSniff(f *testing.F) {
	f.Add([]byte(clientPreface+"\x00\x00\x00\x04\x00\x00\x00\x00\x00"), false)
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), true)
	f.Add([]byte("POST /greeter.v1.Greeter/SayHello HTTP/1.1\r\n"), false)
	f.Add([]byte("PRI * HTTP/2.0\r\n"), true)
	f.Add([]byte("PRI * HTTP/1.1\r\n\r\n"), false)
	f.Add([]byte("\x16\x03\x01\x02\x00\x01"), true)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, data []byte, oneByte bool) {
		var src io.Reader = bytes.NewReader(data)
		if oneByte {
			src = iotest.OneByteReader(src)
		}
		counted := &countingReader{r: src}
		br := bufio.NewReaderSize(counted, 32<<10)
		res, err := sniffPreface(br)

		// The verdict follows from the bytes alone.
		want, decisive := sniffShort, len(data)
		for i := 0; i < len(clientPreface); i++ {
			if i == len(data) {
				break
			}
			if data[i] != clientPreface[i] {
				want, decisive = sniffGarbage, i+1
				if looksHTTP1(data[:i+1]) {
					want = sniffHTTP1
				}
				break
			}
			if i == len(clientPreface)-1 {
				want, decisive = sniffH2, len(clientPreface)
			}
		}
		if res != want {
			t.Fatalf("sniff(%q) = %v, want %v", data, res, want)
		}
		if (res == sniffShort) != (err != nil) {
			t.Fatalf("sniff(%q) = %v with error %v", data, res, err)
		}
		if oneByte && counted.n > decisive {
			t.Fatalf("sniff(%q) read %d bytes to decide on byte %d", data, counted.n, decisive)
		}

		// What was read is replayed, then the rest follows.
		b, _ := br.Peek(br.Buffered())
		rc := &replayConn{Conn: readOnlyConn{r: counted}, buf: append([]byte(nil), b...)}
		got, _ := io.ReadAll(rc)
		if !bytes.Equal(got, data) {
			t.Fatalf("replayed %q, want %q", got, data)
		}
	})
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// readOnlyConn is a net.Conn that only reads, from r.
type readOnlyConn struct {
	net.Conn
	r io.Reader
}

func (c readOnlyConn) Read(p []byte) (int, error) { return c.r.Read(p) }
