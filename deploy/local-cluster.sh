#!/usr/bin/env bash
# A cluster on this machine, everything on loopback: one Redis, N `snow serve`
# hosts sharing it through a Redis store with guest/counter mounted, and
# HAProxy in front, health-checking each host's /readyz.
#
#   deploy/local-cluster.sh [N]        (default 3)
#
# The first line on stdout is `cluster ready: http://127.0.0.1:PORT`, the
# balancer. Then one line per host and the state directory, which holds the
# hosts' manifests, logs, and `host-I.pid` / `host-I.addr` / `host-I.admin` /
# `host-I.health` files. A host that exits (a crash, kill -9, or a SIGTERM
# for a rolling restart) is started again from `STATE/counter.wasm`, like a
# Deployment would: replace that file, then SIGTERM the hosts one at a time
# to roll out a new version. SIGINT or SIGTERM to this script stops
# everything and removes the state directory (unless SNOW_CLUSTER_DIR named
# it).
#
# Environment:
#   SNOW_BIN=path          the snow binary (default: cargo build --release)
#   COUNTER_WASM=path      guest/counter's component (default: cargo build
#                          --release --target wasm32-wasip2 -p counter)
#   SNOW_CLUSTER_DIR=dir   the state directory (default: a new temp dir)
#   DRAIN_DELAY=1s         each host's [limits] drain_delay
#   SNOW_WORKERS=1         --workers of each host
# Installs redis-server and haproxy (Debian packages) when they are missing.
set -euo pipefail

N="${1:-3}"
[[ "$N" =~ ^[1-9][0-9]?$ ]] || { echo "usage: $0 [N], N from 1 to 99" >&2; exit 2; }
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRAIN_DELAY="${DRAIN_DELAY:-1s}"
SNOW_WORKERS="${SNOW_WORKERS:-1}"

log() { printf '%s\n' "$*" >&2; }
die() { log "local-cluster: $*"; exit 1; }

need() {
    local cmd=$1 package=$2
    command -v "$cmd" >/dev/null && return 0
    command -v apt-get >/dev/null || die "$cmd is missing and apt-get is not available"
    local sudo=()
    [[ "$(id -u)" == 0 ]] || sudo=(sudo)
    log "installing $package"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get install -y "$package" >&2 ||
        { "${sudo[@]}" apt-get update >&2 && "${sudo[@]}" apt-get install -y "$package" >&2; } ||
        die "could not install $package"
}

need redis-server redis-server
need haproxy haproxy
[[ -x /usr/sbin/haproxy ]] && HAPROXY=/usr/sbin/haproxy || HAPROXY="$(command -v haproxy)"

if [[ -z "${SNOW_BIN:-}" || -z "${COUNTER_WASM:-}" ]]; then
    target="${CARGO_TARGET_DIR:-$ROOT/target}"
    if [[ -z "${SNOW_BIN:-}" ]]; then
        log "building snow (release)"
        (cd "$ROOT" && cargo build --release --bin snow) >&2
        SNOW_BIN="$target/release/snow"
    fi
    if [[ -z "${COUNTER_WASM:-}" ]]; then
        log "building guest/counter (release, wasm32-wasip2)"
        (cd "$ROOT" && cargo build --release --target wasm32-wasip2 -p counter) >&2
        COUNTER_WASM="$target/wasm32-wasip2/release/counter.wasm"
    fi
fi
[[ -x "$SNOW_BIN" ]] || die "no snow binary at $SNOW_BIN"
[[ -f "$COUNTER_WASM" ]] || die "no counter module at $COUNTER_WASM"

if [[ -n "${SNOW_CLUSTER_DIR:-}" ]]; then
    STATE="$SNOW_CLUSTER_DIR"
    KEEP_STATE=1
    mkdir -p "$STATE"
else
    STATE="$(mktemp -d -t snow-cluster.XXXXXX)"
    KEEP_STATE=0
fi
STATE="$(cd "$STATE" && pwd)"
cp "$COUNTER_WASM" "$STATE/counter.wasm"

PIDS=()
STOPPING=0
teardown() {
    STOPPING=1
    local pid
    # Supervisors first, so that no host is started again.
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    local file
    for file in "$STATE"/host-*.pid "$STATE/haproxy.pid" "$STATE/redis.pid"; do
        if [[ -f "$file" ]]; then
            kill "$(<"$file")" 2>/dev/null || true
        fi
    done
    wait 2>/dev/null || true
    [[ "$KEEP_STATE" == 1 ]] || rm -rf "$STATE"
}
trap 'teardown; exit 0' INT TERM
trap teardown EXIT

