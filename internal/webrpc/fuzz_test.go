package webrpc

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"testing"
)

// FuzzEnvelope: the envelope reader never panics or holds more than its
// bound, and what it reads re-encodes to the bytes it consumed.
func FuzzEnvelope(f *testing.F) {
	f.Add(appendEnvelope(nil, 0, []byte(`{"name":"x"}`)))
	f.Add(appendEnvelope(appendEnvelope(nil, 1, []byte{1, 2, 3}), 2, []byte(`{}`)))
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 0, 9, 'a'})
	f.Add([]byte{0x80, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 1 << 12
		er := envelopeReader{r: bufio.NewReader(bytes.NewReader(data)), max: max}
		var back []byte
		for i := 0; ; i++ {
			flags, body, err := er.next()
			if err == io.EOF {
				if !bytes.Equal(back, data) {
					t.Fatalf("read %q back as %q", data, back)
				}
				return
			}
			if err != nil {
				return
			}
			if len(body) > max || cap(er.buf) > max {
				t.Fatalf("held %d bytes past the bound %d", cap(er.buf), max)
			}
			back = appendEnvelope(back, flags, body)
		}
	})
}

// FuzzTextReader: grpc-web-text decoding never panics and decodes what
// base64 encodes, whole or in padded chunks.
func FuzzTextReader(f *testing.F) {
	f.Add([]byte("AAAAAAVoZWxsbw=="), 3)
	f.Add([]byte("AA==AAA="), 1)
	f.Add([]byte("!!!!"), 2)
	f.Add([]byte("QQ"), 5)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		if len(data) > 1<<12 {
			return // long inputs add nothing but time
		}
		got, err := io.ReadAll(&textReader{r: bytes.NewReader(data)})
		if err == nil && len(got) > len(data) {
			t.Fatalf("%d bytes of text decoded to %d", len(data), len(got))
		}
		// Round trip: the data encoded in two padded chunks.
		if split < 0 {
			split = -split
		}
		split %= len(data) + 1
		enc := base64.StdEncoding.EncodeToString(data[:split]) + base64.StdEncoding.EncodeToString(data[split:])
		got, err = io.ReadAll(&textReader{r: iotestOneByte{bytes.NewReader([]byte(enc))}})
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("chunks %q decoded to %q, %v", enc, got, err)
		}
	})
}

// iotestOneByte reads one byte at a time, so that quanta straddle reads.
type iotestOneByte struct{ r io.Reader }

func (o iotestOneByte) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

// FuzzGetQuery: a Connect GET query never panics the parser nor yields a
// message over the bound.
func FuzzGetQuery(f *testing.F) {
	f.Add("encoding=json&message=%7B%22name%22%3A%22x%22%7D&connect=v1")
	f.Add("encoding=proto&message=CgF4&base64=1&compression=gzip")
	f.Add("message=%zz")
	f.Add("message=" + base64.URLEncoding.EncodeToString(make([]byte, 300)) + "&base64=1")
	f.Add("&&=&a=b=c&message")
	f.Fuzz(func(t *testing.T, raw string) {
		const max = 256
		q, err := parseGetQuery(raw, max)
		if err == nil && len(q.message) > max {
			t.Fatalf("message of %d bytes past the bound %d", len(q.message), max)
		}
	})
}
