# shellcheck shell=bash
# Hot swaps in snow: how long a changed module takes to serve, by file (the
# server watches it) and through the admin API, and what a swap every second
# costs the requests running through it. The two test versions answer
# /version/ with their names, so every response says which one served it.
# The file changes, the PUTs, the compiling PUTs and each load run get a
# fresh server, so none pays for what an earlier one left running (such as
# the file watcher's reloads).

declare -A SWAP_MEDIAN SWAP_MAX SWAP_PUT_MEDIAN SWAP_OK SWAP_FAILED SWAP_RELOADS
declare -A SWAP_LOAD_OUT SWAP_GRID
SWAP_VIAS=(rename overwrite put put-compile)
# control: the same load and the same admin calls on the same beat, but a
# GET /modules instead of each PUT, so nothing is deployed: the noise floor
# of the figures, the machine's and the measurement's own.
SWAP_LOAD_RUNS=(control cached compiled)

run_swap() {
    local dir="$LOG_DIR/swap"
    # Locals reach start_server: the admin API on, readiness on /version/.
    # shellcheck disable=SC2034 # read by start_server
    local SNOW_ADMIN PROBE_PATH=/version/
    SNOW_ADMIN="127.0.0.1:$(free_port)"
    mkdir -p "$dir"
    prefill_cache "$dir/cache"

    swap_server file "$dir" --cache-dir "$dir/cache"
    swap_time rename "$dir/app.wasm"
    swap_time overwrite "$dir/app.wasm"
    stop_server

    swap_server put "$dir" --cache-dir "$dir/cache"
    swap_time put "$dir/app.wasm"
    stop_server

    # Every change compiles, as a version never deployed before would.
    swap_server put-compile "$dir" --no-cache
    swap_time put-compile "$dir/app.wasm"
    stop_server

    swap_server control "$dir" --cache-dir "$dir/cache"
    swap_load control
    stop_server

    swap_server load "$dir" --cache-dir "$dir/cache"
    swap_load cached
    stop_server

    swap_server load-compile "$dir" --no-cache
    swap_load compiled
    stop_server
}

# Starts snow on $2/app.wasm, a fresh copy of version one; the rest are
# `snow serve` arguments.
swap_server() {
    local label=$1 dir=$2
    shift 2
    cp "$VERSION_ONE" "$dir/app.wasm"
    start_server snow "swap-$label" "$dir/app.wasm" "$@"
    SWAP_LOG="$LOG_DIR/snow-swap-$label.log"
}

# Compiles both versions into the cache the timed servers use, so those
# changes measure deploying code, not compiling it (the --no-cache runs do).
prefill_cache() {
    local wasm
    for wasm in "$VERSION_ONE" "$VERSION_TWO"; do
        "$SNOW" check --cache-dir "$1" "$wasm" >>"$LOG_DIR/snow-swap-check.log" 2>&1 ||
            die "snow check failed on $wasm, see $LOG_DIR/snow-swap-check.log"
    done
}

# Times SWAP_CHANGES alternating changes one way against the running server,
# and counts the reloads its file watcher logged meanwhile: one per change
# is right, more means it reloads on its own.
swap_time() {
    local via=$1 file=$2 out before
    before="$(reloads_logged)"
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
    SWAP_RELOADS[$via]=$(($(reloads_logged) - before))
}

# The server writes its log every 25 ms; the last change was at least
# swap-time's pause ago, so its lines are in.
reloads_logged() { grep -c 'module file changed' "$SWAP_LOG" || true; }

# Runs swap-load while swap_marks deploys a version every second; the load
# tool stamps the marks on arrival and stops when they end. $1 names the run.
swap_load() {
    local run=$1 file="$LOG_DIR/swap-load-$1.txt" series="$SWAP_SERIES_DIR/$1.tsv"
    log "snow ($run): swap-load -c$SWAP_CONNECTIONS for ${SWAP_LOAD_SECS}s, a PUT every second"
    # swap_marks only waits for swap-load's ready line in the file it writes.
    # shellcheck disable=SC2094
    if ! swap_marks "$file" "$run" | "$SWAP_LOAD" --url "http://$ADDR/version/" \
        --connections "$SWAP_CONNECTIONS" --marks --duration "$((SWAP_LOAD_SECS + 60))s" \
        --series "$series" >"$file"; then
        log "  swap-load failed"
    fi
    SWAP_LOAD_OUT[$run]="$(tail -n 1 "$file")"
    SWAP_GRID[$run]="$(grep '^t=' "$file" || true)"
    log "  ${SWAP_LOAD_OUT[$run]}"
    log "  per-window counts in $series"
}

