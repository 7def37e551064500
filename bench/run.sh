#!/usr/bin/env bash
# Measures the Snow host on this machine, mostly against a native hyper
# server: /home/ throughput and latency under wrk, resident memory per parked
# long request, /home/ latency while hostile clients hold connections, Snow's
# two isolation modes, Snow's start-up time, hot swaps of a Snow module, and
# Snow's outbound HTTP client (snow fetch next to curl, and a proxying module),
# standard wasi:http components on Snow and on wasmtime serve, streaming
# bodies (proxying next to nginx, many server-sent event clients), and the
# allocator modules get from the SDK next to the ones it could have used.
# Progress goes to stderr; the markdown tables go to stdout, so
# `bench/run.sh > table.md` keeps just the results. Each section lives in
# bench/sh/.
#
# Environment:
#   DURATION=10s               length of each wrk run
#   WARMUP=2s                  wrk run before measuring, discarded; 0 skips it
#   PARK_NS="1000 5000 10000"  parked-request counts; each gets a fresh server
#   SKIP_WRK=1                 skip the throughput runs
#   WRK_ROUNDS=3               throughput rounds, the servers taking turns; tables show medians
#   SKIP_NOPOLL=1              skip the throughput runs of snow without busy polling
#   SKIP_PARK=1                skip the parked-request runs
#   SKIP_HOLD=1                skip the hostile-client runs
#   HOLD_STALLED=1000          connections held with a partial request head
#   HOLD_IDLE=1000             keep-alive connections held idle after one request
#   HOLD_DRIP=                 e.g. 5s: stalled connections send a byte this often
#   SKIP_ISOLATION=1           skip the instance vs request isolation runs (snow only)
#   ISOLATION_PARK_N=1000      parked requests in each isolation mode
#   ISOLATION_POOL=2000        --pool-size for --isolation request
#   SKIP_STARTUP=1             skip the start-up timing (snow only)
#   STARTUP_RUNS=5             warm starts; the table shows their median
#   SKIP_SWAP=1                skip the hot-swap runs (snow only)
#   SWAP_CHANGES=10            timed changes per way of swapping
#   SWAP_LOAD_SECS=10          length of the load run, with a swap every second
#   SWAP_CONNECTIONS=64        keep-alive connections of that load
#   SWAP_SERIES_DIR=path       where its per-window counts go (default: a new /tmp dir)
#   SKIP_OUTBOUND=1            skip the outbound client runs (snow only)
#   OUTBOUND_REQUESTS=10000    URLs fetched by snow fetch, curl and oha (if installed)
#   OUTBOUND_CONCURRENCY=64    requests each of them keeps in flight
#   OUTBOUND_RUNS=2            runs of each; the table shows the fastest
#   SKIP_STANDARD=1            skip the standard wasi:http component runs (snow only)
#   SKIP_ALLOCATOR=1           skip the module allocator runs (snow only; valgrind is
#                              installed when missing, for instruction counts)
#   ALLOC_ROUNDS=3             wrk rounds of those, the allocators taking turns
#   ALLOC_REQUESTS=2000        requests counted under callgrind for each allocator
#   WASMTIME_BIN=path          wasmtime binary for its `serve` row (default: wasmtime on PATH)
#   SKIP_STREAMS=1             skip the streaming runs (snow only): proxying next to
#                              nginx (installed when missing), and many SSE clients
#   STREAM_ROUNDS=3            rounds of the small-body proxy runs, the proxies taking turns
#   BIG_CONNECTIONS=4          wrk connections fetching the 100 MiB body
#   SSE_CLIENTS=10000          concurrent server-sent event clients
#   SSE_EVENTS=5               events each of them waits for, a second apart
#   SKIP_KV=1                  skip the key-value store runs (snow only)
#   KV_ROUNDS=3                rounds of the key-value runs; the table shows medians
#   KV_CONNECTIONS=64          wrk connections and redis-benchmark clients
#   KV_REDIS_REQUESTS=200000   requests of each redis-benchmark run
#   ONLY=snow|hyper            measure one server only (default: both)
#   WORKERS=2                  --workers passed to both servers
#   SNOW_BIN=path              snow binary to use; the snow package is then not built
#   SNOW_BEFORE=path           an earlier snow binary, measured in the same throughput
#                              rounds as SNOW_BIN, for a before/after table, and
#                              proxying in the streaming runs
#   FANOUT_BEFORE=path         the proxy module SNOW_BEFORE serves in the streaming
#                              runs, for a binary of an earlier contract (default:
#                              the same fanout.wasm as SNOW_BIN)
#   SKIP_BUILD=1               use the binaries already built
#   READY_TIMEOUT=60           seconds a server gets to start answering /home/
#   CARGO_TARGET_DIR           honoured when building and locating binaries
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
unset RUST_BACKTRACE

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-2s}"
PARK_NS="${PARK_NS:-1000 5000 10000}"
SKIP_WRK="${SKIP_WRK:-0}"
SKIP_PARK="${SKIP_PARK:-0}"
SKIP_HOLD="${SKIP_HOLD:-0}"
SKIP_NOPOLL="${SKIP_NOPOLL:-0}"
WRK_ROUNDS="${WRK_ROUNDS:-3}"
HOLD_STALLED="${HOLD_STALLED:-1000}"
HOLD_IDLE="${HOLD_IDLE:-1000}"
HOLD_DRIP="${HOLD_DRIP:-}"
SKIP_ISOLATION="${SKIP_ISOLATION:-0}"
ISOLATION_PARK_N="${ISOLATION_PARK_N:-1000}"
ISOLATION_POOL="${ISOLATION_POOL:-2000}"
SKIP_STARTUP="${SKIP_STARTUP:-0}"
STARTUP_RUNS="${STARTUP_RUNS:-5}"
SKIP_SWAP="${SKIP_SWAP:-0}"
SWAP_CHANGES="${SWAP_CHANGES:-10}"
SWAP_LOAD_SECS="${SWAP_LOAD_SECS:-10}"
SWAP_CONNECTIONS="${SWAP_CONNECTIONS:-64}"
SWAP_SERIES_DIR="${SWAP_SERIES_DIR:-}"
SKIP_OUTBOUND="${SKIP_OUTBOUND:-0}"
OUTBOUND_REQUESTS="${OUTBOUND_REQUESTS:-10000}"
OUTBOUND_CONCURRENCY="${OUTBOUND_CONCURRENCY:-64}"
OUTBOUND_RUNS="${OUTBOUND_RUNS:-2}"
# wrk connections of the proxy runs, which are dropped (OUTBOUND_WRK=0)
# when wrk cannot be had.
PROXY_CONNECTIONS=64
OUTBOUND_WRK=1
SKIP_KV="${SKIP_KV:-0}"
SKIP_STANDARD="${SKIP_STANDARD:-0}"
SKIP_STREAMS="${SKIP_STREAMS:-0}"
SKIP_ALLOCATOR="${SKIP_ALLOCATOR:-0}"
ALLOC_ROUNDS="${ALLOC_ROUNDS:-3}"
ALLOC_REQUESTS="${ALLOC_REQUESTS:-2000}"
BIG_CONNECTIONS="${BIG_CONNECTIONS:-4}"
SSE_CLIENTS="${SSE_CLIENTS:-10000}"
SSE_EVENTS="${SSE_EVENTS:-5}"
WASMTIME="${WASMTIME_BIN:-$(command -v wasmtime || true)}"
KV_ROUNDS="${KV_ROUNDS:-3}"
KV_CONNECTIONS="${KV_CONNECTIONS:-64}"
KV_REDIS_REQUESTS="${KV_REDIS_REQUESTS:-200000}"
ONLY="${ONLY:-}"
WORKERS="${WORKERS:-2}"
SKIP_BUILD="${SKIP_BUILD:-0}"
SNOW_BEFORE="${SNOW_BEFORE:-}"
FANOUT_BEFORE="${FANOUT_BEFORE:-}"
READY_TIMEOUT="${READY_TIMEOUT:-60}"
CONNECTIONS=(64 256)

