package compress_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/protoc-gen-micro/micro/internal/wire"
	"github.com/protoc-gen-micro/micro/runtime/compress"
)

// named is a Compressor that does nothing but have a name.
type named struct {
	name string
	id   int
}

func (c named) Name() string                                    { return c.name }
func (named) Compress(dst, src []byte) ([]byte, error)          { return append(dst, src...), nil }
func (named) Decompress(dst, src []byte, _ int) ([]byte, error) { return append(dst, src...), nil }

func TestBuiltIn(t *testing.T) {
	if got := compress.Names(); len(got) == 0 || got[0] != "gzip" {
		t.Errorf("Names() = %q, want gzip first", got)
	}
	if !strings.HasPrefix(wire.AcceptEncoding(), "gzip") {
		t.Errorf("AcceptEncoding() = %q, want gzip first", wire.AcceptEncoding())
	}
	for _, name := range []string{"identity", "", "GZIP", " gzip", "gzip,identity"} {
		if c, ok := compress.Get(name); ok {
			t.Errorf("Get(%q) = %v, want none", name, c)
		}
	}
}

func TestRegister(t *testing.T) {
	compress.KeepRegistry(t)
	before := compress.Names()

	compress.Register(named{name: "x-one"})
	compress.Register(named{name: "x-two!"})
	compress.Register(named{name: "x-one", id: 2}) // replaces, in its place
	want := append(before, "x-one", "x-two!")
	if got := compress.Names(); !slices.Equal(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
	if got, want := wire.AcceptEncoding(), strings.Join(want, ","); got != want {
		t.Errorf("AcceptEncoding() = %q, want %q", got, want)
	}
	if c, ok := compress.Get("x-one"); !ok || c.(named).id != 2 {
		t.Errorf(`Get("x-one") = %v, %v; want the second registration`, c, ok)
	}

	// Names returns a copy.
	compress.Names()[0] = "changed"
	if compress.Names()[0] != "gzip" {
		t.Error("changing the slice Names returned changed the registry")
	}
}

func TestRegisterPanics(t *testing.T) {
	compress.KeepRegistry(t)
	for _, tc := range []struct {
		c    compress.Compressor
		want string
	}{
		{nil, "nil"},
		{named{name: ""}, "invalid name"},
		{named{name: "identity"}, "identity"},
		{named{name: "Snappy"}, "invalid name"},
		{named{name: "a,b"}, "invalid name"},
		{named{name: "a b"}, "invalid name"},
		{named{name: "zstd;q=1"}, "invalid name"},
		{named{name: "ünicode"}, "invalid name"},
		{named{name: "tab\t"}, "invalid name"},
	} {
		func() {
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.Contains(s, tc.want) {
					t.Errorf("Register(%v) panicked with %v, want it to say %q", tc.c, r, tc.want)
				}
			}()
			compress.Register(tc.c)
		}()
	}
	if got := wire.AcceptEncoding(); strings.ContainsAny(got, " ;A") || strings.Contains(got, "identity") {
		t.Errorf("a refused compressor is registered: %q", got)
	}
}

// TestLookupsDoNotAllocate: the transport calls Get and AcceptEncoding on
// every call.
func TestLookupsDoNotAllocate(t *testing.T) {
	if a := testing.AllocsPerRun(100, func() {
		compress.Get(compress.Gzip)
		compress.Get("unknown")
		_ = wire.AcceptEncoding()
	}); a != 0 {
		t.Errorf("Get and AcceptEncoding: %v allocations", a)
	}
}

func TestRegisterConcurrent(t *testing.T) {
	compress.KeepRegistry(t)
	before := len(compress.Names())
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 50 {
				compress.Register(named{name: fmt.Sprintf("x-%d-%d", g, i%5)})
			}
		}()
		go func() {
			defer wg.Done()
			c := gzipCompressor(t)
			for range 50 {
				if got, ok := compress.Get(compress.Gzip); !ok || got != c {
					t.Error("gzip changed while others registered")
					return
				}
				if a := wire.AcceptEncoding(); !strings.HasPrefix(a, "gzip") {
					t.Errorf("AcceptEncoding() = %q", a)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := len(compress.Names()) - before; got != 4*5 {
		t.Errorf("%d names registered, want %d", got, 4*5)
	}
}
