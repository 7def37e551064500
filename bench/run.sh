#!/usr/bin/env bash
# Compares the Snow host with a native hyper server on this machine:
# /home/ throughput and latency under wrk, then resident memory per parked
# long request under park-load. Progress goes to stderr; the markdown tables
# go to stdout, so `bench/run.sh > table.md` keeps just the results.
#
# Environment:
#   DURATION=10s               length of each wrk run
#   WARMUP=2s                  wrk run before measuring, discarded; 0 skips it
#   PARK_NS="1000 5000 10000"  parked-request counts; each gets a fresh server
#   SKIP_PARK=1                skip the parked-request runs
#   SKIP_WRK=1                 skip the throughput runs
#   ONLY=snow|hyper            measure one server only (default: both)
#   WORKERS=2                  --workers passed to both servers
#   SNOW_BIN=path              snow binary to use; the snow package is then not built
#   SKIP_BUILD=1               use the binaries already built
#   READY_TIMEOUT=60           seconds a server gets to start answering /home/
#   CARGO_TARGET_DIR           honoured when building and locating binaries
set -euo pipefail
unset RUST_BACKTRACE

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-2s}"
PARK_NS="${PARK_NS:-1000 5000 10000}"
SKIP_PARK="${SKIP_PARK:-0}"
SKIP_WRK="${SKIP_WRK:-0}"
ONLY="${ONLY:-}"
WORKERS="${WORKERS:-2}"
SKIP_BUILD="${SKIP_BUILD:-0}"
READY_TIMEOUT="${READY_TIMEOUT:-60}"
CONNECTIONS=(64 256)

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

case "$ONLY" in
    "") SERVERS=(snow hyper) ;;
    snow | hyper) SERVERS=("$ONLY") ;;
    *) die "ONLY must be snow or hyper, not '$ONLY'" ;;
esac
includes() { [[ " ${SERVERS[*]} " == *" $1 "* ]]; }

LOG_DIR="$(mktemp -d -t snow-bench.XXXXXX)"
SERVER_PID=""

stop_server() {
    [[ -n "$SERVER_PID" ]] || return 0
    kill "$SERVER_PID" 2>/dev/null || true
    # A server stuck in shutdown must not hold the port for the next run.
    for _ in $(seq 50); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

cleanup() {
    local status=$?
    stop_server
    if [[ $status -eq 0 ]] || rmdir "$LOG_DIR" 2>/dev/null; then
        rm -rf "$LOG_DIR"
    else
        log "server logs kept in $LOG_DIR"
    fi
}
trap cleanup EXIT

build() {
    [[ "$SKIP_BUILD" == 1 ]] && return 0
    local packages=(-p snow-bench)
    if includes snow && [[ -z "${SNOW_BIN:-}" ]]; then
        packages+=(-p snow)
    fi
    log "building ${packages[*]} (release)"
    (cd "$ROOT" && cargo build --release "${packages[@]}") >&2
}

install_wrk() {
    command -v wrk >/dev/null && return 0
    command -v apt-get >/dev/null || return 1
    log "installing wrk"
    export DEBIAN_FRONTEND=noninteractive
    # The package lists may be missing or stale on a fresh machine.
    apt-get install -y wrk >&2 || { apt-get update >&2 && apt-get install -y wrk >&2; }
}

raise_limits() {
    ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    log "open files limit: $(ulimit -n)"
    # Ramps of thousands of connects per second overflow small accept queues,
    # and SYN retries would then show up as latency that is not the server's.
    local key file current
    for key in net.core.somaxconn net.ipv4.tcp_max_syn_backlog; do
        file="/proc/sys/${key//.//}"
        [[ -w "$file" ]] || continue
        current="$(cat "$file")"
        if ((current < 65535)); then
            sysctl -qw "$key=65535" 2>/dev/null || echo 65535 >"$file" 2>/dev/null || true
        fi
    done
}

# A port nothing listens on, below the ephemeral range so that the
# load tools' own outgoing connections cannot take it first.
free_port() {
    local port
    for _ in $(seq 100); do
        port=$((20000 + RANDOM % 10000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    die "no free port found"
}

# Starts a server on a fresh port and sets SERVER_PID and ADDR once it
# answers /home/.
start_server() {
    local server=$1 label=$2 port logfile
    port="$(free_port)"
    ADDR="127.0.0.1:$port"
    logfile="$LOG_DIR/$server-$label.log"
    case "$server" in
        snow) "$SNOW" serve --listen "$ADDR" --workers "$WORKERS" >"$logfile" 2>&1 & ;;
        hyper) "$BASELINE" --listen "$ADDR" --workers "$WORKERS" >"$logfile" 2>&1 & ;;
    esac
    SERVER_PID=$!
    local deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            SERVER_PID=""
            tail -n 20 "$logfile" >&2 || true
            die "$server exited before answering on $ADDR"
        fi
        if curl -sf -o /dev/null --max-time 1 "http://$ADDR/home/"; then
            grep -q "listening on http://" "$logfile" ||
                log "warning: $server answered but printed no 'listening on' line"
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$logfile" >&2 || true
    die "$server did not answer on $ADDR within ${READY_TIMEOUT}s"
}

# wrk prints latencies as 812.00us, 1.23ms or 1.01s; the tables use ms.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000
        else if (v ~ /ms$/) n = n
        else if (v ~ /m$/) n *= 60000
        else if (v ~ /s$/) n *= 1000
        printf "%.2f", n
    }'
}

