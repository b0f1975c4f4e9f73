"""Interop check with python-zeroconf, run by TestZeroconfInterop.

browse: list _micro._tcp.local. instances as a standard DNS-SD browser
        does, printing "found <instance> <port> <addresses> <txt>" and
        "removed <instance>", until stdin closes.
publish: register one _micro._tcp instance written in our TXT format,
         print "published", and unregister when stdin closes.
"""
import sys
import socket

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


def main():
    zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    try:
        if sys.argv[1] == "browse":
            ServiceBrowser(zc, TYPE, Listener())
            print("browsing", flush=True)
            sys.stdin.read()
        else:
            info = ServiceInfo(
                TYPE,
                "py-1." + TYPE,
                addresses=[socket.inet_aton("127.0.0.1")],
                port=9999,
                properties={"txtvers": "1", "name": "pyservice", "version": "v1", "node": "py-1", "s.lang": "python"},
                server="py-host.local.",
            )
            zc.register_service(info)
            print("published", flush=True)
            sys.stdin.read()
            zc.unregister_service(info)
    finally:
        zc.close()


main()
