package mdns

// AdvertisesInterfaceAddresses reports true: a node registered with an
// unspecified host is advertised with each interface's own addresses. It
// tells the service to register its listening address as it is.
func (r *mdnsRegistry) AdvertisesInterfaceAddresses() bool { return true }
