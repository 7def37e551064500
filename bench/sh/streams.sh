# shellcheck shell=bash
# Streaming bodies: snow's proxying module (fanout.wasm /proxy/) next to
# nginx's proxy_pass, a native hyper proxy (hyper-proxy: the runtime and
# HTTP crates snow uses, no module) and the least a tokio proxy can do
# (bare-proxy: httparse and one upstream connection per client, the floor
# under snow's host) in front of the same hyper-baseline
# upstream, for a small body and for 100 MiB, with the proxy's memory; and many
# server-sent-event clients held by one snow. With SNOW_BEFORE, that binary
# proxies too, in the same rounds. The small-body runs take turns for
# STREAM_ROUNDS rounds; the table shows medians.

declare -A STREAM_RPS STREAM_P99 STREAM_ERRORS STREAM_MBS STREAM_RSS
declare -A STREAM_ROUND_RPS STREAM_ROUND_P99
STREAM_TARGETS=(direct nginx native bare snow)
STREAM_ROUNDS="${STREAM_ROUNDS:-3}"
NGINX_OK=0
SSE_OUT=""

run_streams() {
    start_upstream
    if start_nginx; then
        NGINX_OK=1
    else
        log "nginx unavailable: its rows are left out (apt-get install nginx-light)"
    fi
    local PROBE_PATH=/home/
    start_server hyper-proxy streams-native --upstream "$UPSTREAM"
    NATIVE_PROXY="$ADDR" NATIVE_PROXY_PID="$SERVER_PID"
    start_server bare-proxy streams-bare --upstream "$UPSTREAM"
    BARE_PROXY="$ADDR" BARE_PROXY_PID="$SERVER_PID"
    PROBE_PATH=/health/
    start_server snow streams-proxy "$FANOUT" --allow-outbound "http://$UPSTREAM"
    SNOW_PROXY="$ADDR" SNOW_PROXY_PID="$SERVER_PID"
    local -A small=(
        [direct]="http://$UPSTREAM/home/"
        [nginx]="http://$NGINX_ADDR/home/"
        [native]="http://$NATIVE_PROXY/home/"
        [bare]="http://$BARE_PROXY/home/"
        [snow]="http://$SNOW_PROXY/proxy/?url=http://$UPSTREAM/home/"
    )
    local -A big=(
        [direct]="http://$UPSTREAM/big/"
        [nginx]="http://$NGINX_ADDR/big/"
        [native]="http://$NATIVE_PROXY/big/"
        [bare]="http://$BARE_PROXY/big/"
        [snow]="http://$SNOW_PROXY/proxy/?url=http://$UPSTREAM/big/"
    )
    if [[ -n "$SNOW_BEFORE" ]] && [[ " ${STREAM_TARGETS[*]} " != *" before "* ]]; then
        STREAM_TARGETS+=(before)
    fi
    if [[ " ${STREAM_TARGETS[*]} " == *" before "* ]]; then
        start_server snow-before streams-proxy "${FANOUT_BEFORE:-$FANOUT}" --allow-outbound "http://$UPSTREAM"
        BEFORE_PROXY="$ADDR" BEFORE_PROXY_PID="$SERVER_PID"
        small[before]="http://$BEFORE_PROXY/proxy/?url=http://$UPSTREAM/home/"
        big[before]="http://$BEFORE_PROXY/proxy/?url=http://$UPSTREAM/big/"
    fi
    local target before round
    for target in "${STREAM_TARGETS[@]}"; do
        [[ "$target" != nginx || "$NGINX_OK" == 1 ]] || continue
        warm_up "$target small" "${small[$target]}"
    done
    for ((round = 1; round <= STREAM_ROUNDS; round++)); do
        for target in "${STREAM_TARGETS[@]}"; do
            [[ "$target" != nginx || "$NGINX_OK" == 1 ]] || continue
            wrk_url "$PROXY_CONNECTIONS" "streams-small-$target-$round" "${small[$target]}"
            STREAM_ROUND_RPS[$target]+=" $WRK_RPS" STREAM_ROUND_P99[$target]+=" $WRK_P99"
            STREAM_ERRORS[$target]="${STREAM_ERRORS[$target]:-0}"
            [[ "$WRK_ERRORS" =~ ^[0-9]+$ ]] && STREAM_ERRORS[$target]=$((STREAM_ERRORS[$target] + WRK_ERRORS))
        done
    done
    for target in "${STREAM_TARGETS[@]}"; do
        # Unquoted: each round's figure is one argument.
        # shellcheck disable=SC2086
        STREAM_RPS[$target]="$(median ${STREAM_ROUND_RPS[$target]:-})"
        # shellcheck disable=SC2086
        STREAM_P99[$target]="$(median ${STREAM_ROUND_P99[$target]:-})"
    done
    for target in "${STREAM_TARGETS[@]}"; do
        [[ "$target" != nginx || "$NGINX_OK" == 1 ]] || continue
        before="$(proxy_rss "$target")"
        wrk_url "$BIG_CONNECTIONS" "streams-big-$target" "${big[$target]}"
        STREAM_MBS[$target]="$(transfer_mbs "$LOG_DIR/wrk-streams-big-$target.txt")"
        STREAM_RSS[$target]="$(awk -v a="$(proxy_rss "$target")" -v b="$before" \
            'BEGIN { if (a ~ /^[0-9]+$/ && b ~ /^[0-9]+$/) print a - b; else print "-" }')"
    done
    SERVER_PID="$SNOW_PROXY_PID"
    stop_server
    SERVER_PID="$NATIVE_PROXY_PID"
    stop_server
    SERVER_PID="$BARE_PROXY_PID"
    stop_server
    if [[ -n "${BEFORE_PROXY_PID:-}" ]]; then
        SERVER_PID="$BEFORE_PROXY_PID"
        stop_server
    fi
    stop_nginx
    stop_upstream

    PROBE_PATH=/home/
    start_server snow streams-sse
    log "snow: $SSE_CLIENTS server-sent event streams, an event a second for ${SSE_EVENTS}s"
    SSE_OUT="$("$PARK" --url "http://$ADDR/events/?ms=1000&count=$SSE_EVENTS" -n "$SSE_CLIENTS" \
        --pid "$SERVER_PID" --expect "*tick $SSE_EVENTS" --timeout 120s 2>&1 | tail -n 1)"
    log "  $SSE_OUT"
    stop_server
}

