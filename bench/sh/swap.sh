# shellcheck shell=bash
# Hot swaps in snow: how long a changed module takes to serve, by file (the
# server watches it) and through the admin API, and what a swap every second
# costs the requests running through it. The two test versions answer
# /version/ with their names, so every response says which one served it.

declare -A SWAP_MEDIAN SWAP_MAX SWAP_PUT_MEDIAN SWAP_OK SWAP_FAILED
SWAP_VIAS=(rename overwrite put put-compile)
SWAP_LOAD_OUT=""
SWAP_GRID=""

run_swap() {
    local dir="$LOG_DIR/swap" via
    # Locals reach start_server: the admin API on, readiness on /version/.
    # shellcheck disable=SC2034 # read by start_server
    local SNOW_ADMIN PROBE_PATH=/version/
    SNOW_ADMIN="127.0.0.1:$(free_port)"
    mkdir -p "$dir"
    prefill_cache "$dir/cache"

    cp "$VERSION_ONE" "$dir/app.wasm"
    start_server snow swap "$dir/app.wasm" --cache-dir "$dir/cache"
    for via in rename overwrite put; do
        swap_time "$via" "$dir/app.wasm"
    done
    stop_server

    # Every change compiles, as a version never deployed before would.
    cp "$VERSION_ONE" "$dir/app.wasm"
    start_server snow swap-compile "$dir/app.wasm" --no-cache
    swap_time put-compile "$dir/app.wasm"
    stop_server

    # A fresh server, so the load sees only its own swaps.
    cp "$VERSION_ONE" "$dir/app.wasm"
    start_server snow swap-load "$dir/app.wasm" --cache-dir "$dir/cache"
    swap_load
    stop_server
}

# Compiles both versions into the cache the timed servers use, so those
# changes measure deploying code, not compiling it (put-compile does that).
prefill_cache() {
    local wasm
    for wasm in "$VERSION_ONE" "$VERSION_TWO"; do
        "$SNOW" check --cache-dir "$1" "$wasm" >>"$LOG_DIR/snow-swap-check.log" 2>&1 ||
            die "snow check failed on $wasm, see $LOG_DIR/snow-swap-check.log"
    done
}

# Times SWAP_CHANGES alternating changes one way against the running server.
swap_time() {
    local via=$1 file=$2 out
    log "snow: $SWAP_CHANGES changes via $via"
    out="$("$SWAP_TIME" --url "http://$ADDR/version/" --via "${via%-compile}" \
        --file "$file" --admin "http://$SNOW_ADMIN/modules/app" \
        --version one="$VERSION_ONE" --version two="$VERSION_TWO" \
        --changes "$SWAP_CHANGES" | tail -n 1)" || out=""
    log "  ${out:-swap-time failed}"
    SWAP_MEDIAN[$via]="$(field median_ms "$out")"
    SWAP_MAX[$via]="$(field max_ms "$out")"
    SWAP_PUT_MEDIAN[$via]="$(field put_median_ms "$out")"
    SWAP_OK[$via]="$(field ok "$out")/$(field changes "$out")"
    SWAP_FAILED[$via]="$(field failed "$out")"
}

# Runs swap-load while swap_marks deploys a version every second; the load
# tool stamps the marks on arrival and stops when they end.
swap_load() {
    local file="$LOG_DIR/swap-load.txt"
    log "snow: swap-load -c$SWAP_CONNECTIONS for ${SWAP_LOAD_SECS}s, a PUT every second"
    # swap_marks only waits for swap-load's ready line in the file it writes.
    # shellcheck disable=SC2094
    if ! swap_marks "$file" | "$SWAP_LOAD" --url "http://$ADDR/version/" \
        --connections "$SWAP_CONNECTIONS" --marks --duration "$((SWAP_LOAD_SECS + 60))s" \
        --series "$SWAP_SERIES" >"$file"; then
        log "  swap-load failed"
    fi
    SWAP_LOAD_OUT="$(tail -n 1 "$file")"
    SWAP_GRID="$(grep '^t=' "$file" || true)"
    log "  $SWAP_LOAD_OUT"
    log "  per-window series in $SWAP_SERIES"
}

