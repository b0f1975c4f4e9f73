package transport

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"time"
)

// One port serves HTTP/2 and HTTP/1.x. A new connection is HTTP/2 when TLS
// negotiated ALPN h2 or when its first bytes are the client preface; it is
// HTTP/1.x when TLS negotiated http/1.1 or when its bytes differ from the
// preface, which is known by the first byte that differs: an HTTP/1.x
// request is never made to wait for 24 bytes it may not send.

// sniffResult is what the first bytes of a connection say it is.
type sniffResult int

const (
	sniffH2      sniffResult = iota // the whole client preface
	sniffHTTP1                      // a byte that is not the preface's, in an HTTP/1.x method
	sniffGarbage                    // a byte that is neither
	sniffShort                      // a prefix of the preface, then an error
)

// sniffPreface reads from r until its first bytes either are the client
// preface or differ from it (then they may begin an HTTP/1.x request, or
// be garbage to close the connection on), and consumes nothing: what it read stays
// buffered in r. It reads no more than it must to decide, and returns the
// read error when the bytes end before that.
func sniffPreface(r *bufio.Reader) (sniffResult, error) {
	for {
		n := r.Buffered()
		buf, _ := r.Peek(min(n, len(clientPreface)))
		for i, b := range buf {
			if b != clientPreface[i] {
				if looksHTTP1(buf[:i+1]) {
					return sniffHTTP1, nil
				}
				return sniffGarbage, nil
			}
		}
		if len(buf) == len(clientPreface) {
			return sniffH2, nil
		}
		// Undecided: read once more, however few bytes arrive.
		if _, err := r.Peek(n + 1); err != nil {
			return sniffShort, err
		}
	}
}

// negotiate finishes a TLS handshake (under the deadline the caller set)
// and reports whether the client chose HTTP/1.1 by ALPN. A cleartext
// connection is never HTTP/1.1 by ALPN.
func negotiate(c net.Conn) (http1 bool, err error) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return false, nil
	}
	if err := tc.Handshake(); err != nil {
		return false, err
	}
	return tc.ConnectionState().NegotiatedProtocol == "http/1.1", nil
}

// replayConn is a connection whose first bytes were read while sniffing;
// Read returns them before reading on.
type replayConn struct {
	net.Conn
	buf []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		if len(c.buf) == 0 {
			c.buf = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// TLSState returns the TLS state of a connection the server handed to
// ServerConfig.HTTP1, nil for cleartext: the connection may wrap the
// *tls.Conn to replay the bytes read while sniffing, which hides it from
// net/http.
func TLSState(c net.Conn) *tls.ConnectionState {
	if rc, ok := c.(*replayConn); ok {
		c = rc.Conn
	}
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil
	}
	cs := tc.ConnectionState()
	return &cs
}

// CloseWrite half-closes the connection when it can, so that net/http's
// answer to a bad request reaches the client before the close.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// handOff gives a connection that is not HTTP/2 to cfg.HTTP1, with the
// bytes read while sniffing replayed, and no deadline left on it.
func (sc *serverConn) handOff() {
	c := sc.conn
	if n := sc.br.Buffered(); n > 0 {
		b, _ := sc.br.Peek(n)
		c = &replayConn{Conn: c, buf: append([]byte(nil), b...)}
	}
	sc.br = nil
	c.SetDeadline(time.Time{})
	sc.cfg.HTTP1(c)
}

// prelude decides, before the preface is read, whether the connection is
// HTTP/2; it hands it off when it is not, and closes it when it ends
// first. It reports whether the connection is the transport's to serve.
// Without cfg.HTTP1 the transport serves every connection.
func (sc *serverConn) prelude() bool {
	if sc.cfg.HTTP1 == nil {
		return true
	}
	http1, err := negotiate(sc.conn)
	if err != nil {
		sc.logf("TLS handshake failed", err)
		sc.conn.Close()
		return false
	}
	if !http1 {
		if tc, ok := sc.conn.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol == "h2" {
			return true
		}
		res, err := sniffPreface(sc.br)
		switch res {
		case sniffH2:
			return true
		case sniffShort:
			sc.logf("connection ended before saying its protocol", err)
			sc.conn.Close()
			return false
		case sniffGarbage:
			sc.logf("closing connection", errors.New("transport: neither HTTP/2 nor HTTP/1.x"))
			sc.conn.Close()
			return false
		}
	}
	sc.handOff()
	return false
}
