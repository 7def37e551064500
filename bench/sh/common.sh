# shellcheck shell=bash
# Helpers shared by the bench sections: logging, limits, starting and
# stopping servers, and reading wrk's and the load tools' output.
# Sourced by run.sh, which sets the settings and binary paths first.

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

includes() { [[ " ${SERVERS[*]} " == *" $1 "* ]]; }

SERVER_PID=""
# Background load tools, killed on exit so a failed run leaves nothing behind.
HELPER_PIDS=()

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
    local status=$? pid
    for pid in "${HELPER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    stop_server
    if [[ $status -eq 0 ]] || rmdir "$LOG_DIR" 2>/dev/null; then
        rm -rf "$LOG_DIR"
    else
        log "server logs kept in $LOG_DIR"
    fi
}

build() {
    [[ "$SKIP_BUILD" == 1 ]] && return 0
    local packages=(-p snow-bench)
    if includes snow && [[ -z "${SNOW_BIN:-}" ]]; then
        packages+=(-p snow)
    fi
    # The swap and proxy runs serve test modules, which only the
    # snow-test-guests crate's build script builds.
    if [[ "$SKIP_SWAP" != 1 || "$SKIP_OUTBOUND" != 1 || "$SKIP_KV" != 1 || "$SKIP_STANDARD" != 1 || "$SKIP_STREAMS" != 1 ]]; then
        packages+=(-p snow-test-guests)
    fi
    log "building ${packages[*]} (release)"
    (cd "$ROOT" && cargo build --release "${packages[@]}") >&2
}

# Snow compiles a module it has no cached build of twice: Winch's build
# serves at once, Cranelift's replaces it a second later. The sections
# measure Cranelift's code, so its builds of every module they serve go
# into the cache first (`snow check` compiles with Cranelift alone).
warm_cache() {
    includes snow || return 0
    local wasm
    log "snow: filling the compile cache with cranelift's builds"
    "$STARTUP" -- "$SNOW" serve --listen 127.0.0.1:0 --admin off --compiler cranelift >/dev/null 2>&1 ||
        log "  warning: could not compile the default app ahead"
    for wasm in "$@"; do
        "$SNOW" check "$wasm" >/dev/null 2>&1 || log "  warning: could not compile $wasm ahead"
    done
}

# Installs the Debian package $1 unless a command of that name exists.
apt_install() {
    command -v "$1" >/dev/null && return 0
    command -v apt-get >/dev/null || return 1
    log "installing $1"
    export DEBIAN_FRONTEND=noninteractive
    # The package lists may be missing or stale on a fresh machine.
    apt-get install -y "$1" >&2 || { apt-get update >&2 && apt-get install -y "$1" >&2; }
}

install_wrk() { apt_install wrk; }

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

# Other work on the machine skews every number, so the tables say how busy
# it was when the run started.
load_average() { cut -d' ' -f1-3 /proc/loadavg; }

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

# What start_server gives snow as --admin, and the path it waits on. A
# section that needs others sets them as locals around its start_server.
SNOW_ADMIN=off
PROBE_PATH=/home/

# Starts a server on a fresh port and sets SERVER_PID and ADDR once it
# answers $PROBE_PATH. Arguments after the label go to `snow serve` only; the
# baseline has no such settings.
start_server() {
    local server=$1 label=$2 port logfile
    shift 2
    port="$(free_port)"
    # Nothing listens on the admin port yet, so free_port may hand it out.
    while [[ "$SNOW_ADMIN" == *":$port" ]]; do
        port="$(free_port)"
    done
    ADDR="127.0.0.1:$port"
    logfile="$LOG_DIR/$server-$label.log"
    case "$server" in
        # The admin listener has a fixed default port; off unless a section
        # picked one, so runs never collide.
        snow) "$SNOW" serve --listen "$ADDR" --workers "$WORKERS" --admin "$SNOW_ADMIN" "$@" >"$logfile" 2>&1 & ;;
        snow-before) "$SNOW_BEFORE" serve --listen "$ADDR" --workers "$WORKERS" --admin "$SNOW_ADMIN" "$@" >"$logfile" 2>&1 & ;;
        hyper) "$BASELINE" --listen "$ADDR" --workers "$WORKERS" >"$logfile" 2>&1 & ;;
        hyper-proxy) "$NATIVE_PROXY_BIN" --listen "$ADDR" --workers "$WORKERS" "$@" >"$logfile" 2>&1 & ;;
        bare-proxy) "$BARE_PROXY_BIN" --listen "$ADDR" --workers "$WORKERS" "$@" >"$logfile" 2>&1 & ;;
        # `wasmtime serve` of the component given as the last argument.
        wasmtime) "$WASMTIME" serve --addr "$ADDR" "$@" >"$logfile" 2>&1 & ;;
    esac
    SERVER_PID=$!
    local deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            SERVER_PID=""
            tail -n 20 "$logfile" >&2 || true
            die "$server exited before answering on $ADDR"
        fi
        if curl -sf -o /dev/null --max-time 1 "http://$ADDR$PROBE_PATH"; then
            [[ "$server" == wasmtime ]] || grep -q "listening on http://" "$logfile" ||
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

