# shellcheck shell=bash
# Snow's outbound HTTP client against a local hyper-baseline upstream: how
# fast `snow fetch` gets through a list of URLs next to curl (and oha, when
# installed), and what relaying through a module's /proxy/ route costs next
# to asking the upstream directly.

declare -A FETCH_WALL FETCH_OK FETCH_RUNS
OUTBOUND_CLIENTS=()
PROXY_TARGETS=(direct proxy)
declare -A PROXY_RPS PROXY_P99 PROXY_ERRORS

run_outbound() {
    local urls="$LOG_DIR/outbound-urls.txt" config="$LOG_DIR/outbound-curl.cfg" run client
    start_upstream
    # Distinct URLs, so no client can answer one from another's response.
    seq "$OUTBOUND_REQUESTS" | sed "s|^|http://$UPSTREAM/home/?i=|" >"$urls"
    # curl pairs each `output` with one URL; a single -o would only cover
    # the first, and the other bodies would land in the status file.
    sed 's|.*|url = "&"\noutput = "/dev/null"|' "$urls" >"$config"

    OUTBOUND_CLIENTS=(snow curl)
    if command -v oha >/dev/null && oha --help 2>&1 | grep -q -- --urls-from-file; then
        OUTBOUND_CLIENTS+=(oha)
    else
        log "oha not installed (or without --urls-from-file), left out"
    fi
    # Rounds rather than each client's runs back to back, so a burst of
    # other work on the machine does not land on one client only.
    for run in $(seq "$OUTBOUND_RUNS"); do
        for client in "${OUTBOUND_CLIENTS[@]}"; do
            fetch_run "$client" "$run" "$urls" "$config"
        done
    done

    if [[ "$OUTBOUND_WRK" == 1 ]]; then
        run_proxy
    else
        log "wrk unavailable, proxy runs skipped"
    fi
    stop_upstream
}

# hyper-baseline on a fresh port, kept running next to the servers that
# start_server starts; sets UPSTREAM (host:port).
start_upstream() {
    start_server hyper outbound-upstream
    UPSTREAM="$ADDR"
    UPSTREAM_PID="$SERVER_PID"
    SERVER_PID=""
    HELPER_PIDS+=("$UPSTREAM_PID")
}

stop_upstream() {
    SERVER_PID="$UPSTREAM_PID"
    stop_server
}

# One timed run of client $1 over the URLs in $3 (curl reads $4). The clock
# runs from spawning the client to its exit, the same for every client, so
# start-up and reading the list are included. Records the wall time and the
# answers below 400.
fetch_run() {
    local client=$1 run=$2 urls=$3 config=$4 out="$LOG_DIR/outbound-$1-$2"
    local start end ok wall
    log "$client: $OUTBOUND_REQUESTS URLs, $OUTBOUND_CONCURRENCY in flight (run $run/$OUTBOUND_RUNS)"
    start="$EPOCHREALTIME"
    case "$client" in
        snow) "$SNOW" fetch - -c "$OUTBOUND_CONCURRENCY" <"$urls" >"$out.out" 2>"$out.err" ;;
        # -q first: no ~/.curlrc. One status line per transfer is the only
        # stdout, to count what succeeded.
        curl) curl -q -sS --parallel --parallel-max "$OUTBOUND_CONCURRENCY" \
            --config "$config" -w '%{http_code}\n' >"$out.out" 2>"$out.err" ;;
        # oha picks its URLs from the file given in place of the URL.
        oha) oha --no-tui -n "$OUTBOUND_REQUESTS" -c "$OUTBOUND_CONCURRENCY" \
            --urls-from-file "$urls" >"$out.out" 2>"$out.err" ;;
    esac
    end="$EPOCHREALTIME"
    case "$client" in
        snow)
            ok="$(awk '/ total, / { print $3 }' "$out.err")"
            log "  $(grep ' total, ' "$out.err" || echo 'no summary line')"
            ;;
        curl) ok="$(awk '$1 >= 200 && $1 < 400 { n++ } END { print n + 0 }' "$out.out")" ;;
        # "  [200] 10000 responses" under "Status code distribution".
        oha) ok="$(awk '$1 ~ /^\[[23][0-9][0-9]\]$/ && $3 ~ /^responses/ { n += $2 } END { print n + 0 }' "$out.out")" ;;
    esac
    ok="${ok:-0}"
    wall="$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')"
    log "  ${wall}s, $ok/$OUTBOUND_REQUESTS below 400"
    FETCH_RUNS[$client]+="${FETCH_RUNS[$client]:+ }$wall"
    # A run that lost requests may have been fast by failing; it cannot be
    # the best.
    if ((ok == OUTBOUND_REQUESTS)) &&
        { [[ -z "${FETCH_WALL[$client]:-}" ]] || awk -v a="$wall" -v b="${FETCH_WALL[$client]}" 'BEGIN { exit !(a < b) }'; }; then
        FETCH_WALL[$client]="$wall"
    fi
    # The best run's count, or the latest when none got everything through.
    [[ "${FETCH_OK[$client]:-}" == "$OUTBOUND_REQUESTS" ]] || FETCH_OK[$client]="$ok"
}