# nginx in front of the upstream, on a free port, with keep-alive to it and
# as many workers as snow has; sets NGINX_ADDR and NGINX_PID.
start_nginx() {
    apt_install nginx-light >/dev/null 2>&1 || apt_install nginx >/dev/null 2>&1 || true
    local nginx
    nginx="$(command -v nginx || echo /usr/sbin/nginx)"
    [[ -x "$nginx" ]] || return 1
    local dir="$LOG_DIR/nginx" port
    mkdir -p "$dir"
    # Started as root, nginx's workers run as an unprivileged user, and
    # buffer large answers to files under $dir (its default for proxying):
    # they must reach it.
    chmod 711 "$LOG_DIR"
    chmod 777 "$dir"
    port="$(free_port)"
    NGINX_ADDR="127.0.0.1:$port"
    cat >"$dir/nginx.conf" <<EOF
daemon off;
worker_processes $WORKERS;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    upstream upstream { server $UPSTREAM; keepalive 64; }
    server {
        listen $NGINX_ADDR;
        location / {
            proxy_pass http://upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    "$nginx" -c "$dir/nginx.conf" -p "$dir" >"$dir/stdout.log" 2>&1 &
    NGINX_PID=$!
    HELPER_PIDS+=("$NGINX_PID")
    local deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        kill -0 "$NGINX_PID" 2>/dev/null || { tail -n 5 "$dir/error.log" >&2; return 1; }
        curl -sf -o /dev/null --max-time 1 "http://$NGINX_ADDR/home/" && return 0
        sleep 0.1
    done
    return 1
}

stop_nginx() {
    [[ -n "${NGINX_PID:-}" ]] || return 0
    kill "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
    NGINX_PID=""
    # What nginx complained of explains its errors in the table.
    if [[ -s "$LOG_DIR/nginx/error.log" ]]; then
        log "nginx's error log ends with:"
        tail -n 5 "$LOG_DIR/nginx/error.log" | sed 's/^/  /' >&2
    fi
}

# Resident KiB of the proxy process for $1 (nginx: master and workers).
proxy_rss() {
    case "$1" in
        snow) awk '/^VmRSS:/ { print $2 }' "/proc/$SNOW_PROXY_PID/status" ;;
        native) awk '/^VmRSS:/ { print $2 }' "/proc/$NATIVE_PROXY_PID/status" ;;
        bare) awk '/^VmRSS:/ { print $2 }' "/proc/$BARE_PROXY_PID/status" ;;
        before) awk '/^VmRSS:/ { print $2 }' "/proc/$BEFORE_PROXY_PID/status" ;;
        nginx) pgrep -f "nginx.*$LOG_DIR/nginx" | while read -r pid; do
                awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null
            done | awk '{ n += $1 } END { print n + 0 }' ;;
        *) echo - ;;
    esac
}

# wrk's "Transfer/sec: 1.23GB" as MB/s (MiB, as wrk counts).
transfer_mbs() {
    awk '/^Transfer\/sec:/ {
        n = $2; unit = $2
        sub(/[A-Za-z]+$/, "", n); sub(/^[0-9.]+/, "", unit)
        scale = unit == "GB" ? 1024 : unit == "MB" ? 1 : unit == "KB" ? 1 / 1024 : 1 / 1048576
        printf "%.0f", n * scale
    }' "$1"
}

