package mdns

import (
	"fmt"
	"reflect"
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
		"s.team=core", "n.transport=http2", "eps=5", "e=/greeter.v1.Greeter/SayHello?stream=unary", "e=+Chat?stream=bidi&x=a%26b%3Dc%2Bd"} {
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
