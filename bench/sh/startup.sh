# shellcheck shell=bash
# Time from spawning `snow serve` to its first stdout line, with an empty
# compile cache and then with the one that first start filled.

STARTUP_COLD=""
STARTUP_WARM=()
STARTUP_TARGET_MS=100

run_startup() {
    local cache="$LOG_DIR/startup-cache" i cmd
    # Port 0 and no admin listener: nothing a start could collide with.
    cmd=("$SNOW" serve --listen 127.0.0.1:0 --admin off --workers "$WORKERS" --cache-dir "$cache")
    mkdir -p "$cache"
    log "snow: start-up with an empty cache"
    STARTUP_COLD="$(startup_ms "${cmd[@]}")"
    compgen -G "$cache/*" >/dev/null || log "  warning: the first start left the cache empty"
    for i in $(seq "$STARTUP_RUNS"); do
        log "snow: start-up with a warm cache ($i/$STARTUP_RUNS)"
        STARTUP_WARM+=("$(startup_ms "${cmd[@]}")")
    done
}

# One timed start; prints the milliseconds, or - when it failed.
startup_ms() {
    local out ms
    out="$("$STARTUP" -- "$@" 2>>"$LOG_DIR/snow-startup.log")" || out=""
    ms="$(field first_line_ms "$out")"
    log "  ${ms:-failed, see $LOG_DIR/snow-startup.log} ms"
    echo "${ms:--}"
}

print_startup() {
    local warm
    warm="$(median "${STARTUP_WARM[@]}")"
    echo "## Start-up (snow serve to its first stdout line, --workers $WORKERS, fresh --cache-dir)"
    echo
    echo "Load average at the start: ${LOAD[startup]:--}."
    echo
    echo "| start | ms | ≤ $STARTUP_TARGET_MS ms |"
    echo "|---|---:|:---:|"
    echo "| cold (empty cache) | ${STARTUP_COLD:--} | |"
    echo "| warm (median of $STARTUP_RUNS) | $warm | $(within "$warm" "$STARTUP_TARGET_MS") |"
    echo "| warm runs | ${STARTUP_WARM[*]:--} | |"
    echo
}
