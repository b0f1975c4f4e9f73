package registry

import "maps"

// Clone returns a deep copy of s: its metadata, endpoints and nodes are
// copied too, so the copy can be changed without touching s. Clone of nil is
// nil.
func (s *Service) Clone() *Service {
	if s == nil {
		return nil
	}
	c := &Service{
		Name:     s.Name,
		Version:  s.Version,
		Metadata: maps.Clone(s.Metadata),
	}
	if s.Endpoints != nil {
		c.Endpoints = make([]*Endpoint, len(s.Endpoints))
		for i, e := range s.Endpoints {
			c.Endpoints[i] = e.Clone()
		}
	}
	if s.Nodes != nil {
		c.Nodes = make([]*Node, len(s.Nodes))
		for i, n := range s.Nodes {
			c.Nodes[i] = n.Clone()
		}
	}
	return c
}

// Clone returns a deep copy of n. Clone of nil is nil.
func (n *Node) Clone() *Node {
	if n == nil {
		return nil
	}
	return &Node{ID: n.ID, Address: n.Address, Metadata: maps.Clone(n.Metadata)}
}

// Clone returns a deep copy of e. Clone of nil is nil.
func (e *Endpoint) Clone() *Endpoint {
	if e == nil {
		return nil
	}
	return &Endpoint{Name: e.Name, Metadata: maps.Clone(e.Metadata)}
}
