"""Interop check with python-zeroconf, run by TestZeroconfInterop.

browse: list _micro._tcp.local. instances as a standard DNS-SD browser
        does, printing "found <instance> <port> <addresses> <txt>" and
        "removed <instance>", until stdin closes.
publish: register one _micro._tcp instance written in our TXT format,
         print "published", and unregister when stdin closes.
serve:   for each line "publish N" on stdin, register instance py-N of
         service pyservice-N and print "published py-N" once it has been
         announced; unregister all when stdin closes. It announces once,
         not three times, to save the test 450 ms a service: a responder
         holds back multicast answers for a second after the last
         announcement either way.

An optional second argument is the IPv4 address to run on (127.0.0.1 by
default).
"""
import sys
import socket

import zeroconf._core

from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceListener, Zeroconf

TYPE = "_micro._tcp.local."


class Listener(ServiceListener):
    def add_service(self, zc, type_, name):
        info = zc.get_service_info(type_, name, timeout=3000)
        if info is None:
            print("unresolved", name, flush=True)
            return
        txt = sorted(
            k.decode() + "=" + (v.decode() if v is not None else "")
            for k, v in info.properties.items()
        )
        print("found", name, info.port, ",".join(info.parsed_addresses()), ";".join(txt), flush=True)

    def remove_service(self, zc, type_, name):
        print("removed", name, flush=True)

    def update_service(self, zc, type_, name):
        pass


def info(service, node, addr):
    return ServiceInfo(
        TYPE,
        node + "." + TYPE,
        addresses=[socket.inet_aton(addr)],
        port=9999,
        properties={"txtvers": "1", "name": service, "version": "v1", "node": node, "s.lang": "python"},
        server="py-host.local.",
    )


def main():
    addr = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    zc = Zeroconf(interfaces=[addr], ip_version=IPVersion.V4Only)
    try:
        if sys.argv[1] == "serve":
            zeroconf._core._REGISTER_BROADCASTS = 1
            published = []
            for line in sys.stdin:
                cmd, _, n = line.strip().partition(" ")
                if cmd == "publish":
                    i = info("pyservice-" + n, "py-" + n, addr)
                    # No probing: the name is ours. register_service returns
                    # after the three announcements, as in a real start-up.
                    zc.register_service(i, cooperating_responders=True)
                    published.append(i)
                    print("published py-" + n, flush=True)
            for i in published:
                zc.unregister_service(i)
        elif sys.argv[1] == "browse":
            ServiceBrowser(zc, TYPE, Listener())
            print("browsing", flush=True)
            sys.stdin.read()
        else:
            i = info("pyservice", "py-1", addr)
            zc.register_service(i)
            print("published", flush=True)
            sys.stdin.read()
            zc.unregister_service(i)
    finally:
        zc.close()


main()