# shellcheck source=sh/common.sh
source "$ROOT/bench/sh/common.sh"
# shellcheck source=sh/throughput.sh
source "$ROOT/bench/sh/throughput.sh"
# shellcheck source=sh/summary.sh
source "$ROOT/bench/sh/summary.sh"
# shellcheck source=sh/park.sh
source "$ROOT/bench/sh/park.sh"
# shellcheck source=sh/hold.sh
source "$ROOT/bench/sh/hold.sh"
# shellcheck source=sh/isolation.sh
source "$ROOT/bench/sh/isolation.sh"
# shellcheck source=sh/startup.sh
source "$ROOT/bench/sh/startup.sh"
# shellcheck source=sh/swap.sh
source "$ROOT/bench/sh/swap.sh"
# shellcheck source=sh/outbound.sh
source "$ROOT/bench/sh/outbound.sh"
# shellcheck source=sh/kv.sh
source "$ROOT/bench/sh/kv.sh"
# shellcheck source=sh/standard.sh
source "$ROOT/bench/sh/standard.sh"
# shellcheck source=sh/streams.sh
source "$ROOT/bench/sh/streams.sh"
# shellcheck source=sh/allocator.sh
source "$ROOT/bench/sh/allocator.sh"

case "$ONLY" in
    "") SERVERS=(snow hyper) ;;
    snow | hyper) SERVERS=("$ONLY") ;;
    *) die "ONLY must be snow or hyper, not '$ONLY'" ;;
