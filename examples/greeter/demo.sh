#!/bin/sh
# Runs the example: a greeter server on a free loopback port, a client that
# calls it in each of the four ways, then a graceful stop of the server.
set -eu
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
server_pid=
cleanup() {
	if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL "$server_pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

echo "demo: building the example server and client"
go build -o "$tmp/greeter-server" ./examples/greeter/server
go build -o "$tmp/greeter-client" ./examples/greeter/client

"$tmp/greeter-server" -address 127.0.0.1:0 -address-file "$tmp/addr" >"$tmp/server.log" 2>&1 &
server_pid=$!
i=0
while [ ! -s "$tmp/addr" ]; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$server_pid" 2>/dev/null; then
		echo "demo: the server did not start:"; cat "$tmp/server.log"; exit 1
	fi
	sleep 0.1
done
addr=$(cat "$tmp/addr")
echo "demo: server $server_pid listening on $addr"
echo "demo: client calls:"
"$tmp/greeter-client" -address "$addr" -name World | sed 's/^/  /'

echo "demo: stopping the server with SIGTERM (graceful)"
kill -TERM "$server_pid"
i=0
while kill -0 "$server_pid" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 100 ]; then echo "demo: the server did not stop in 10 s"; exit 1; fi
	sleep 0.1
done
wait "$server_pid" 2>/dev/null || true
server_pid=
echo "demo: server log:"
sed 's/^/  /' "$tmp/server.log"
echo "demo: done: 4 kinds of call answered, server stopped gracefully"