# Ports below the ephemeral range, so that no client's own connection takes
# one first; each is checked free and never handed out twice. The port goes
# into the variable named $1: a command substitution would run this in a
# subshell, whose TAKEN the next call never sees.
TAKEN=" "
free_port() {
    local -n free_port_into=$1
    local candidate
    for _ in $(seq 200); do
        candidate=$((20000 + RANDOM % 10000))
        [[ "$TAKEN" == *" $candidate "* ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
            TAKEN+="$candidate "
            free_port_into=$candidate
            return 0
        fi
    done
    die "no free port found"
}

wait_for() {
    local what=$1 seconds=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "$what did not come up within ${seconds}s (logs in $STATE)"
        sleep 0.1
    done
}

# Both in subshells: the descriptor they open must not outlive the probe.
probe() { (exec 3<>"/dev/tcp/127.0.0.1/$1"); }
http_ok() (
    port=$1 path=$2
    exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
    printf 'GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' "$path" >&3
    IFS= read -r -t 2 reply <&3 || exit 1
    [[ "$reply" == "HTTP/1.1 200"* ]]
)

free_port REDIS_PORT
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$STATE" --logfile "$STATE/redis.log" --daemonize no &
echo $! >"$STATE/redis.pid"
wait_for redis 10 probe "$REDIS_PORT"

# HAProxy and the hosts hold a descriptor per connection.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Every host compiles the module once; they share the compile cache.
export SNOW_CACHE_DIR="$STATE/cache"
unset RUST_BACKTRACE

for i in $(seq "$N"); do
    free_port port
    free_port admin
    free_port health
    echo "$port" >"$STATE/host-$i.addr"
    echo "$admin" >"$STATE/host-$i.admin"
    echo "$health" >"$STATE/host-$i.health"
    cat >"$STATE/host-$i.toml" <<TOML
listen = "127.0.0.1:$port"
admin = "127.0.0.1:$admin"
health = "127.0.0.1:$health"
workers = $SNOW_WORKERS

[limits]
drain_delay = "$DRAIN_DELAY"
grace = "10s"

[[store]]
name = "default"
backend = "redis"
url = "redis://127.0.0.1:$REDIS_PORT/0"

[[module]]
name = "counter"
prefix = "/"
wasm = "$STATE/counter.wasm"
# Versions roll out by restarting hosts one at a time, not all at once when
# the file changes.
watch = false
stores = ["default"]
TOML
done

# Keeps host $1 running: started again whenever it exits, until teardown.
supervise() {
    local i=$1 pid
    while [[ "$STOPPING" == 0 ]]; do
        "$SNOW_BIN" serve "$STATE/host-$i.toml" >>"$STATE/host-$i.log" 2>&1 &
        pid=$!
        # Renamed into place: a reader never sees the file emptied by `>`.
        echo "$pid" >"$STATE/host-$i.pid.new"
        mv -f "$STATE/host-$i.pid.new" "$STATE/host-$i.pid"
        wait "$pid" || true
        [[ "$STOPPING" == 0 ]] || break
        echo "host $i (pid $pid) exited; starting it again" >>"$STATE/events.log"
        sleep 0.2
    done
}

for i in $(seq "$N"); do
    supervise "$i" &
    PIDS+=($!)
done
for i in $(seq "$N"); do
    wait_for "host $i" 120 http_ok "$(cat "$STATE/host-$i.health")" /readyz
done

free_port BALANCER_PORT
{
    cat <<CFG
global
    # Two descriptors a connection: within what most shells allow.
    maxconn 4000
    pidfile $STATE/haproxy.pid

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    # A connection that could not be made carried no request: try another
    # host. A request already sent is never retried, so nothing counts twice.
    retries 3
    option redispatch 1
    retry-on conn-failure

frontend balancer
    bind 127.0.0.1:$BALANCER_PORT
    default_backend snow

backend snow
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    # A draining host answers 503 on /readyz and is out within ~0.2 s, long
    # before its drain delay ends and it stops accepting.
    # A host that dies between checks is taken out at its first failed
    # connection rather than at the next check.
    default-server inter 100ms fall 1 rise 2 observe layer4 error-limit 1 on-error mark-down
CFG
    for i in $(seq "$N"); do
        echo "    server host$i 127.0.0.1:$(cat "$STATE/host-$i.addr") check port $(cat "$STATE/host-$i.health")"
    done
} >"$STATE/haproxy.cfg"
"$HAPROXY" -c -q -f "$STATE/haproxy.cfg" || die "haproxy refused its configuration ($STATE/haproxy.cfg)"
"$HAPROXY" -W -db -f "$STATE/haproxy.cfg" >"$STATE/haproxy.log" 2>&1 &
PIDS+=($!)
wait_for haproxy 10 http_ok "$BALANCER_PORT" /counter/ready-check

echo "cluster ready: http://127.0.0.1:$BALANCER_PORT"
for i in $(seq "$N"); do
    echo "host $i: http://127.0.0.1:$(cat "$STATE/host-$i.addr") admin http://127.0.0.1:$(cat "$STATE/host-$i.admin") health http://127.0.0.1:$(cat "$STATE/host-$i.health")"
done
echo "redis: redis://127.0.0.1:$REDIS_PORT/0"
echo "state: $STATE"

# Until SIGINT or SIGTERM; `wait` returns early on a signal, sleep would not.
while true; do
    wait -n "${PIDS[@]}" 2>/dev/null || true
    sleep 1
done
