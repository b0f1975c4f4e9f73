package mdns

import (
	"cmp"
	"maps"
	"slices"

	"github.com/protoc-gen-micro/micro/runtime/registry"
)

// nodeView is one node as lookups and watchers see it: a node registered
// here, or one assembled from records heard on the network.
type nodeView struct {
	name, version string
	svcMeta       map[string]string
	endpoints     []*registry.Endpoint
	node          *registry.Node
	// seq orders views by when they last changed; a service's metadata
	// and endpoints are taken from its most recently changed node.
	seq uint64
}

type svcKey struct{ name, version string }

func (v *nodeView) key() svcKey { return svcKey{v.name, v.version} }

func viewOf(n *localNode) *nodeView {
	return &nodeView{
		name:      n.svc.Name,
		version:   n.svc.Version,
		svcMeta:   n.svc.Metadata,
		endpoints: n.svc.Endpoints,
		node:      n.svc.Nodes[0],
	}
}

func (v *nodeView) same(w *nodeView) bool {
	if v == nil || w == nil {
		return v == w
	}
	return v.name == w.name && v.version == w.version &&
		maps.Equal(v.svcMeta, w.svcMeta) &&
		slices.EqualFunc(v.endpoints, w.endpoints, sameEndpoint) &&
		v.node.ID == w.node.ID && v.node.Address == w.node.Address &&
		maps.Equal(v.node.Metadata, w.node.Metadata)
}

func sameEndpoint(a, b *registry.Endpoint) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Name == b.Name && maps.Equal(a.Metadata, b.Metadata)
}

// service returns a deep copy of the service described by v holding nodes.
func (v *nodeView) service(nodes []*registry.Node) *registry.Service {
	s := &registry.Service{
		Name:      v.name,
		Version:   v.version,
		Metadata:  v.svcMeta,
		Endpoints: v.endpoints,
		Nodes:     nodes,
	}
	return s.Clone()
}

// services groups views into services, one per name and version, versions
// in ascending order and nodes by ID, sorted by name then version.
func services(views []*nodeView) []*registry.Service {
	groups := map[svcKey][]*nodeView{}
	for _, v := range views {
		groups[v.key()] = append(groups[v.key()], v)
	}
	out := make([]*registry.Service, 0, len(groups))
	for _, vs := range groups {
		latest := slices.MaxFunc(vs, func(a, b *nodeView) int { return cmp.Compare(a.seq, b.seq) })
		nodes := make([]*registry.Node, len(vs))
		for i, v := range vs {
			nodes[i] = v.node
		}
		slices.SortFunc(nodes, byID)
		out = append(out, latest.service(nodes))
	}
	slices.SortFunc(out, func(a, b *registry.Service) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Version, b.Version))
	})
	return out
}

func byID(a, b *registry.Node) int { return cmp.Compare(a.ID, b.ID) }

// change is one batch's effect on one name+version.
type change struct {
	key     svcKey
	before  int         // live nodes before the batch
	deleted []*nodeView // views removed from this name+version
	changed []*nodeView // views added to or changed in it
}

// results turns a batch's changes into watch results, in a stable order:
// by name and version, and for each a Delete before a Create or Update, so
// that a node moving between versions, or replacing the last node of one,
// reads in the order it happened.
func results(changes map[svcKey]*change) []*registry.Result {
	keys := slices.SortedFunc(maps.Keys(changes), func(a, b svcKey) int {
		return cmp.Or(cmp.Compare(a.name, b.name), cmp.Compare(a.version, b.version))
	})
	var out []*registry.Result
	for _, k := range keys {
		c := changes[k]
		if len(c.deleted) > 0 {
			out = append(out, &registry.Result{Action: registry.Delete, Service: serviceOf(c.deleted)})
		}
		if len(c.changed) > 0 {
			a := registry.Update
			if c.before-len(c.deleted) == 0 {
				a = registry.Create
			}
			out = append(out, &registry.Result{Action: a, Service: serviceOf(c.changed)})
		}
	}
	return out
}

func serviceOf(vs []*nodeView) *registry.Service {
	latest := slices.MaxFunc(vs, func(a, b *nodeView) int { return cmp.Compare(a.seq, b.seq) })
	nodes := make([]*registry.Node, len(vs))
	for i, v := range vs {
		nodes[i] = v.node
	}
	slices.SortFunc(nodes, byID)
	return latest.service(nodes)
}
