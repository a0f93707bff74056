#!/usr/bin/env bash
# Starts a three-node libSQL cluster on 127.0.0.1 -- one primary, two
# replicas -- with coord's extension trusted on every node, waits until all
# three answer /health, then runs the given command (or waits for Ctrl-C),
# and on exit stops every process it started, by its process id.
#
#   tests/cluster/cluster.sh SQLD LIBCOORD_SO [-- CMD ARGS...]
#
# The command sees COORD_PRIMARY, COORD_REPLICA1, COORD_REPLICA2 (HTTP
# URLs), COORD_PRIMARY_PID, COORD_PRIMARY_ARGS (the primary's command line,
# one argument per line, to restart it), COORD_CLUSTER_DIR and COORD_SQLD.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 SQLD LIBCOORD_SO [-- CMD ARGS...]" >&2
    exit 2
fi
sqld=$(realpath "$1")
so=$(realpath "$2")
shift 2
[ "${1:-}" = "--" ] && shift

# Data lives outside any git tree: coord looks for keys under the git root
# of the working directory, and the server must hold none (docs/cluster.md).
dir=$(mktemp -d /tmp/coord-cluster.XXXXXX)
pids=()
cleanup() {
    local p deadline=$((SECONDS + 10))
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    # The nodes are disowned (see node()), so poll for their exit, bounded,
    # and only then force the stragglers.
    for p in "${pids[@]}"; do
        while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Every node trusts exactly this build of the extension, by its sha256.
mkdir -p "$dir/ext"
cp "$so" "$dir/ext/libcoord.so"
(cd "$dir/ext" && sha256sum libcoord.so >trusted.lst)

# Free ports, chosen by the kernel.
read -r p_http p_grpc r1_http r2_http < <(/usr/bin/python3 -c '
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
for s in ss: s.close()')

# The server process gets no coord key: no COORDINATION_* variables, an
# empty secrets directory, a working directory outside any git tree.
node() {
    local name=$1
    shift
    mkdir -p "$dir/$name"
    (cd "$dir/$name" && exec env -u COORDINATION_AGENT -u COORDINATION_DB \
        $(env | sed -n 's/^\(COORDINATION_SECRET_[^=]*\)=.*/-u \1/p') \
        COORDINATION_SECRETS_DIR="$dir/no-keys" \
        "$sqld" --no-welcome -d "$dir/$name/data" -e "$dir/ext" "$@" \
        >>"$dir/$name.log" 2>&1) &
    pids+=($!)
    # Disowned: a node killed on purpose (the failover test) must not make
    # bash print "Killed" over the test output. We still hold its pid.
    disown $!
}
primary_args=(--http-listen-addr "127.0.0.1:$p_http" --grpc-listen-addr "127.0.0.1:$p_grpc")
node primary "${primary_args[@]}"
primary_pid=${pids[0]}
node replica1 --http-listen-addr "127.0.0.1:$r1_http" --primary-grpc-url "http://127.0.0.1:$p_grpc"
node replica2 --http-listen-addr "127.0.0.1:$r2_http" --primary-grpc-url "http://127.0.0.1:$p_grpc"

# Poll /health, bounded: 60 s for all three.
deadline=$((SECONDS + 60))
for port in "$p_http" "$r1_http" "$r2_http"; do
    until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do
        if [ $SECONDS -ge $deadline ]; then
            echo "cluster: node on port $port not healthy after 60 s; logs:" >&2
            tail -n 20 "$dir"/*.log >&2
            exit 1
        fi
        sleep 0.2
    done
done

export COORD_PRIMARY="http://127.0.0.1:$p_http"
export COORD_REPLICA1="http://127.0.0.1:$r1_http"
export COORD_REPLICA2="http://127.0.0.1:$r2_http"
export COORD_PRIMARY_PID=$primary_pid
export COORD_CLUSTER_DIR=$dir
export COORD_SQLD=$sqld
COORD_PRIMARY_ARGS=$(printf '%s\n' --no-welcome -d "$dir/primary/data" -e "$dir/ext" "${primary_args[@]}")
export COORD_PRIMARY_ARGS
echo "cluster: primary $COORD_PRIMARY, replicas $COORD_REPLICA1 $COORD_REPLICA2 (data in $dir)"

if [ $# -gt 0 ]; then
    "$@"
else
    echo "cluster: running; Ctrl-C stops every node"
    while kill -0 "${pids[@]}" 2>/dev/null; do sleep 1; done
    echo "cluster: a node exited; stopping" >&2
    exit 1
fi
