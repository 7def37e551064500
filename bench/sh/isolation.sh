# shellcheck shell=bash
# Snow's two isolation modes side by side: one long-lived instance per worker
# against a fresh instance per request, for plain requests and parked ones.

declare -A ISO_RPS ISO_P99 ISO_PARK_OK ISO_PARK_HOLD ISO_PARK_KIB ISO_PARK_PSS
ISOLATION_MODES=(instance request)

run_isolation() {
    local mode out args
    for mode in "${ISOLATION_MODES[@]}"; do
        args=(--isolation "$mode")
        # Each parked request holds its own instance from the pool, so the
        # pool needs room beyond the parked count.
        [[ "$mode" == request ]] && args+=(--pool-size "$ISOLATION_POOL")
        start_server snow "isolation-$mode" "${args[@]}"
        warm_up "snow --isolation $mode"
        wrk_home 64 "snow-isolation-$mode"
        ISO_RPS[$mode]="$WRK_RPS"
        ISO_P99[$mode]="$WRK_P99"
        stop_server

        # A fresh server, so the memory growth is the parked requests' alone.
        start_server snow "isolation-$mode-park" "${args[@]}"
        log "snow --isolation $mode: park-load -n $ISOLATION_PARK_N"
        out="$(park_line "$ISOLATION_PARK_N")"
        stop_server
        ISO_PARK_OK[$mode]="$(field ok "$out")"
        ISO_PARK_HOLD[$mode]="$(field hold_p99_ms "$out")"
        ISO_PARK_KIB[$mode]="$(field per_request_kib "$out")"
        ISO_PARK_PSS[$mode]="$(field per_request_pss_kib "$out")"
    done
}

print_isolation() {
    local m
    echo "## Isolation (snow; /home/ wrk -t1 -c64 $DURATION; park-load n=$ISOLATION_PARK_N; request mode with --pool-size $ISOLATION_POOL)"
    echo
    echo "Load average at the start: ${LOAD[isolation]:--}."
    echo
    echo "KiB per parked request: growth of the server's RSS, and of its proportional set size (PSS), over the parked requests. Fresh instances map their module's image copy-on-write: RSS counts every mapping of a shared page again, PSS counts it once."
    echo
    echo "| isolation | req/s | p99 ms | parked ok | parked hold p99 ms | RSS KiB/parked request | PSS KiB/parked request | PSS ≤ 64 KiB |"
    echo "|---|---:|---:|---:|---:|---:|---:|:---:|"
    for m in "${ISOLATION_MODES[@]}"; do
        echo "| $m | ${ISO_RPS[$m]:--} | ${ISO_P99[$m]:--} | ${ISO_PARK_OK[$m]:--}" \
            "| ${ISO_PARK_HOLD[$m]:--} | ${ISO_PARK_KIB[$m]:--} | ${ISO_PARK_PSS[$m]:--} | $(within "${ISO_PARK_PSS[$m]:-}" 64) |"
    done
    echo "| request/instance | $(ratio "${ISO_RPS[request]:-}" "${ISO_RPS[instance]:-}")" \
        "| $(ratio "${ISO_P99[request]:-}" "${ISO_P99[instance]:-}") |" \
        "| $(ratio "${ISO_PARK_HOLD[request]:-}" "${ISO_PARK_HOLD[instance]:-}")" \
        "| $(ratio "${ISO_PARK_KIB[request]:-}" "${ISO_PARK_KIB[instance]:-}")" \
        "| $(ratio "${ISO_PARK_PSS[request]:-}" "${ISO_PARK_PSS[instance]:-}") | |"
    echo
    echo "Request isolation req/s ÷ instance: $(ratio "${ISO_RPS[request]:-}" "${ISO_RPS[instance]:-}") (goal ≥ 0.30: $(at_least "$(ratio "${ISO_RPS[request]:-}" "${ISO_RPS[instance]:-}")" 0.30))."
    echo
}