# Writes `swap NAME` before each PUT and `done STATUS` after it, once a
# second from when swap-load is ready (or as soon as the previous PUT is
# answered, when that takes longer), then ends the run SWAP_LOAD_SECS in.
# Its stdout is swap-load's stdin, so progress goes to stderr only.
swap_marks() {
    local file=$1 run=$2 start k to wasm status
    wait_for_ready "$file" 60 || return 0
    start="$EPOCHREALTIME"
    for ((k = 1; k < SWAP_LOAD_SECS; k++)); do
        sleep_until "$start" "$k"
        if [[ "$run" == control ]]; then
            # Version one stays, so no answer counts as stale.
            echo "swap one"
            status="$(curl -s -o /dev/null -w '%{http_code}' "http://$SNOW_ADMIN/modules")" || true
            echo "done ${status:-000}"
            continue
        fi
        if ((k % 2)); then to=two wasm="$VERSION_TWO"; else to=one wasm="$VERSION_ONE"; fi
        echo "swap $to"
        # No 100-continue round trip: the body goes with the head.
        status="$(curl -s -o /dev/null -w '%{http_code}' -H 'Expect:' -X PUT \
            --data-binary @"$wasm" "http://$SNOW_ADMIN/modules/app")" || true
        echo "done ${status:-000}"
    done
    # A second past the last answer, however late it came, so its aftermath
    # is in the run too.
    sleep_until "$EPOCHREALTIME" 1
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
        'BEGIN { d = t0 + k - now; printf "%.3f", (d > 0 ? d : 0) }')"
}

print_swap() {
    local via run out
    local -A label=(
        [rename]="file, renamed over"
        [overwrite]="file, overwritten in place"
        [put]="PUT /modules/app"
        [put-compile]="PUT /modules/app, --no-cache"
        [control]="control: GET /modules, no deploy"
        [cached]="cached"
        [compiled]="--no-cache"
    )
    echo "## Hot swap (snow --workers $WORKERS, version_one.wasm ⇄ version_two.wasm)"
    echo
    echo "Load average at the start: ${LOAD[swap]:--}. Time from the change (the rename, the first byte" \
        "of the overwrite, the PUT being sent) to the first /version/ answer from the new version," \
        "polled back to back on one keep-alive connection; $SWAP_CHANGES alternating changes each," \
        "a fresh server for the file changes and for each kind of PUT. A finished write (close, rename) is deployed at once, others after 250 ms of quiet. Both" \
        "versions were compiled into the cache beforehand; with --no-cache every change compiles."
    echo
    echo "| change | median ms | max ms | PUT answered, median ms | changes seen | failed polls | file reloads logged |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for via in "${SWAP_VIAS[@]}"; do
        echo "| ${label[$via]} | ${SWAP_MEDIAN[$via]:--} | ${SWAP_MAX[$via]:--}" \
            "| $(na_dash "${SWAP_PUT_MEDIAN[$via]:-}") | ${SWAP_OK[$via]:--} | ${SWAP_FAILED[$via]:--}" \
            "| ${SWAP_RELOADS[$via]:--} |"
    done
    echo
    echo "### Throughput through swaps (swap-load -c$SWAP_CONNECTIONS on /version/, ${SWAP_LOAD_SECS}s, a PUT every second)"
    echo
    echo "Requests per second in 100 ms windows. Near a swap is from 300 ms before its PUT to 300 ms" \
        "after the answer; the dip is the lowest window near a swap against the median of all windows." \
        "Kept after swaps: the mean rate from each PUT to 300 ms after its answer, over the median," \
        "averaged over the swaps. The control run makes the same admin calls on the same beat with" \
        "GET /modules instead of the PUT: its figures are the noise floor, and a swap's own cost is" \
        "what a run loses beyond it." \
        "Stale answers came from the old version after its PUT was answered. With --no-cache a PUT" \
        "takes longer than the beat, so the next follows its answer and the run lasts longer."
    echo
    echo "| modules | median req/s | before the first swap | lowest near a swap | dip | kept after swaps | max latency near swaps ms | elsewhere ms | PUT median ms | swaps ok | non-200 | failed | stale answers |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for run in "${SWAP_LOAD_RUNS[@]}"; do
        out="${SWAP_LOAD_OUT[$run]:-}"
        echo "| ${label[$run]} | $(field median_rps "$out") | $(field before_swaps_rps "$out") | $(field min_near_rps "$out")" \
            "| $(field dip_pct "$out")% | $(field kept_after_swaps_pct "$out")% | $(field near_max_latency_ms "$out") | $(field far_max_latency_ms "$out")" \
            "| $(field swap_median_ms "$out") | $(field swaps_ok "$out")/$(field swaps "$out")" \
            "| $(field non_200 "$out") | $(field failed "$out") | $(field stale "$out") |"
    done
    echo
    echo "A cached swap's own cost: $(difference "$(field kept_after_swaps_pct "${SWAP_LOAD_OUT[control]:-}")" \
        "$(field kept_after_swaps_pct "${SWAP_LOAD_OUT[cached]:-}")") points of throughput kept after swaps" \
        "against the control (goal: a dip of at most 10 %)."
    echo
    echo "Per window in k req/s, a second to a row; \`>\` a PUT was sent, \`*\` near a swap." \
        "Every window's counts are in $SWAP_SERIES_DIR."
    for run in "${SWAP_LOAD_RUNS[@]}"; do
        echo
        echo "${label[$run]}:"
        echo
        echo '```'
        echo "${SWAP_GRID[$run]:-(no series)}"
        echo '```'
    done
    echo
}

# swap-time prints na for what it did not measure; the table shows -.
na_dash() { [[ -n "$1" && "$1" != na ]] && echo "$1" || echo -; }
