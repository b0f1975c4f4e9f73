package compress

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/protoc-gen-micro/micro/internal/wire"
)

// registry is one immutable generation of the registered compressors. Get
// reads it through an atomic pointer, so a lookup on the hot path takes no
// lock, allocates nothing and needs no map for a list this short.
type registry struct {
	names       []string
	compressors []Compressor
	accept      string
}

var (
	registerMu sync.Mutex // serialises Register; readers never take it
	current    atomic.Pointer[registry]
)

// Register makes c available under c.Name() to every client and server in
// the process, replacing a compressor of that name in its place in the
// order. It panics if c is nil or its name is "identity" or not a lowercase
// HTTP token (letters a-z, digits and !#$%&'*+-.^_`|~). Register is meant for
// init functions, but is safe at any time.
func Register(c Compressor) {
	if c == nil {
		panic("compress: Register of a nil Compressor")
	}
	name := c.Name()
	if name == wire.IdentityEncoding {
		panic(`compress: Register of "identity", which means no compression`)
	}
	if !validName(name) {
		panic("compress: Register of invalid name " + strconv.Quote(name))
	}

	registerMu.Lock()
	defer registerMu.Unlock()
	old := current.Load()
	if old == nil {
		old = &registry{}
	}
	r := &registry{
		names:       append([]string(nil), old.names...),
		compressors: append([]Compressor(nil), old.compressors...),
	}
	if i := r.index(name); i >= 0 {
		r.compressors[i] = c
	} else {
		r.names = append(r.names, name)
		r.compressors = append(r.compressors, c)
	}
	r.accept = strings.Join(r.names, ",")
	current.Store(r)
}

// Get returns the compressor registered under name, a grpc-encoding value.
// Names match exactly, as in grpc-go. It returns false for "identity".
func Get(name string) (Compressor, bool) {
	r := current.Load()
	if i := r.index(name); i >= 0 {
		return r.compressors[i], true
	}
	return nil, false
}

func init() {
	wire.AcceptEncoding = func() string { return current.Load().accept }
}

func (r *registry) index(name string) int {
	for i, n := range r.names {
		if n == name {
			return i
		}
	}
	return -1
}

// validName reports whether name is a lowercase token (RFC 9110, section
// 5.6.2): a content coding, which also fits in a comma-separated list.
func validName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
