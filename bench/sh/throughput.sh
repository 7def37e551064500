# shellcheck shell=bash
# /home/ throughput and latency under wrk at a few connection counts. The
# servers take turns for WRK_ROUNDS rounds and the tables show each one's
# median, so a disturbance of the machine during one run (another process,
# disk writeback) does not decide the ratio.

declare -A RPS P99 RPS_ROUNDS P99_ROUNDS
THROUGHPUT_KEYS=()

# One round for every server, snow with and without busy polling.
run_throughput_rounds() {
    local round server
    for round in $(seq "$WRK_ROUNDS"); do
        log "throughput round $round of $WRK_ROUNDS"
        for server in "${SERVERS[@]}"; do
            run_throughput "$server"
            if [[ "$server" == snow && "$SKIP_NOPOLL" != 1 ]]; then
                run_throughput snow snow-nopoll --busy-poll 0s
            fi
            if [[ "$server" == snow && -n "$SNOW_BEFORE" ]]; then
                run_throughput snow-before
            fi
        done
    done
    local key c
    for key in "${THROUGHPUT_KEYS[@]}"; do
        for c in "${CONNECTIONS[@]}"; do
            RPS[$key,$c]="$(median ${RPS_ROUNDS[$key,$c]})"
            P99[$key,$c]="$(median ${P99_ROUNDS[$key,$c]})"
        done
    done
}

# Measures $1 (snow or hyper) once and files the figures under $2 (default:
# $1); further arguments go to `snow serve`.
run_throughput() {
    local server=$1 key=${2:-$1} connections
    shift $(($# < 2 ? $# : 2))
    [[ " ${THROUGHPUT_KEYS[*]} " == *" $key "* ]] || THROUGHPUT_KEYS+=("$key")
    start_server "$server" "wrk-$key" "$@"
    warm_up "$key"
    for connections in "${CONNECTIONS[@]}"; do
        wrk_home "$connections" "$key-$connections"
        RPS_ROUNDS[$key,$connections]+="$WRK_RPS "
        P99_ROUNDS[$key,$connections]+="$WRK_P99 "
    done
    stop_server
}

print_throughput() {
    local c key
    echo "## /home/ throughput (wrk -t1, $DURATION, --workers $WORKERS, $(nproc) cores; median of $WRK_ROUNDS alternating rounds)"
    echo
    echo "| connections | snow req/s | hyper req/s | snow/hyper | snow p99 ms | hyper p99 ms | snow/hyper |"
    echo "|---:|---:|---:|---:|---:|---:|---:|"
    for c in "${CONNECTIONS[@]}"; do
        echo "| $c | ${RPS[snow,$c]:--} | ${RPS[hyper,$c]:--} | $(ratio "${RPS[snow,$c]:-}" "${RPS[hyper,$c]:-}")" \
            "| ${P99[snow,$c]:--} | ${P99[hyper,$c]:--} | $(ratio "${P99[snow,$c]:-}" "${P99[hyper,$c]:-}") |"
    done
    echo
    if [[ -n "${RPS[snow-nopoll,${CONNECTIONS[0]}]:-}" ]]; then
        echo "snow with \`--busy-poll 0s\`, its workers sleeping whenever they run out of work:"
        echo
        echo "| connections | req/s | /snow | /hyper | p99 ms |"
        echo "|---:|---:|---:|---:|---:|"
        for c in "${CONNECTIONS[@]}"; do
            echo "| $c | ${RPS[snow-nopoll,$c]:--} | $(ratio "${RPS[snow-nopoll,$c]:-}" "${RPS[snow,$c]:-}")" \
                "| $(ratio "${RPS[snow-nopoll,$c]:-}" "${RPS[hyper,$c]:-}") | ${P99[snow-nopoll,$c]:--} |"
        done
        echo
    fi
    if [[ -n "${RPS[snow-before,${CONNECTIONS[0]}]:-}" ]]; then
        echo "snow before (\`$SNOW_BEFORE\`) and after, in the same rounds:"
        echo
        echo "| connections | before req/s | after req/s | after/before | before p99 ms | after p99 ms | after/before |"
        echo "|---:|---:|---:|---:|---:|---:|---:|"
        for c in "${CONNECTIONS[@]}"; do
            echo "| $c | ${RPS[snow-before,$c]:--} | ${RPS[snow,$c]:--} | $(ratio "${RPS[snow,$c]:-}" "${RPS[snow-before,$c]:-}")" \
                "| ${P99[snow-before,$c]:--} | ${P99[snow,$c]:--} | $(ratio "${P99[snow,$c]:-}" "${P99[snow-before,$c]:-}") |"
        done
        echo
    fi
    echo "Every round, req/s:"
    echo
    echo "| server | connections | rounds |"
    echo "|---|---:|---|"
    for key in "${THROUGHPUT_KEYS[@]}"; do
        for c in "${CONNECTIONS[@]}"; do
            echo "| $key | $c | ${RPS_ROUNDS[$key,$c]% } |"
        done
    done
    echo
}
