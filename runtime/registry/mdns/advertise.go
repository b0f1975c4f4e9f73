package mdns

// AdvertisesInterfaceAddresses reports true: a node registered with an
// unspecified host is advertised with each interface's own addresses. It
// implements registry.InterfaceAdvertiser.
func (r *Registry) AdvertisesInterfaceAddresses() bool { return true }