# wrk on the upstream's /home/, then through snow's /proxy/ to the same.
run_proxy() {
    local direct="http://$UPSTREAM/home/" proxied body
    # The module has no /home/; /health/ answers without going out.
    # shellcheck disable=SC2034 # read by start_server
    local PROBE_PATH=/health/
    start_server snow outbound-proxy "$FANOUT" --allow-outbound "http://$UPSTREAM"
    proxied="http://$ADDR/proxy/?url=$direct"
    # A denied or failing fetch answers fast with a 502; the rate of those
    # would say nothing about the proxy.
    body="$(curl -sS --max-time 5 "$proxied" 2>&1)" || true
    [[ "$body" == home ]] || log "warning: /proxy/ answered '${body:0:200}', not 'home'"

    warm_up "upstream direct" "$direct"
    wrk_url "$PROXY_CONNECTIONS" outbound-direct "$direct"
    PROXY_RPS[direct]="$WRK_RPS" PROXY_P99[direct]="$WRK_P99" PROXY_ERRORS[direct]="$WRK_ERRORS"
    warm_up "snow /proxy/" "$proxied"
    wrk_url "$PROXY_CONNECTIONS" outbound-proxy "$proxied"
    PROXY_RPS[proxy]="$WRK_RPS" PROXY_P99[proxy]="$WRK_P99" PROXY_ERRORS[proxy]="$WRK_ERRORS"
    stop_server
}

# Requests per second from a wall time, or - without one.
per_second() {
    awk -v n="$OUTBOUND_REQUESTS" -v s="${1:--}" 'BEGIN {
        if (s !~ /^[0-9.]+$/ || s + 0 == 0) print "-"
        else printf "%.0f", n / s
    }'
}

print_outbound() {
    local c t
    local -A label=(
        [snow]="snow fetch -c $OUTBOUND_CONCURRENCY"
        [curl]="curl --parallel --parallel-max $OUTBOUND_CONCURRENCY"
        [oha]="oha -c $OUTBOUND_CONCURRENCY"
        [direct]="upstream /home/"
        [proxy]="snow /proxy/ → upstream /home/"
    )
    echo "## Outbound (upstream: hyper-baseline --workers $WORKERS on loopback)"
    echo
    echo "Load average at the start: ${LOAD[outbound]:--}."
    echo
    echo "### Fetching $OUTBOUND_REQUESTS distinct /home/?i=N URLs, $OUTBOUND_CONCURRENCY in flight (best of $OUTBOUND_RUNS)"
    echo
    echo "Wall time from spawning the client to its exit, start-up and reading the URL list" \
        "included; only runs with every answer below 400 count. snow fetch and curl each run on one thread${FETCH_RUNS[oha]:+, oha on every core}."
    echo
    echo "| client | wall s | req/s | below 400 | every run, s |"
    echo "|---|---:|---:|---:|---|"
    for c in "${OUTBOUND_CLIENTS[@]}"; do
        echo "| ${label[$c]} | ${FETCH_WALL[$c]:--} | $(per_second "${FETCH_WALL[$c]:-}")" \
            "| ${FETCH_OK[$c]:--}/$OUTBOUND_REQUESTS | ${FETCH_RUNS[$c]:--} |"
    done
    echo "| snow/curl | $(ratio "${FETCH_WALL[snow]:-}" "${FETCH_WALL[curl]:-}")" \
        "| $(ratio "$(per_second "${FETCH_WALL[snow]:-}")" "$(per_second "${FETCH_WALL[curl]:-}")") | | |"
    echo
    [[ "$OUTBOUND_WRK" == 1 ]] || return 0
    echo "### Proxy (wrk -t1 -c$PROXY_CONNECTIONS, $DURATION; snow --workers $WORKERS fanout.wasm, GET /proxy/?url=upstream /home/)"
    echo
    echo "The upstream, snow and wrk share the machine's $(nproc) cores."
    echo
    echo "| target | req/s | p99 ms | errors |"
    echo "|---|---:|---:|---:|"
    for t in "${PROXY_TARGETS[@]}"; do
        echo "| ${label[$t]} | ${PROXY_RPS[$t]:--} | ${PROXY_P99[$t]:--} | ${PROXY_ERRORS[$t]:--} |"
    done
    echo "| proxy/direct | $(ratio "${PROXY_RPS[proxy]:-}" "${PROXY_RPS[direct]:-}")" \
        "| $(ratio "${PROXY_P99[proxy]:-}" "${PROXY_P99[direct]:-}") | |"
    echo
}
