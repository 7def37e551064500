# shellcheck shell=bash
# /home/ throughput and latency under wrk at a few connection counts.

declare -A RPS P99

# Measures $1 (snow or hyper) and files the figures under $2 (default: $1);
# further arguments go to `snow serve`.
run_throughput() {
    local server=$1 key=${2:-$1} connections
    shift $(($# < 2 ? $# : 2))
    start_server "$server" "wrk-$key" "$@"
    warm_up "$key"
    for connections in "${CONNECTIONS[@]}"; do
        wrk_home "$connections" "$key-$connections"
        RPS[$key,$connections]="$WRK_RPS"
        P99[$key,$connections]="$WRK_P99"
    done
    stop_server
}

print_throughput() {
    local c
    echo "## /home/ throughput (wrk -t1, $DURATION, --workers $WORKERS, $(nproc) cores)"
    echo
    echo "| connections | snow req/s | hyper req/s | snow/hyper | snow p99 ms | hyper p99 ms | snow/hyper |"
    echo "|---:|---:|---:|---:|---:|---:|---:|"
    for c in "${CONNECTIONS[@]}"; do
        echo "| $c | ${RPS[snow,$c]:--} | ${RPS[hyper,$c]:--} | $(ratio "${RPS[snow,$c]:-}" "${RPS[hyper,$c]:-}")" \
            "| ${P99[snow,$c]:--} | ${P99[hyper,$c]:--} | $(ratio "${P99[snow,$c]:-}" "${P99[hyper,$c]:-}") |"
    done
    echo
    [[ -n "${RPS[snow-nopoll,${CONNECTIONS[0]}]:-}" ]] || return 0
    echo "snow with \`--busy-poll 0s\`, its workers sleeping whenever they run out of work:"
    echo
    echo "| connections | req/s | /snow | /hyper | p99 ms |"
    echo "|---:|---:|---:|---:|---:|"
    for c in "${CONNECTIONS[@]}"; do
        echo "| $c | ${RPS[snow-nopoll,$c]:--} | $(ratio "${RPS[snow-nopoll,$c]:-}" "${RPS[snow,$c]:-}")" \
            "| $(ratio "${RPS[snow-nopoll,$c]:-}" "${RPS[hyper,$c]:-}") | ${P99[snow-nopoll,$c]:--} |"
    done
    echo
}
