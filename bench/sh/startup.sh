# shellcheck shell=bash
# Start-up of the default app: from spawning `snow serve` to its first
# answer to /home/, with an empty compile cache (tiered: Winch's build
# serves while Cranelift's compiles; and Cranelift alone, as before tiers),
# then with the cache the first start filled. And each compiler's /home/
# throughput, since the tiered start serves slower code for a moment.

STARTUP_COLD_TIERED=""
STARTUP_COLD_CRANELIFT_IN=""
STARTUP_COLD_CRANELIFT=""
STARTUP_WARM=()
STARTUP_TARGET_MS=100
declare -A TIER_RPS TIER_P99
TIERS=(winch cranelift)

run_startup() {
    local i cache cmd out compiler
    log "snow: start-up with an empty cache (tiered)"
    cache="$(fresh_cache tiered)"
    out="$(startup_line --until-log "cranelift's build replaced" -- \
        "$SNOW" serve --listen 127.0.0.1:0 --admin off --workers "$WORKERS" --cache-dir "$cache")"
    STARTUP_COLD_TIERED="$(field first_answer_ms "$out")"
    STARTUP_COLD_CRANELIFT_IN="$(field log_ms "$out")"
    compgen -G "$cache/*.cwasm" >/dev/null || log "  warning: cranelift's build was not cached"
    cmd=("$SNOW" serve --listen 127.0.0.1:0 --admin off --workers "$WORKERS" --cache-dir "$cache")
    for i in $(seq "$STARTUP_RUNS"); do
        log "snow: start-up with a warm cache ($i/$STARTUP_RUNS)"
        out="$(startup_line -- "${cmd[@]}")"
        STARTUP_WARM+=("$(field first_answer_ms "$out")")
    done
    log "snow: start-up with an empty cache (--compiler cranelift)"
    out="$(startup_line -- "$SNOW" serve --listen 127.0.0.1:0 --admin off --workers "$WORKERS" \
        --cache-dir "$(fresh_cache cranelift)" --compiler cranelift)"
    STARTUP_COLD_CRANELIFT="$(field first_answer_ms "$out")"

    for compiler in "${TIERS[@]}"; do
        start_server snow "tier-$compiler" --compiler "$compiler" --cache-dir "$(fresh_cache "wrk-$compiler")"
        warm_up "snow --compiler $compiler"
        wrk_home 64 "snow-tier-$compiler"
        TIER_RPS[$compiler]="$WRK_RPS"
        TIER_P99[$compiler]="$WRK_P99"
        stop_server
    done
}

fresh_cache() {
    local dir="$LOG_DIR/startup-cache-$1"
    rm -rf "$dir"
    mkdir -p "$dir"
    echo "$dir"
}

# One timed start with /home/ requested; prints startup-time's line, or
# nothing when it failed.
startup_line() {
    local out
    out="$("$STARTUP" --request /home/ "$@" 2>>"$LOG_DIR/snow-startup.log")" || out=""
    log "  ${out:-failed, see $LOG_DIR/snow-startup.log}"
    printf '%s\n' "$out"
}

print_startup() {
    local warm c
    warm="$(median "${STARTUP_WARM[@]}")"
    echo "## Start-up (snow serve to its first /home/ answer, --workers $WORKERS, fresh --cache-dir)"
    echo
    echo "Load average at the start: ${LOAD[startup]:--}."
    echo
    echo "| start | ms to first answer | ≤ $STARTUP_TARGET_MS ms |"
    echo "|---|---:|:---:|"
    echo "| cold, tiered (default): Winch's build serves | ${STARTUP_COLD_TIERED:--} | $(within "$STARTUP_COLD_TIERED" "$STARTUP_TARGET_MS") |"
    echo "| … until Cranelift's build replaced it | ${STARTUP_COLD_CRANELIFT_IN:--} | |"
    echo "| cold, --compiler cranelift | ${STARTUP_COLD_CRANELIFT:--} | $(within "$STARTUP_COLD_CRANELIFT" "$STARTUP_TARGET_MS") |"
    echo "| cranelift/tiered | $(ratio "$STARTUP_COLD_CRANELIFT" "$STARTUP_COLD_TIERED") | |"
    echo "| warm (median of $STARTUP_RUNS) | $warm | $(within "$warm" "$STARTUP_TARGET_MS") |"
    echo "| warm runs | ${STARTUP_WARM[*]:--} | |"
    echo
    echo "Each compiler's code (wrk -t1 -c64 $DURATION /home/, --compiler winch or cranelift):"
    echo
    echo "| compiler | req/s | p99 ms |"
    echo "|---|---:|---:|"
    for c in "${TIERS[@]}"; do
        echo "| $c | ${TIER_RPS[$c]:--} | ${TIER_P99[$c]:--} |"
    done
    echo "| winch/cranelift | $(ratio "${TIER_RPS[winch]:-}" "${TIER_RPS[cranelift]:-}") | $(ratio "${TIER_P99[winch]:-}" "${TIER_P99[cranelift]:-}") |"
    echo
}