declare -A RPS P99 PARK_OK PARK_HOLD PARK_KIB

run_wrk() {
    local server=$1 out connections rps p99
    start_server "$server" wrk
    if [[ "$WARMUP" != 0 ]]; then
        log "$server: warm-up ${WARMUP}"
        wrk -t1 -c64 -d"$WARMUP" "http://$ADDR/home/" >/dev/null
    fi
    for connections in "${CONNECTIONS[@]}"; do
        log "$server: wrk -t1 -c$connections -d$DURATION"
        out="$(wrk -t1 -c"$connections" -d"$DURATION" --latency "http://$ADDR/home/")"
        printf '%s\n' "$out" >"$LOG_DIR/wrk-$server-$connections.txt"
        rps="$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")"
        p99="$(awk '$1 == "99%" { print $2 }' <<<"$out")"
        RPS[$server,$connections]="${rps:--}"
        P99[$server,$connections]="$([[ -n "$p99" ]] && to_ms "$p99" || echo -)"
        # Errors make the request rate meaningless, so they are shown, not hidden.
        grep -E 'Socket errors|Non-2xx' <<<"$out" | sed "s/^/  $server c$connections: /" >&2 || true
        log "  ${RPS[$server,$connections]} req/s, p99 ${P99[$server,$connections]} ms"
    done
    stop_server
}

# Value of key=value in park-load's summary line.
field() {
    awk -v k="$1" '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' <<<"$2"
}

run_park() {
    local server=$1 n out
    for n in $PARK_NS; do
        start_server "$server" "park-$n"
        log "$server: park-load -n $n"
        out="$("$PARK" --url "http://$ADDR" -n "$n" --pid "$SERVER_PID" | tail -n 1)" || out=""
        log "  ${out:-park-load failed}"
        stop_server
        PARK_OK[$server,$n]="$(field ok "$out")"
        PARK_HOLD[$server,$n]="$(field hold_p99_ms "$out")"
        PARK_KIB[$server,$n]="$(field per_request_kib "$out")"
    done
}

# snow/hyper, or - when either side is missing.
ratio() {
    awk -v a="${1:--}" -v b="${2:--}" 'BEGIN {
        if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b + 0 == 0) print "-"
        else printf "%.2f", a / b
    }'
}

print_tables() {
    local c n
    if [[ "$SKIP_WRK" != 1 ]]; then
        echo "## /home/ throughput (wrk -t1, $DURATION, --workers $WORKERS, $(nproc) cores)"
        echo
        echo "| connections | snow req/s | hyper req/s | snow/hyper | snow p99 ms | hyper p99 ms | snow/hyper |"
        echo "|---:|---:|---:|---:|---:|---:|---:|"
        for c in "${CONNECTIONS[@]}"; do
            echo "| $c | ${RPS[snow,$c]:--} | ${RPS[hyper,$c]:--} | $(ratio "${RPS[snow,$c]:-}" "${RPS[hyper,$c]:-}")" \
                "| ${P99[snow,$c]:--} | ${P99[hyper,$c]:--} | $(ratio "${P99[snow,$c]:-}" "${P99[hyper,$c]:-}") |"
        done
        echo
    fi
    if [[ "$SKIP_PARK" != 1 ]]; then
        echo "## Parked requests (GET /async/?ms=5000, one per connection, fresh server per N)"
        echo
        echo "| N | snow ok | hyper ok | snow hold p99 ms | hyper hold p99 ms | snow KiB/request | hyper KiB/request | snow/hyper |"
        echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
        for n in $PARK_NS; do
            echo "| $n | ${PARK_OK[snow,$n]:--} | ${PARK_OK[hyper,$n]:--}" \
                "| ${PARK_HOLD[snow,$n]:--} | ${PARK_HOLD[hyper,$n]:--}" \
                "| ${PARK_KIB[snow,$n]:--} | ${PARK_KIB[hyper,$n]:--} | $(ratio "${PARK_KIB[snow,$n]:-}" "${PARK_KIB[hyper,$n]:-}") |"
        done
    fi
}

build
SNOW="${SNOW_BIN:-$TARGET_DIR/release/snow}"
BASELINE="$TARGET_DIR/release/hyper-baseline"
PARK="$TARGET_DIR/release/park-load"
for bin in "$BASELINE" "$PARK"; do
    [[ -x "$bin" ]] || die "missing $bin"
done
if includes snow; then
    [[ -x "$SNOW" ]] || die "missing $SNOW (set SNOW_BIN, or ONLY=hyper)"
fi
command -v curl >/dev/null || die "curl is needed to probe the servers"

if [[ "$SKIP_WRK" != 1 ]] && ! install_wrk; then
    log "warning: wrk unavailable, skipping throughput runs"
    SKIP_WRK=1
fi
raise_limits

for server in "${SERVERS[@]}"; do
    [[ "$SKIP_WRK" == 1 ]] || run_wrk "$server"
    [[ "$SKIP_PARK" == 1 ]] || run_park "$server"
done

print_tables
