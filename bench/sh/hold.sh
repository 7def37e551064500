# shellcheck shell=bash
# /home/ latency while hostile clients hold connections open: stalled ones
# that sent part of a request head (slowloris) and idle keep-alive ones.
# The point is what they cost everyone else, so the server's own header and
# idle timeouts are raised well past the hold: nothing may be closed during
# the measurement, and the table shows that nothing was.

declare -A HOLD_RPS_ALONE HOLD_P99_ALONE HOLD_RPS HOLD_P99 HOLD_OPEN_STALLED HOLD_OPEN_IDLE
HOLD_CONNECTIONS=64
HOLD_P99_TARGET_MS=50

run_hold() {
    local server=$1 hold_secs timeout file pid out
    # Long enough to cover the wrk run that starts once all are in place.
    hold_secs=$(($(to_seconds "$DURATION") + 5))
    # hold-conns gives up on setting up after 30s; the timeouts cover that too.
    timeout=$((hold_secs + 45))
    ((timeout >= 60)) || timeout=60
    HOLD_TIMEOUT="${timeout}s"
    start_server "$server" hold --header-timeout "$HOLD_TIMEOUT" --idle-timeout "$HOLD_TIMEOUT"
    warm_up "$server"
    wrk_home "$HOLD_CONNECTIONS" "$server-alone"
    HOLD_RPS_ALONE[$server]="$WRK_RPS"
    HOLD_P99_ALONE[$server]="$WRK_P99"

    file="$LOG_DIR/hold-$server.txt"
    log "$server: holding $HOLD_STALLED stalled + $HOLD_IDLE idle connections"
    "$HOLD" --url "http://$ADDR" --stalled "$HOLD_STALLED" --idle "$HOLD_IDLE" \
        --hold "${hold_secs}s" ${HOLD_DRIP:+--drip "$HOLD_DRIP"} >"$file" 2>&1 &
    pid=$!
    HELPER_PIDS+=("$pid")
    if wait_for_line "$pid" "$file" '^ready' 60; then
        log "  $(grep '^ready' "$file")"
        wrk_home "$HOLD_CONNECTIONS" "$server-held"
        HOLD_RPS[$server]="$WRK_RPS"
        HOLD_P99[$server]="$WRK_P99"
    else
        log "  hold-conns never got its connections in place"
        kill "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    out="$(tail -n 1 "$file")"
    log "  $out"
    HOLD_OPEN_STALLED[$server]="$(field open_stalled "$out")/$(field opened_stalled "$out")"
    HOLD_OPEN_IDLE[$server]="$(field open_idle "$out")/$(field opened_idle "$out")"
    stop_server
}

# Waits up to $4 seconds for a line matching $3 in $2, written by process $1.
wait_for_line() {
    local pid=$1 file=$2 pattern=$3 deadline=$((SECONDS + $4))
    while ((SECONDS < deadline)); do
        grep -q "$pattern" "$file" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

print_hold() {
    local s
    echo "## Hostile clients ($HOLD_STALLED stalled + $HOLD_IDLE idle connections held; wrk -t1 -c$HOLD_CONNECTIONS /home/, $DURATION)"
    echo
    echo "Load average at the start: ${LOAD[hold]:--}. snow ran with --header-timeout/--idle-timeout ${HOLD_TIMEOUT:--}${HOLD_DRIP:+; stalled connections dripped a byte every $HOLD_DRIP}."
    echo
    echo "| server | req/s alone | req/s held | held/alone | p99 ms alone | p99 ms held | p99 change ms | held p99 ≤ $HOLD_P99_TARGET_MS ms | stalled open/opened | idle open/opened |"
    echo "|---|---:|---:|---:|---:|---:|---:|:---:|---:|---:|"
    for s in "${SERVERS[@]}"; do
        echo "| $s | ${HOLD_RPS_ALONE[$s]:--} | ${HOLD_RPS[$s]:--} | $(ratio "${HOLD_RPS[$s]:-}" "${HOLD_RPS_ALONE[$s]:-}")" \
            "| ${HOLD_P99_ALONE[$s]:--} | ${HOLD_P99[$s]:--} | $(difference "${HOLD_P99[$s]:-}" "${HOLD_P99_ALONE[$s]:-}")" \
            "| $(within "${HOLD_P99[$s]:-}" "$HOLD_P99_TARGET_MS") | ${HOLD_OPEN_STALLED[$s]:--} | ${HOLD_OPEN_IDLE[$s]:--} |"
    done
    echo
}