print_streams() {
    local t
    local -A label=(
        [direct]="upstream direct"
        [nginx]="nginx proxy_pass (keep-alive, $WORKERS workers)"
        [native]="native hyper proxy (hyper-proxy, $WORKERS workers)"
        [bare]="bare tokio proxy (bare-proxy, $WORKERS workers)"
        [snow]="snow fanout.wasm /proxy/ (streamed)"
        [before]="snow before (SNOW_BEFORE), same module"
    )
    echo "## Streaming (upstream: hyper-baseline --workers $WORKERS; wrk -t1, $DURATION; small: median of $STREAM_ROUNDS rounds)"
    echo
    echo "Load average at the start: ${LOAD[streams]:--}. Small: GET /home/ (4 bytes), -c$PROXY_CONNECTIONS." \
        "Large: GET /big/ (100 MiB), -c$BIG_CONNECTIONS; RSS growth is the proxy's, over the large run."
    [[ "$NGINX_OK" == 1 ]] || echo "nginx could not be installed or started: its rows are missing."
    echo
    echo "| path | small req/s | small p99 ms | × direct | large MB/s | proxy RSS growth KiB |"
    echo "|---|---:|---:|---:|---:|---:|"
    for t in "${STREAM_TARGETS[@]}"; do
        echo "| ${label[$t]} | ${STREAM_RPS[$t]:--} | ${STREAM_P99[$t]:--}" \
            "| $(ratio "${STREAM_RPS[$t]:-}" "${STREAM_RPS[direct]:-}") | ${STREAM_MBS[$t]:--} | ${STREAM_RSS[$t]:--} |"
    done
    echo "| snow ÷ nginx | $(ratio "${STREAM_RPS[snow]:-}" "${STREAM_RPS[nginx]:-}")" \
        "| $(ratio "${STREAM_P99[snow]:-}" "${STREAM_P99[nginx]:-}") | | $(ratio "${STREAM_MBS[snow]:-}" "${STREAM_MBS[nginx]:-}") | |"
    echo "| snow ÷ native hyper proxy | $(ratio "${STREAM_RPS[snow]:-}" "${STREAM_RPS[native]:-}")" \
        "| $(ratio "${STREAM_P99[snow]:-}" "${STREAM_P99[native]:-}") | | $(ratio "${STREAM_MBS[snow]:-}" "${STREAM_MBS[native]:-}") | |"
    echo "| native hyper proxy ÷ nginx | $(ratio "${STREAM_RPS[native]:-}" "${STREAM_RPS[nginx]:-}")" \
        "| $(ratio "${STREAM_P99[native]:-}" "${STREAM_P99[nginx]:-}") | | $(ratio "${STREAM_MBS[native]:-}" "${STREAM_MBS[nginx]:-}") | |"
    echo "| snow ÷ bare tokio proxy | $(ratio "${STREAM_RPS[snow]:-}" "${STREAM_RPS[bare]:-}")" \
        "| $(ratio "${STREAM_P99[snow]:-}" "${STREAM_P99[bare]:-}") | | $(ratio "${STREAM_MBS[snow]:-}" "${STREAM_MBS[bare]:-}") | |"
    echo "| bare tokio proxy ÷ nginx | $(ratio "${STREAM_RPS[bare]:-}" "${STREAM_RPS[nginx]:-}")" \
        "| $(ratio "${STREAM_P99[bare]:-}" "${STREAM_P99[nginx]:-}") | | $(ratio "${STREAM_MBS[bare]:-}" "${STREAM_MBS[nginx]:-}") | |"
    if [[ -n "${STREAM_RPS[before]:-}" ]]; then
        echo "| snow ÷ snow before | $(ratio "${STREAM_RPS[snow]:-}" "${STREAM_RPS[before]:-}")" \
            "| $(ratio "${STREAM_P99[snow]:-}" "${STREAM_P99[before]:-}") | | $(ratio "${STREAM_MBS[snow]:-}" "${STREAM_MBS[before]:-}") | |"
    fi
    echo
    echo "### $SSE_CLIENTS server-sent event clients on one snow (default app, /events/?ms=1000&count=$SSE_EVENTS)"
    echo
    echo "| clients ok | KiB per client (RSS) | KiB per client (PSS) | event $SSE_EVENTS p99 ms |"
    echo "|---:|---:|---:|---:|"
    echo "| $(field ok "$SSE_OUT")/$SSE_CLIENTS | $(field per_request_kib "$SSE_OUT") | $(field per_request_pss_kib "$SSE_OUT") | $(field hold_p99_ms "$SSE_OUT") |"
    echo
}
