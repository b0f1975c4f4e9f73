package mdns

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// The TXT record of a node (RFC 6763 §6) holds key=value strings:
//
//	txtvers=1           format version
//	name=greeter        service name
//	version=v1          service version
//	node=greeter-1      node ID
//	protocol=grpc       the node's "protocol" metadata, when set
//	s.<key>=<value>     service metadata
//	n.<key>=<value>     other node metadata
//	eps=<count>         how many endpoints the service has
//	e0=<endpoint>       endpoints, in order, as many as fit (see below),
//	e1=<endpoint> ...   each under a key of its own
//
// An endpoint is its name with '%' and '?' percent-escaped, then '?' and
// its metadata as a URL query when it has any. A name in the same
// directory ("/pkg.Service/") as the one before is written relative to it,
// after a '+': "e1=+SayHello?stream=unary".
//
// Every key appears once: RFC 6763 §6.4 has a reader use only the first
// occurrence of a key, as this reader does. Older nodes of ours wrote
// every endpoint under the same key "e", in order; records without
// numbered endpoints are read that way.
//
// A peer's record is hostile input: one of more than maxPeerTXT bytes,
// twice what any node of ours writes, is not ours and is ignored whole, so
// what a peer can make a reader hold is bounded.
//
// Every string is at most 255 bytes and the whole record at most
// txtBudget bytes, so that a node's records always fit in one packet
// (see maxMessage). Name, version, node ID and metadata must fit: Register
// refuses a service whose do not, naming the culprit. Endpoints fill the
// space left, in order; the rest are left out, and eps tells readers how
// many there were. Nothing is ever truncated silently.
const (
	txtVersion = "1"
	txtBudget  = 800           // bytes of TXT RDATA: each string plus its length byte
	maxTXT     = 255           // bytes in one TXT string
	maxPeerTXT = 2 * txtBudget // bytes of a peer's TXT RDATA read at most
	// maxEndpointKey is the largest endpoint number read: more than any
	// record within maxPeerTXT can hold.
	maxEndpointKey = maxPeerTXT / 4
)

// description is what a node's TXT record says.
type description struct {
	name, version string
	nodeID        string
	svcMeta       map[string]string
	nodeMeta      map[string]string
	endpoints     []*registry.Endpoint
	endpointCount int // as registered; len(endpoints) may be fewer
}

// encodeTXT returns the TXT strings of node n of service s.
func encodeTXT(s *registry.Service, n *registry.Node) ([]string, error) {
	var txt []string
	size := 0
	add := func(what, k, v string) error {
		str := k + "=" + v
		if len(str) > maxTXT {
			return fmt.Errorf("%s is %d bytes as a TXT string (%.40q…), more than the %d a TXT string holds",
				what, len(str), str, maxTXT)
		}
		txt = append(txt, str)
		size += 1 + len(str)
		return nil
	}
	addMeta := func(what, prefix string, md map[string]string) error {
		for _, k := range slices.Sorted(maps.Keys(md)) {
			if err := checkKey(k); err != nil {
				return fmt.Errorf("%s key %q: %w", what, k, err)
			}
			if err := add(fmt.Sprintf("%s %q", what, k), prefix+k, md[k]); err != nil {
				return err
			}
		}
		return nil
	}
	nodeMeta := maps.Clone(n.Metadata)
	protocol, hasProtocol := nodeMeta["protocol"]
	delete(nodeMeta, "protocol")

	if err := add("txtvers", "txtvers", txtVersion); err != nil {
		return nil, err
	}
	if err := add("the service name", "name", s.Name); err != nil {
		return nil, err
	}
	if err := add("the version", "version", s.Version); err != nil {
		return nil, err
	}
	if err := add("the node ID", "node", n.ID); err != nil {
		return nil, err
	}
	if hasProtocol {
		if err := add(`node metadata "protocol"`, "protocol", protocol); err != nil {
			return nil, err
		}
	}
	if err := addMeta("service metadata", "s.", s.Metadata); err != nil {
		return nil, err
	}
	if err := addMeta("node metadata", "n.", nodeMeta); err != nil {
		return nil, err
	}
	endpoints := slices.DeleteFunc(slices.Clone(s.Endpoints), func(e *registry.Endpoint) bool { return e == nil })
	if len(endpoints) > 0 {
		if err := add("the endpoint count", "eps", strconv.Itoa(len(endpoints))); err != nil {
			return nil, err
		}
	}
	if size > txtBudget {
		return nil, fmt.Errorf("name, version, node ID and metadata need %d bytes of TXT record, more than the %d that fit in one mDNS packet",
			size, txtBudget)
	}
	prevDir := ""
	for i, e := range endpoints {
		str := "e" + strconv.Itoa(i) + "=" + encodeEndpoint(e, prevDir)
		if len(str) > maxTXT || size+1+len(str) > txtBudget {
			break // the rest travel only as the count in eps
		}
		txt = append(txt, str)
		size += 1 + len(str)
		prevDir = dir(e.Name)
	}
	return txt, nil
}