# DURATION-style values (10s, 2m, 1h, plain seconds) in whole seconds.
to_seconds() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /m$/) n *= 60
        else if (v ~ /h$/) n *= 3600
        printf "%d", (n == int(n)) ? n : int(n) + 1
    }'
}

# A discarded wrk run on $2 (default /home/ on $ADDR); $1 labels the log.
warm_up() {
    [[ "$WARMUP" != 0 ]] || return 0
    log "$1: warm-up ${WARMUP}"
    wrk -t1 -c64 -d"$WARMUP" "${2:-http://$ADDR/home/}" >/dev/null
}

# Runs wrk against /home/ on $ADDR with $1 connections and sets WRK_RPS and
# WRK_P99 (ms), or - for what wrk did not report. $2 names the saved output.
wrk_home() { wrk_url "$1" "$2" "http://$ADDR/home/"; }

# wrk_home on any URL, $3, with the wrk Lua script $4 if given (a POST,
# say). Also sets WRK_ERRORS: socket errors plus non-2xx answers, which wrk
# counts in the request rate all the same.
wrk_url() {
    local connections=$1 tag=$2 url=$3 script=${4:-} out p99
    local extra=()
    [[ -z "$script" ]] || extra=(-s "$script")
    log "$tag: wrk -t1 -c$connections -d$DURATION ${extra[*]}"
    out="$(wrk -t1 -c"$connections" -d"$DURATION" --latency "${extra[@]}" "$url")"
    printf '%s\n' "$out" >"$LOG_DIR/wrk-$tag.txt"
    WRK_RPS="$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")"
    WRK_RPS="${WRK_RPS:--}"
    p99="$(awk '$1 == "99%" { print $2 }' <<<"$out")"
    WRK_P99="$([[ -n "$p99" ]] && to_ms "$p99" || echo -)"
    # "Socket errors: connect 0, read 1, write 0, timeout 2"; "Non-2xx or 3xx responses: 5".
    # shellcheck disable=SC2034 # read by the sections
    WRK_ERRORS="$(awk '
        /^ *Socket errors:/ { gsub(",", ""); n += $4 + $6 + $8 + $10 }
        /^ *Non-2xx/ { n += $NF }
        END { print n + 0 }' <<<"$out")"
    # Errors make the request rate meaningless, so they are shown, not hidden.
    grep -E 'Socket errors|Non-2xx' <<<"$out" | sed "s/^/  $tag: /" >&2 || true
    log "  $WRK_RPS req/s, p99 $WRK_P99 ms"
}

# Value of key=value in a load tool's summary line.
field() {
    awk -v k="$1" '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' <<<"$2"
}

# Runs park-load with $1 parked requests against the running server and
# prints its summary line, or nothing when it failed.
park_line() {
    local out
    out="$("$PARK" --url "http://$ADDR" -n "$1" --pid "$SERVER_PID" | tail -n 1)" || out=""
    log "  ${out:-park-load failed}"
    printf '%s\n' "$out"
}

# a/b to two decimals, or - when either side is missing.
ratio() {
    awk -v a="${1:--}" -v b="${2:--}" 'BEGIN {
        if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b + 0 == 0) print "-"
        else printf "%.2f", a / b
    }'
}

# a-b to two decimals, or - when either side is missing.
difference() {
    awk -v a="${1:--}" -v b="${2:--}" 'BEGIN {
        if (a !~ /^-?[0-9.]+$/ || b !~ /^-?[0-9.]+$/) print "-"
        else printf "%+.2f", a - b
    }'
}

# yes when $1 <= $2, no when above, - when there is no number.
within() {
    awk -v a="${1:--}" -v b="$2" 'BEGIN {
        if (a !~ /^[0-9.]+$/) print "-"
        else print (a + 0 <= b + 0) ? "yes" : "no"
    }'
}

# yes when $1 >= $2, no when below, - when there is no number.
at_least() {
    awk -v a="${1:--}" -v b="$2" 'BEGIN {
        if (a !~ /^[0-9.]+$/) print "-"
        else print (a + 0 >= b + 0) ? "yes" : "no"
    }'
}

# Median of the numeric arguments, or - when there are none. One
# definition for every section: each file is sourced into the same shell.
median() {
    # awk rather than grep to drop failed runs: no match must not be an error.
    printf '%s\n' "$@" | awk '/^[0-9.]+$/' | sort -g | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) print "-"
            else if (NR % 2) printf "%.2f", v[(NR + 1) / 2]
            else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2
        }'
}