esac
if ! includes snow; then
    # Both compare snow with itself; there is nothing to run without it.
    SKIP_ISOLATION=1
    SKIP_STARTUP=1
    SKIP_SWAP=1
    SKIP_OUTBOUND=1
    SKIP_KV=1
    SKIP_STANDARD=1
    SKIP_STREAMS=1
    SKIP_ALLOCATOR=1
fi

LOG_DIR="$(mktemp -d -t snow-bench.XXXXXX)"
trap cleanup EXIT

build
SNOW="${SNOW_BIN:-$TARGET_DIR/release/snow}"
BASELINE="$TARGET_DIR/release/hyper-baseline"
NATIVE_PROXY_BIN="$TARGET_DIR/release/hyper-proxy"
BARE_PROXY_BIN="$TARGET_DIR/release/bare-proxy"
PARK="$TARGET_DIR/release/park-load"
HOLD="$TARGET_DIR/release/hold-conns"
STARTUP="$TARGET_DIR/release/startup-time"
SWAP_TIME="$TARGET_DIR/release/swap-time"
SWAP_LOAD="$TARGET_DIR/release/swap-load"
for bin in "$BASELINE" "$NATIVE_PROXY_BIN" "$BARE_PROXY_BIN" "$PARK" "$HOLD" "$STARTUP" "$SWAP_TIME" "$SWAP_LOAD"; do
    [[ -x "$bin" ]] || die "missing $bin"
done
if includes snow; then
    [[ -x "$SNOW" ]] || die "missing $SNOW (set SNOW_BIN, or ONLY=hyper)"
fi
if [[ -n "$SNOW_BEFORE" ]]; then
    includes snow || die "SNOW_BEFORE needs snow among the servers"
    [[ -x "$SNOW_BEFORE" ]] || die "SNOW_BEFORE=$SNOW_BEFORE is not an executable"
fi
if [[ "$SKIP_SWAP" != 1 ]]; then
    # Built by the snow-test-guests package's build script, which leaves a
    # copy of each component here.
    VERSION_ONE="$TARGET_DIR/wasm-guests/components/version_one.wasm"
    VERSION_TWO="$TARGET_DIR/wasm-guests/components/version_two.wasm"
    for wasm in "$VERSION_ONE" "$VERSION_TWO"; do
        [[ -f "$wasm" ]] || die "missing $wasm (build the snow-test-guests package, or SKIP_SWAP=1)"
    done
    # Outside LOG_DIR, which a successful run removes.
    SWAP_SERIES_DIR="${SWAP_SERIES_DIR:-$(mktemp -d -t snow-swap-series.XXXXXX)}"
    mkdir -p "$SWAP_SERIES_DIR"
fi
if [[ "$SKIP_OUTBOUND$SKIP_STREAMS" != 11 ]]; then
    FANOUT="$TARGET_DIR/wasm-guests/components/fanout.wasm"
    [[ -f "$FANOUT" ]] || die "missing $FANOUT (build the snow-test-guests package, or SKIP_OUTBOUND=1 SKIP_STREAMS=1)"
