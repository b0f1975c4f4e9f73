// Package lantest holds the multi-host tests of broker/direct: brokers in
// separate processes on separate network namespaces, finding each other
// with the mDNS registry. It has no code of its own; its tests run in a
// private network namespace (internal/netns), apart from broker/direct's
// other tests, which need none.
package lantest
