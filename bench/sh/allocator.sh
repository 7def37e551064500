# shellcheck shell=bash
# The module's allocator: `/home/` of one module (bench/alloc-guest) built
# three ways, with the SDK's size classes, with talc, and with the standard
# library's dlmalloc. Instructions per request under callgrind (one
# worker, instrumentation on only during the requests) and req/s under wrk.

declare -A ALLOC_WASM ALLOC_INSTR ALLOC_RPS ALLOC_RPS_ROUNDS ALLOC_P99 ALLOC_P99_ROUNDS
ALLOC_VARIANTS=(classes talc standard)

# Builds the three components into LOG_DIR.
build_alloc_variants() {
    local variant features out
    for variant in "${ALLOC_VARIANTS[@]}"; do
        features=()
        [[ "$variant" == standard ]] || features=(--features "$variant")
        log "allocator: building bench/alloc-guest with ${variant}"
        (cd "$ROOT" && cargo build --release --target wasm32-wasip2 -p snow-alloc-bench \
            "${features[@]}" --target-dir "$TARGET_DIR/alloc-bench") >&2 ||
            die "could not build bench/alloc-guest with $variant"
        out="$LOG_DIR/alloc-$variant.wasm"
        cp "$TARGET_DIR/alloc-bench/wasm32-wasip2/release/snow_alloc_bench.wasm" "$out"
        "$SNOW" check "$out" >/dev/null 2>&1 || die "snow refused bench/alloc-guest with $variant"
        ALLOC_WASM[$variant]="$out"
    done
}

# GET /home/ $1 times on one keep-alive connection to $2.
keep_alive_gets() {
    python3 - "$1" "$2" <<'PY'
import http.client, sys
n, addr = int(sys.argv[1]), sys.argv[2]
host, port = addr.rsplit(":", 1)
conn = http.client.HTTPConnection(host, int(port))
for _ in range(n):
    conn.request("GET", "/home/")
    response = conn.getresponse()
    if response.status != 200 or response.read() != b"home":
        sys.exit(f"unexpected answer: {response.status}")
PY
}

# Instructions per /home/ request of the component $1, into ALLOC_INSTR[$2].
alloc_instructions() {
    local wasm=$1 variant=$2 port out pid total
    port="$(free_port)"
    out="$LOG_DIR/callgrind-$variant.out"
    # Busy polling would count the idle worker's spinning.
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
        "$SNOW" serve --listen "127.0.0.1:$port" --admin off --workers 1 --busy-poll 0s "$wasm" \
        >"$LOG_DIR/callgrind-$variant.log" 2>&1 &
    pid=$!
    local deadline=$((SECONDS + 300))
    until curl -sf -o /dev/null --max-time 5 "http://127.0.0.1:$port/home/"; do
        if ((SECONDS > deadline)) || ! kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            log "  warning: snow under callgrind did not answer; no instruction count for $variant"
            return 0
        fi
        sleep 1
    done
    keep_alive_gets 200 "127.0.0.1:$port" || log "  warning: warm-up failed for $variant"
    callgrind_control -i on "$pid" >/dev/null
    keep_alive_gets "$ALLOC_REQUESTS" "127.0.0.1:$port" || log "  warning: requests failed for $variant"
    callgrind_control -i off "$pid" >/dev/null
    kill -INT "$pid"
    wait "$pid" 2>/dev/null || true
    total="$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')"
    [[ -n "$total" ]] && ALLOC_INSTR[$variant]=$((total / ALLOC_REQUESTS))
}

run_allocator() {
    local variant round
    build_alloc_variants
    if apt_install valgrind && apt_install python3; then
        for variant in "${ALLOC_VARIANTS[@]}"; do
            log "allocator: callgrind, $ALLOC_REQUESTS requests with $variant"
            alloc_instructions "${ALLOC_WASM[$variant]}" "$variant"
        done
    else
        log "warning: valgrind or python3 unavailable: no instruction counts"
    fi
    command -v wrk >/dev/null || {
        log "warning: wrk unavailable: no req/s for the allocators"
        return 0
    }
    for round in $(seq "$ALLOC_ROUNDS"); do
        log "allocator round $round of $ALLOC_ROUNDS"
        for variant in "${ALLOC_VARIANTS[@]}"; do
            start_server snow "alloc-$variant" "${ALLOC_WASM[$variant]}"
            warm_up "snow with $variant"
            wrk_home 64 "alloc-$variant"
            ALLOC_RPS_ROUNDS[$variant]+="$WRK_RPS "
            ALLOC_P99_ROUNDS[$variant]+="$WRK_P99 "
            stop_server
        done
    done
    for variant in "${ALLOC_VARIANTS[@]}"; do
        # shellcheck disable=SC2086 # the rounds are words
        ALLOC_RPS[$variant]="$(median ${ALLOC_RPS_ROUNDS[$variant]})"
        # shellcheck disable=SC2086
        ALLOC_P99[$variant]="$(median ${ALLOC_P99_ROUNDS[$variant]})"
    done
}

print_allocator() {
    local v
    echo "## The module's allocator (bench/alloc-guest's /home/; callgrind: --workers 1, $ALLOC_REQUESTS requests; wrk -t1 -c64 $DURATION, median of $ALLOC_ROUNDS rounds)"
    echo
    echo "Load average at the start: ${LOAD[allocator]:--}."
    echo
    echo "| allocator | instructions/request | ÷ standard | req/s | ÷ standard | p99 ms |"
    echo "|---|---:|---:|---:|---:|---:|"
    for v in "${ALLOC_VARIANTS[@]}"; do
        echo "| $v | ${ALLOC_INSTR[$v]:--} | $(ratio "${ALLOC_INSTR[$v]:-}" "${ALLOC_INSTR[standard]:-}")" \
            "| ${ALLOC_RPS[$v]:--} | $(ratio "${ALLOC_RPS[$v]:-}" "${ALLOC_RPS[standard]:-}") | ${ALLOC_P99[$v]:--} |"
    done
    echo
}
