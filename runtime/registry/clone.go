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
			if e != nil {
				c.Endpoints[i] = &Endpoint{Name: e.Name, Metadata: maps.Clone(e.Metadata)}
			}
		}
	}
	if s.Nodes != nil {
		c.Nodes = make([]*Node, len(s.Nodes))
		for i, n := range s.Nodes {
			if n != nil {
				c.Nodes[i] = &Node{ID: n.ID, Address: n.Address, Metadata: maps.Clone(n.Metadata)}
			}
		}
	}
	return c
}
