package etcd

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// maxValueSize bounds a value the registry writes or decodes: 1 MiB, below
// etcd's default request limit (1.5 MiB). A larger value in the prefix is
// skipped like a malformed one.
const maxValueSize = 1 << 20

// key returns the key of one node: <prefix><service>/<node-id>, each part
// path-escaped so that a "/" in a name cannot make two nodes share a key.
func key(prefix, service, nodeID string) string {
	return prefix + url.PathEscape(service) + "/" + url.PathEscape(nodeID)
}

// encode returns the value of node n of s: s without its other nodes, as
// JSON.
func encode(s *registry.Service, n *registry.Node) ([]byte, error) {
	b, err := json.Marshal(&registry.Service{
		Name:      s.Name,
		Version:   s.Version,
		Metadata:  s.Metadata,
		Endpoints: s.Endpoints,
		Nodes:     []*registry.Node{n},
	})
	if err != nil {
		return nil, err
	}
	if len(b) > maxValueSize {
		return nil, fmt.Errorf("node %q of %q encodes to %d bytes, more than the %d a value may hold", n.ID, s.Name, len(b), maxValueSize)
	}
	return b, nil
}

var errTooLarge = errors.New("value larger than 1 MiB")

// decode parses the value stored at k under prefix: a service with exactly
// one node, whose name and node ID are the ones k names. Anything else is
// an error; nothing in the value is trusted beyond that.
func decode(prefix string, k, v []byte) (*registry.Service, error) {
	if len(v) > maxValueSize {
		return nil, errTooLarge
	}
	var s registry.Service
	if err := json.Unmarshal(v, &s); err != nil {
		return nil, err
	}
	switch {
	case s.Name == "":
		return nil, errors.New("service has no name")
	case len(s.Nodes) != 1 || s.Nodes[0] == nil || s.Nodes[0].ID == "":
		return nil, errors.New("value does not hold exactly one node with an ID")
	}
	for _, e := range s.Endpoints {
		if e == nil {
			return nil, errors.New("null endpoint")
		}
	}
	if want := key(prefix, s.Name, s.Nodes[0].ID); string(k) != want {
		return nil, fmt.Errorf("value names node %q of %q, which belongs at %q", s.Nodes[0].ID, s.Name, want)
	}
	return &s, nil
}
