# shellcheck shell=bash
# Resident memory per parked long request, a fresh server for each count.

declare -A PARK_OK PARK_HOLD PARK_KIB

run_park() {
    local server=$1 n out
    for n in $PARK_NS; do
        start_server "$server" "park-$n"
        log "$server: park-load -n $n"
        out="$(park_line "$n")"
        stop_server
        PARK_OK[$server,$n]="$(field ok "$out")"
        PARK_HOLD[$server,$n]="$(field hold_p99_ms "$out")"
        PARK_KIB[$server,$n]="$(field per_request_kib "$out")"
    done
}

print_park() {
    local n
    echo "## Parked requests (GET /async/?ms=5000, one per connection, fresh server per N)"
    echo
    echo "| N | snow ok | hyper ok | snow hold p99 ms | hyper hold p99 ms | snow KiB/request | hyper KiB/request | snow/hyper |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
    for n in $PARK_NS; do
        echo "| $n | ${PARK_OK[snow,$n]:--} | ${PARK_OK[hyper,$n]:--}" \
            "| ${PARK_HOLD[snow,$n]:--} | ${PARK_HOLD[hyper,$n]:--}" \
            "| ${PARK_KIB[snow,$n]:--} | ${PARK_KIB[hyper,$n]:--} | $(ratio "${PARK_KIB[snow,$n]:-}" "${PARK_KIB[hyper,$n]:-}") |"
    done
    echo
}
