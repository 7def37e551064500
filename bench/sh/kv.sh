# shellcheck shell=bash
# Key-value stores: an increment through guest/counter, against /home/ of
# the default app on the same host (memory store), and against Redis itself
# under redis-benchmark at the same concurrency (Redis store). Rounds
# alternate the runs so a burst of other work does not land on one only.

declare -A KV_RPS KV_P99 KV_ERRORS
KV_ROWS=()

run_kv() {
    local round post="$LOG_DIR/kv-post.lua" redis_port="" redis_pid=""
    printf 'wrk.method = "POST"\n' >"$post"
    KV_ROWS=(home memory)
    if apt_install redis-server && command -v redis-benchmark >/dev/null; then
        redis_port="$(free_port)"
        redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
            --daemonize no >"$LOG_DIR/redis.log" 2>&1 &
        redis_pid=$!
        HELPER_PIDS+=("$redis_pid")
        for _ in $(seq 50); do
            redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
            sleep 0.1
        done
        KV_ROWS+=(redis-benchmark redis)
    else
        log "redis-server unavailable: the Redis rows are skipped"
    fi
    for round in $(seq "$KV_ROUNDS"); do
        kv_snow home "$round" "http://\$ADDR/home/" ""
        kv_snow memory "$round" "http://\$ADDR/counter/x/incr" "$post" "$COUNTER"
        if [[ -n "$redis_port" ]]; then
            kv_redis_benchmark "$round" "$redis_port"
            kv_snow redis "$round" "http://\$ADDR/counter/x/incr" "$post" "$COUNTER" \
                --store "default=redis://127.0.0.1:$redis_port/0"
        fi
    done
    if [[ -n "$redis_pid" ]]; then
        kill "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
}

# One wrk run of row $1 (round $2) on URL $3 (with $ADDR left to expand
# once the server is up), script $4; the rest starts snow.
kv_snow() {
    local row=$1 round=$2 url=$3 script=$4
    shift 4
    # guest/counter has no /home/; a counter read answers 200.
    local PROBE_PATH=/home/
    [[ -z "$script" ]] || PROBE_PATH=/counter/probe
    start_server snow "kv-$row-$round" "$@"
    url="${url//\$ADDR/$ADDR}"
    [[ -z "$script" ]] || curl -sf -o /dev/null -X POST "$url" || die "$row: $url does not answer"
    warm_up "kv $row" "$url"
    wrk_url "$KV_CONNECTIONS" "kv-$row-$round" "$url" "$script"
    kv_record "$row" "$WRK_RPS" "$WRK_P99" "$WRK_ERRORS"
    stop_server
}

kv_redis_benchmark() {
    local round=$1 port=$2 out rps
    log "redis-benchmark -t incr -c $KV_CONNECTIONS (round $round)"
    out="$(redis-benchmark -p "$port" -t incr -c "$KV_CONNECTIONS" -n "$KV_REDIS_REQUESTS" -q 2>&1 | tr '\r' '\n')"
    printf '%s\n' "$out" >"$LOG_DIR/redis-benchmark-$round.txt"
    # "INCR: 98231.83 requests per second, p50=0.327 msec"
    rps="$(awk '/^INCR:/ { print $2 }' <<<"$out" | tail -n 1)"
    log "  ${rps:--} req/s"
    kv_record redis-benchmark "${rps:--}" - 0
}

# Keeps the median's inputs: every round's rate per row.
kv_record() {
    KV_RPS[$1]+="$2 "
    KV_P99[$1]+="$3 "
    KV_ERRORS[$1]=$((${KV_ERRORS[$1]:-0} + ${4:-0}))
}

print_kv() {
    local row rps p99 home redis label
    echo "## Key-value stores (wrk -t1 -c$KV_CONNECTIONS, $DURATION; --workers $WORKERS; median of $KV_ROUNDS rounds)"
    echo
    echo "| run | req/s | p99 ms | errors | ratio |"
    echo "|---|---:|---:|---:|---|"
    home="$(median ${KV_RPS[home]})"
    redis="$(median ${KV_RPS[redis-benchmark]:-})"
    for row in "${KV_ROWS[@]}"; do
        rps="$(median ${KV_RPS[$row]})"
        p99="$(median ${KV_P99[$row]})"
        case "$row" in
            home) label="snow /home/ (default app)"; ratio="1.00 (reference)" ;;
            memory) label="snow POST /counter/x/incr, memory store"; ratio="$(kv_ratio "$rps" "$home") × /home/ (goal ≥ 0.70)" ;;
            redis-benchmark) label="redis-benchmark -t incr -c $KV_CONNECTIONS"; ratio="1.00 (reference)" ;;
            redis) label="snow POST /counter/x/incr, Redis store"; ratio="$(kv_ratio "$rps" "$redis") × redis-benchmark (goal ≥ 0.50)" ;;
        esac
        echo "| $label | $rps | $p99 | ${KV_ERRORS[$row]:-0} | $ratio |"
    done
    echo
}

kv_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }
