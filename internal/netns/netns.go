// Package netns runs a package's tests inside private Linux network
// namespaces, so that tests which send multicast (mDNS) cannot reach any
// real network.
//
// A package whose tests send multicast calls RunInNamespace from TestMain.
// The test binary then re-executes itself under `unshare -rn` (a new user
// and network namespace: it works as root and, where the kernel allows
// unprivileged user namespaces, as a normal user) and runs its tests there,
// where the only interface is a loopback with multicast switched on. Tests
// that need several hosts build them with NewLAN: namespaces nested inside
// the test's own, joined by veth pairs to a bridge in a "switch" namespace.
// Helper processes (the test binary running one helper test) run in the
// current namespace with Start or on a LAN host with Host.Start.
//
// Nothing here touches the host's interfaces, routes, addresses or
// /run/netns: every namespace is created by the test process tree and held
// only by it, so the kernel frees them all when that tree exits, however it
// exits. There are no names to clean up after a crash.
//
// When a namespace cannot be created (no unshare, user namespaces
// forbidden) the tests are skipped with a message, unless
// MICROTEST_REQUIRE_NETNS=1 is set (CI sets it), in which case they fail.
//
// It is test support for this module, Linux only, and not a general
// container or network-emulation library.
package netns