// checkKey enforces RFC 6763 §6.4: printable US-ASCII other than '='.
func checkKey(k string) error {
	if k == "" {
		return fmt.Errorf("empty keys cannot be TXT keys")
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x20 || c > 0x7e || c == '=' {
			return fmt.Errorf("TXT keys must be printable ASCII without '='")
		}
	}
	return nil
}

func encodeEndpoint(e *registry.Endpoint, prevDir string) string {
	name := e.Name
	rel := false
	if d := dir(name); d != "" && d == prevDir {
		name, rel = name[len(d):], true
	}
	var b strings.Builder
	if rel {
		b.WriteByte('+')
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '%' || c == '?' || (i == 0 && c == '+'):
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	if len(e.Metadata) > 0 {
		q := url.Values{}
		for k, v := range e.Metadata {
			q.Set(k, v)
		}
		b.WriteByte('?')
		b.WriteString(q.Encode())
	}
	return b.String()
}

// dir returns name up to and including its last '/', or "".
func dir(name string) string {
	if i := strings.LastIndexByte(name, '/'); i > 0 {
		return name[:i+1]
	}
	return ""
}

// decodeTXT reads a TXT record written by encodeTXT, or by an older node
// of ours. It reports false for a record that is not ours (no txtvers=1,
// no name or node, or more than maxPeerTXT bytes). Only the first
// occurrence of a key counts (RFC 6763 §6.4), except the older nodes'
// repeated "e"; unknown keys and malformed endpoints are skipped;
// numbered endpoints are read from e0 up to the first missing number.
func decodeTXT(txt []string) (description, bool) {
	size := 0
	for _, s := range txt {
		size += 1 + len(s)
	}
	if size > maxPeerTXT {
		return description{}, false
	}
	var d description
	seen := make(map[string]bool, len(txt))
	numbered := map[int]string{}
	var unnumbered []string // the endpoints of older nodes, all under "e"
	for _, s := range txt {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			continue // a boolean attribute: none is ours
		}
		if k == "e" {
			unnumbered = append(unnumbered, v)
			continue
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		switch {
		case k == "txtvers":
			if v != txtVersion {
				return description{}, false
			}
		case k == "name":
			d.name = v
		case k == "version":
			d.version = v
		case k == "node":
			d.nodeID = v
		case k == "protocol":
			d.nodeMeta = set(d.nodeMeta, "protocol", v)
		case k == "eps":
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				d.endpointCount = n
			}
		case strings.HasPrefix(k, "s."):
			d.svcMeta = set(d.svcMeta, k[2:], v)
		case strings.HasPrefix(k, "n."):
			d.nodeMeta = set(d.nodeMeta, k[2:], v)
		default:
			if i, ok := endpointKey(k); ok {
				numbered[i] = v
			}
		}
	}
	if !seen["txtvers"] || d.name == "" || d.nodeID == "" {
		return description{}, false
	}
	endpoints := unnumbered
	if len(numbered) > 0 {
		endpoints = make([]string, 0, len(numbered))
		for i := 0; ; i++ {
			v, ok := numbered[i]
			if !ok {
				break
			}
			endpoints = append(endpoints, v)
		}
	}
	prevDir := ""
	for _, v := range endpoints {
		if e, ok := decodeEndpoint(v, prevDir); ok {
			d.endpoints = append(d.endpoints, e)
			prevDir = dir(e.Name)
		}
	}
	return d, true
}

// endpointKey returns the number of an endpoint key, "e0" to
// "e<maxEndpointKey>", written without leading zeros.
func endpointKey(k string) (int, bool) {
	digits, ok := strings.CutPrefix(k, "e")
	if !ok || digits == "" || len(digits) > 4 || (digits[0] == '0' && len(digits) > 1) {
		return 0, false
	}
	i, err := strconv.Atoi(digits)
	if err != nil || i < 0 || i > maxEndpointKey {
		return 0, false
	}
	return i, true
}

func decodeEndpoint(v, prevDir string) (*registry.Endpoint, bool) {
	rel := strings.HasPrefix(v, "+")
	if rel {
		v = v[1:]
	}
	raw, query, _ := strings.Cut(v, "?")
	name, err := url.PathUnescape(raw)
	if err != nil {
		return nil, false
	}
	if rel {
		if prevDir == "" {
			return nil, false
		}
		name = prevDir + name
	}
	e := &registry.Endpoint{Name: name}
	if query != "" {
		q, err := url.ParseQuery(query)
		if err != nil {
			return nil, false
		}
		e.Metadata = make(map[string]string, len(q))
		for k, vs := range q {
			e.Metadata[k] = vs[0]
		}
	}
	return e, true
}

func set(m map[string]string, k, v string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[k] = v
	return m
}