fi
if [[ "$SKIP_KV" != 1 ]]; then
    COUNTER="$TARGET_DIR/wasm-guests/components/counter.wasm"
    [[ -f "$COUNTER" ]] || die "missing $COUNTER (build the snow-test-guests package, or SKIP_KV=1)"
fi
if [[ "$SKIP_STANDARD" != 1 ]]; then
    HELLO_WASI_HTTP="$TARGET_DIR/wasm-guests/components/hello_wasi_http.wasm"
    [[ -f "$HELLO_WASI_HTTP" ]] || die "missing $HELLO_WASI_HTTP (build the snow-test-guests package, or SKIP_STANDARD=1)"
    if [[ -n "$WASMTIME" ]]; then
        WASMTIME_VERSION="$("$WASMTIME" --version)"
    fi
fi
apt_install curl || die "curl is needed to probe the servers"
warm_cache ${FANOUT:+"$FANOUT"} ${COUNTER:+"$COUNTER"} ${HELLO_WASI_HTTP:+"$HELLO_WASI_HTTP"}

if [[ "$SKIP_WRK$SKIP_HOLD$SKIP_ISOLATION$SKIP_OUTBOUND$SKIP_KV$SKIP_STANDARD$SKIP_STREAMS" != 1111111 ]] && ! install_wrk; then
    log "warning: wrk unavailable, skipping the throughput, hostile-client, isolation, proxy, key-value, standard-component and streaming runs"
    SKIP_WRK=1 SKIP_HOLD=1 SKIP_ISOLATION=1 OUTBOUND_WRK=0 SKIP_KV=1 SKIP_STANDARD=1 SKIP_STREAMS=1
fi
raise_limits

declare -A LOAD
LOAD[start]="$(load_average)"
log "load average: ${LOAD[start]} ($(nproc) cores)"
[[ "$SKIP_WRK" == 1 ]] || run_throughput_rounds
if [[ "$SKIP_PARK" != 1 ]]; then
    for server in "${SERVERS[@]}"; do
        run_park "$server"
    done
fi
if [[ "$SKIP_HOLD" != 1 ]]; then
    LOAD[hold]="$(load_average)"
    for server in "${SERVERS[@]}"; do
        run_hold "$server"
    done
fi
if [[ "$SKIP_ISOLATION" != 1 ]]; then
    LOAD[isolation]="$(load_average)"
    run_isolation
fi
if [[ "$SKIP_STARTUP" != 1 ]]; then
    LOAD[startup]="$(load_average)"
    run_startup
fi
if [[ "$SKIP_SWAP" != 1 ]]; then
    LOAD[swap]="$(load_average)"
    run_swap
fi
if [[ "$SKIP_OUTBOUND" != 1 ]]; then
    LOAD[outbound]="$(load_average)"
    run_outbound
fi
if [[ "$SKIP_KV" != 1 ]]; then
    LOAD[kv]="$(load_average)"
    run_kv
fi
if [[ "$SKIP_STANDARD" != 1 ]]; then
    LOAD[standard]="$(load_average)"
    run_standard
fi
if [[ "$SKIP_STREAMS" != 1 ]]; then
    LOAD[streams]="$(load_average)"
    run_streams
fi
if [[ "$SKIP_ALLOCATOR" != 1 ]]; then
    LOAD[allocator]="$(load_average)"
    run_allocator
fi

echo "Load average (1, 5, 15 min) when the runs began: ${LOAD[start]}, $(nproc) cores."
echo
print_summary
[[ "$SKIP_WRK" == 1 ]] || print_throughput
[[ "$SKIP_PARK" == 1 ]] || print_park
[[ "$SKIP_HOLD" == 1 ]] || print_hold
[[ "$SKIP_ISOLATION" == 1 ]] || print_isolation
[[ "$SKIP_STARTUP" == 1 ]] || print_startup
[[ "$SKIP_SWAP" == 1 ]] || print_swap
[[ "$SKIP_OUTBOUND" == 1 ]] || print_outbound
[[ "$SKIP_KV" == 1 ]] || print_kv
[[ "$SKIP_STANDARD" == 1 ]] || print_standard
[[ "$SKIP_STREAMS" == 1 ]] || print_streams
[[ "$SKIP_ALLOCATOR" == 1 ]] || print_allocator
