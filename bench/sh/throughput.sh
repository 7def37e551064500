# shellcheck shell=bash
# /home/ throughput and latency under wrk at a few connection counts.

declare -A RPS P99

run_throughput() {
    local server=$1 connections
    start_server "$server" wrk
    warm_up "$server"
    for connections in "${CONNECTIONS[@]}"; do
        wrk_home "$connections" "$server-$connections"
        RPS[$server,$connections]="$WRK_RPS"
        P99[$server,$connections]="$WRK_P99"
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
}