# Writes `swap NAME` before each PUT and `done STATUS` after it, once a
# second from when swap-load is ready, then ends the run SWAP_LOAD_SECS in.
# Its stdout is swap-load's stdin, so progress goes to stderr only.
swap_marks() {
    local file=$1 start k to wasm status
    wait_for_ready "$file" 60 || return 0
    start="$EPOCHREALTIME"
    for ((k = 1; k < SWAP_LOAD_SECS; k++)); do
        sleep_until "$start" "$k"
        if ((k % 2)); then to=two wasm="$VERSION_TWO"; else to=one wasm="$VERSION_ONE"; fi
        echo "swap $to"
        # No 100-continue round trip: the body goes with the head.
        status="$(curl -s -o /dev/null -w '%{http_code}' -H 'Expect:' -X PUT \
            --data-binary @"$wasm" "http://$SNOW_ADMIN/modules/app")" || true
        echo "done ${status:-000}"
    done
    sleep_until "$start" "$SWAP_LOAD_SECS"
}

# Waits up to $2 seconds for a `ready` line in $1.
wait_for_ready() {
    local deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do
        grep -qs '^ready' "$1" && return 0
        sleep 0.05
    done
    log "  swap-load never became ready"
    return 1
}

# Sleeps until $2 seconds after the $EPOCHREALTIME in $1, keeping the swaps
# on a one-second beat however long each PUT took.
sleep_until() {
    sleep "$(awk -v t0="$1" -v k="$2" -v now="$EPOCHREALTIME" \
        'BEGIN { d = t0 + k - now; printf "%.3f", d > 0 ? d : 0 }')"
}

print_swap() {
    local via out="$SWAP_LOAD_OUT"
    local -A label=(
        [rename]="file, renamed over"
        [overwrite]="file, overwritten in place"
        [put]="PUT /modules/app"
        [put-compile]="PUT /modules/app, compiled (--no-cache)"
    )
    echo "## Hot swap (snow --workers $WORKERS, version_one.wasm ⇄ version_two.wasm, $SWAP_CHANGES changes each)"
    echo
    echo "Load average at the start: ${LOAD[swap]:--}. Time from the change (the rename, the first byte" \
        "of the overwrite, the PUT being sent) to the first /version/ answer from the new version, polled" \
        "back to back on one keep-alive connection. File changes include the server's 250 ms debounce." \
        "Both versions were compiled into the cache beforehand, except in the --no-cache row."
    echo
    echo "| change | median ms | max ms | PUT answered, median ms | changes seen | failed polls |"
    echo "|---|---:|---:|---:|---:|---:|"
    for via in "${SWAP_VIAS[@]}"; do
        echo "| ${label[$via]} | ${SWAP_MEDIAN[$via]:--} | ${SWAP_MAX[$via]:--}" \
            "| $(na_dash "${SWAP_PUT_MEDIAN[$via]:-}") | ${SWAP_OK[$via]:--} | ${SWAP_FAILED[$via]:--} |"
    done
    echo
    echo "### Throughput through swaps (swap-load -c$SWAP_CONNECTIONS on /version/, ${SWAP_LOAD_SECS}s, a PUT every second)"
    echo
    echo "Requests per second in 100 ms windows. Near a swap: from 300 ms before the PUT to 300 ms after its answer."
    echo
    echo "| median req/s | lowest near a swap | dip | max latency near swaps ms | max latency elsewhere ms | swaps ok | non-200 | failed | stale answers |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    echo "| $(field median_rps "$out") | $(field min_near_rps "$out") | $(field dip_pct "$out")%" \
        "| $(field near_max_latency_ms "$out") | $(field far_max_latency_ms "$out")" \
        "| $(field swaps_ok "$out")/$(field swaps "$out") | $(field non_200 "$out") | $(field failed "$out") | $(field stale "$out") |"
    echo
    echo "Per window, k req/s, one second a row (\`>\` a PUT was sent, \`*\` near a swap); every window in $SWAP_SERIES:"
    echo
    echo '```'
    echo "${SWAP_GRID:-(no series)}"
    echo '```'
    echo
}

# swap-time prints na for what it did not measure; the table shows -.
na_dash() { [[ -n "$1" && "$1" != na ]] && echo "$1" || echo -; }
