package mdns

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

func TestTXTRoundTrip(t *testing.T) {
	s := &registry.Service{
		Name:     "greeter",
		Version:  "v1.2",
		Metadata: map[string]string{"team": "core", "with space": "a=b;c", "empty": ""},
		Endpoints: []*registry.Endpoint{
			{Name: "/greeter.v1.Greeter/SayHello", Metadata: map[string]string{"stream": "unary"}},
			{Name: "/greeter.v1.Greeter/Chat", Metadata: map[string]string{"stream": "bidi", "x": "a&b=c+d"}},
			{Name: "/other.Svc/What?%+"},
			{Name: "+leading/plus"},
			{Name: "noslash"},
		},
	}
	n := &registry.Node{ID: "greeter-1", Address: ":1", Metadata: map[string]string{"protocol": "grpc", "transport": "http2"}}
	txt, err := encodeTXT(s, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"txtvers=1", "name=greeter", "version=v1.2", "node=greeter-1", "protocol=grpc",
		"s.team=core", "n.transport=http2", "eps=5", "e0=/greeter.v1.Greeter/SayHello?stream=unary", "e1=+Chat?stream=bidi&x=a%26b%3Dc%2Bd", "e4=noslash"} {
		if !contains(txt, want) {
			t.Errorf("TXT %q lacks %q", txt, want)
		}
	}
	d, ok := decodeTXT(txt)
	if !ok {
		t.Fatalf("decodeTXT(%q) failed", txt)
	}
	want := description{
		name: s.Name, version: s.Version, nodeID: n.ID,
		svcMeta: s.Metadata, nodeMeta: n.Metadata,
		endpoints: s.Endpoints, endpointCount: 5,
	}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", d, want)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestTXTRejectsWhatDoesNotFit(t *testing.T) {
	n := &registry.Node{ID: "n1", Address: ":1"}
	for _, tc := range []struct {
		name string
		s    *registry.Service
		n    *registry.Node
		want string
	}{
		{"long value", &registry.Service{Name: "a", Metadata: map[string]string{"k": strings.Repeat("v", 300)}}, n,
			`service metadata "k" is 304 bytes as a TXT string`},
		{"long name", &registry.Service{Name: strings.Repeat("a", 251)}, n,
			"the service name is 256 bytes"},
		{"key with =", &registry.Service{Name: "a", Metadata: map[string]string{"a=b": "c"}}, n,
			`service metadata key "a=b": TXT keys must be printable ASCII without '='`},
		{"non-ASCII key", &registry.Service{Name: "a"}, &registry.Node{ID: "n", Metadata: map[string]string{"ключ": "v"}},
			`node metadata key "ключ"`},
		{"too much", &registry.Service{Name: "a", Metadata: bigMetadata(10, 100)}, n,
			"more than the 800 that fit in one mDNS packet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := encodeTXT(tc.s, tc.n)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("encodeTXT error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func bigMetadata(n, size int) map[string]string {
	md := map[string]string{}
	for i := range n {
		md[fmt.Sprintf("k%d", i)] = strings.Repeat("v", size)
	}
	return md
}

// Endpoints beyond the budget are left out, the ones that travel are the
// first ones in order, and the count says how many there are.
func TestTXTEndpointsBounded(t *testing.T) {
	s := &registry.Service{Name: "big", Version: "v1", Endpoints: manyEndpoints(200)}
	txt, err := encodeTXT(s, &registry.Node{ID: "big-1", Address: ":1"})
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for _, str := range txt {
		if len(str) > maxTXT {
			t.Fatalf("string of %d bytes", len(str))
		}
		size += 1 + len(str)
	}
	if size > txtBudget {
		t.Fatalf("TXT is %d bytes, budget %d", size, txtBudget)
	}
	d, ok := decodeTXT(txt)
	if !ok {
		t.Fatal("decode failed")
	}
	if d.endpointCount != 200 || len(d.endpoints) < 20 || len(d.endpoints) >= 200 {
		t.Fatalf("count %d, travelled %d", d.endpointCount, len(d.endpoints))
	}
	if !reflect.DeepEqual(d.endpoints, s.Endpoints[:len(d.endpoints)]) {
		t.Fatal("travelled endpoints are not the first ones")
	}
	t.Logf("%d of 200 endpoints travel in %d bytes of TXT", len(d.endpoints), size)
}

func manyEndpoints(n int) []*registry.Endpoint {
	var es []*registry.Endpoint
	for i := range n {
		es = append(es, &registry.Endpoint{
			Name:     fmt.Sprintf("/big.v1.Service%d/Method%03d", i/50, i),
			Metadata: map[string]string{"stream": "unary"},
		})
	}
	return es
}

func TestDecodeTXTIgnoresOthers(t *testing.T) {
	for _, txt := range [][]string{
		nil,
		{"txtvers=2", "name=a", "node=n"},
		{"name=a", "node=n"},
		{"txtvers=1", "node=n"},
		{"path=/", "txtvers=1"},
	} {
		if d, ok := decodeTXT(txt); ok {
			t.Errorf("decodeTXT(%q) = %+v, want not ours", txt, d)
		}
	}
	d, ok := decodeTXT([]string{"txtvers=1", "name=a", "node=n", "flag", "e=+rel", "e=%zz", "e=/x/y", "zzz=1"})
	if !ok || len(d.endpoints) != 1 || d.endpoints[0].Name != "/x/y" {
		t.Fatalf("decodeTXT = %+v, %v; want one endpoint /x/y", d, ok)
	}
}

// Every key of a record appears once (RFC 6763 §6.4: readers such as
// python-zeroconf use only the first occurrence of a key).
func TestTXTKeysAreDistinct(t *testing.T) {
	s := &registry.Service{Name: "big", Version: "v1", Metadata: map[string]string{"a": "1"}, Endpoints: manyEndpoints(200)}
	txt, err := encodeTXT(s, &registry.Node{ID: "big-1", Address: ":1", Metadata: map[string]string{"protocol": "grpc", "b": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, str := range txt {
		k, _, _ := strings.Cut(str, "=")
		if seen[strings.ToLower(k)] {
			t.Fatalf("key %q appears twice in %q", k, txt)
		}
		seen[strings.ToLower(k)] = true
	}
	if !seen["e0"] || !seen["e20"] {
		t.Fatalf("endpoint keys missing: %q", txt)
	}
}

// Records of older nodes of ours, with every endpoint under "e", still
// read; the first occurrence of any other key counts; numbered endpoints
// are read in number order up to the first gap and win over "e".
func TestDecodeTXTKeys(t *testing.T) {
	head := []string{"txtvers=1", "name=a", "node=n"}
	for _, tc := range []struct {
		name string
		txt  []string
		eps  []string
	}{
		{"older nodes", []string{"e=/p.S/A", "e=+B", "e=/q.T/C"}, []string{"/p.S/A", "/p.S/B", "/q.T/C"}},
		{"numbered, out of order", []string{"e2=/q.T/C", "e0=/p.S/A", "e1=+B"}, []string{"/p.S/A", "/p.S/B", "/q.T/C"}},
		{"numbered win over e", []string{"e=/old/X", "e0=/new/Y"}, []string{"/new/Y"}},
		{"first occurrence wins", []string{"e0=/p.S/A", "e0=/p.S/Z", "e1=+B"}, []string{"/p.S/A", "/p.S/B"}},
		{"a gap ends them", []string{"e0=/p.S/A", "e2=/p.S/C"}, []string{"/p.S/A"}},
		{"leading zeros are not ours", []string{"e0=/p.S/A", "e01=/p.S/B"}, []string{"/p.S/A"}},
		{"numbers beyond the bound", []string{"e0=/p.S/A", "e99999=/p.S/B", "e-1=/p.S/C"}, []string{"/p.S/A"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, ok := decodeTXT(append(slices.Clone(head), tc.txt...))
			if !ok {
				t.Fatal("not ours")
			}
			var got []string
			for _, e := range d.endpoints {
				got = append(got, e.Name)
			}
			if !slices.Equal(got, tc.eps) {
				t.Fatalf("endpoints %q, want %q", got, tc.eps)
			}
		})
	}
	d, ok := decodeTXT([]string{"txtvers=1", "name=first", "node=n1", "name=second", "node=n2", "s.k=1", "s.k=2", "eps=-3"})
	if !ok || d.name != "first" || d.nodeID != "n1" || d.svcMeta["k"] != "1" || d.endpointCount != 0 {
		t.Fatalf("decodeTXT = %+v, %v; want the first of each key", d, ok)
	}
	if _, ok := decodeTXT([]string{"txtvers=2", "txtvers=1", "name=a", "node=n"}); ok {
		t.Fatal("a record whose first txtvers is 2 read as ours")
	}
}

// A record larger than maxPeerTXT is not ours, and what a record within it
// can make a reader hold is bounded by its size.
func TestDecodeTXTBounded(t *testing.T) {
	head := []string{"txtvers=1", "name=a", "node=n"}
	txt := slices.Clone(head)
	size := 0
	for _, s := range txt {
		size += 1 + len(s)
	}
	for i := 0; size+1+len(fmt.Sprintf("e%d=+x", i)) <= maxPeerTXT; i++ {
		str := fmt.Sprintf("e%d=+x", i)
		if i == 0 {
			str = "e0=/p/x"
		}
		txt = append(txt, str)
		size += 1 + len(str)
	}
	d, ok := decodeTXT(txt)
	if !ok || len(d.endpoints) != len(txt)-len(head) || len(d.endpoints) > maxEndpointKey {
		t.Fatalf("at the bound: ok %v, %d endpoints of %d strings", ok, len(d.endpoints), len(txt))
	}
	if _, ok := decodeTXT(append(txt, "e9999=+y")); ok {
		t.Fatal("a record past the bound read as ours")
	}
	if _, ok := decodeTXT(append(slices.Clone(head), strings.Repeat("s.k=", maxPeerTXT/4))); ok {
		t.Fatal("a record past the bound read as ours")
	}
}

// FuzzDecodeTXT reads TXT RDATA (length-prefixed strings) from a peer: it
// never panics, and what it returns stays within the bounds.
func FuzzDecodeTXT(f *testing.F) {
	s := &registry.Service{Name: "greeter", Version: "v1", Metadata: map[string]string{"team": "core"}, Endpoints: manyEndpoints(40)}
	txt, err := encodeTXT(s, &registry.Node{ID: "greeter-1", Address: ":1", Metadata: map[string]string{"protocol": "grpc"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(rdata(txt))
	f.Add(rdata([]string{"txtvers=1", "name=a", "node=n", "e=/p.S/A", "e=+B", "e0=/x/y", "e1=+%zz", "e3=+z"}))
	f.Add(rdata([]string{"txtvers=1", "name=a", "node=n", "eps=99999999999999999999", "e00=+x", "e=+rel"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var txt []string
		for len(b) > 0 {
			n := min(int(b[0]), len(b)-1)
			txt = append(txt, string(b[1:1+n]))
			b = b[1+n:]
		}
		d, ok := decodeTXT(txt)
		if !ok {
			return
		}
		if len(d.endpoints) > maxEndpointKey+1 || len(d.svcMeta)+len(d.nodeMeta) > len(txt) || d.endpointCount < 0 {
			t.Fatalf("decoded beyond the bounds: %d endpoints, %d metadata, count %d from %d strings",
				len(d.endpoints), len(d.svcMeta)+len(d.nodeMeta), d.endpointCount, len(txt))
		}
		if slices.Contains(d.endpoints, nil) {
			t.Fatal("a nil endpoint")
		}
	})
}

// rdata returns TXT strings as TXT RDATA.
func rdata(txt []string) []byte {
	var b []byte
	for _, s := range txt {
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	return b
}
