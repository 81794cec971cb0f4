#!/bin/sh
# Run one stage's demo: start its server on a free port, run its client
# against it, show both sides, then stop the server with SIGTERM.
#
#     tools/demo.sh v0.3        (what `make demo STAGE=v0.3` runs)
set -u
stage=${1:?usage: tools/demo.sh vX.Y}
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/$stage
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# v0.1-v0.3 take the port as an argument; later stages read
# conf/zinc.json: start from the stage's own file with TcpPort set to 0.
if [ -f "$dir/conf/zinc.json" ]; then
    mkdir "$work/conf"
    sed 's/"TcpPort"[^,}]*/"TcpPort": 0/' "$dir/conf/zinc.json" \
        > "$work/conf/zinc.json"
    set --
else
    set -- 0
fi
(cd "$work" && exec "$dir/build/server" "$@") > "$work/server.log" 2>&1 &
pid=$!

# Wait (at most 10 s) for the server to say where it listens.
port=
for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\).*/\1/p' "$work/server.log")
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "demo: the $stage server did not start:" >&2
    cat "$work/server.log" >&2
    kill "$pid" 2>/dev/null
    exit 1
fi

echo "== $stage client (talking to 127.0.0.1:$port)"
"$dir/build/client" "127.0.0.1:$port"
client=$?
# Until v0.9 readers are detached, and from v0.9 a stop would close the
# connection itself: give the reader (at most 2 s) to log that its client
# left before the server is stopped, so the log shows the client's end.
for _ in $(seq 20); do
    opened=$(grep -c -e 'connected from' -e 'started, remote' "$work/server.log")
    closed=$(grep -c -e 'disconnected$' -e 'conn [0-9]* stopped$' "$work/server.log")
    [ "$closed" -ge "$opened" ] && break
    sleep 0.1
done
kill -TERM "$pid"
wait "$pid"
server=$?
echo "== $stage server log"
cat "$work/server.log"
echo "== client exit status $client, server exit status $server"
[ "$client" -eq 0 ] && [ "$server" -eq 0 ]
