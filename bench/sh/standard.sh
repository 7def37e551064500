# shellcheck shell=bash
# Standard `wasi:http/proxy` components: the default app built with the
# SDK's `wasi-http` feature, served by Snow (a fresh instance per request,
# the default for such components, and reused instances) and by `wasmtime
# serve` when it is installed, beside the native Snow build of the same app.

declare -A STD_RPS STD_P99
STD_ROWS=(snow-module snow-standard snow-standard-reuse wasmtime-serve wasmtime-serve-pooling)

run_standard() {
    start_server snow standard-module
    warm_up "snow, Snow module"
    wrk_home 64 snow-module
    STD_RPS[snow-module]="$WRK_RPS" STD_P99[snow-module]="$WRK_P99"
    stop_server

    start_server snow standard "$HELLO_WASI_HTTP"
    warm_up "snow, standard component"
    wrk_home 64 snow-standard
    STD_RPS[snow-standard]="$WRK_RPS" STD_P99[snow-standard]="$WRK_P99"
    stop_server

    start_server snow standard-reuse --isolation instance "$HELLO_WASI_HTTP"
    warm_up "snow, standard component, instances reused"
    wrk_home 64 snow-standard-reuse
    STD_RPS[snow-standard-reuse]="$WRK_RPS" STD_P99[snow-standard-reuse]="$WRK_P99"
    stop_server

    if [[ -z "$WASMTIME" ]]; then
        log "wasmtime serve: not installed (cargo install wasmtime-cli --version 48.0.8 --locked, or WASMTIME_BIN=path); its row is skipped"
        return 0
    fi
    # -S cli: the WASI interfaces outside the proxy world that Rust's
    # standard library imports. Its defaults first, then with the pooling
    # allocator, which Snow uses for fresh instances.
    start_server wasmtime standard -S cli "$HELLO_WASI_HTTP"
    warm_up "wasmtime serve"
    wrk_home 64 wasmtime-serve
    STD_RPS[wasmtime-serve]="$WRK_RPS" STD_P99[wasmtime-serve]="$WRK_P99"
    stop_server

    start_server wasmtime standard-pooling -S cli -O pooling-allocator "$HELLO_WASI_HTTP"
    warm_up "wasmtime serve -O pooling-allocator"
    wrk_home 64 wasmtime-serve-pooling
    STD_RPS[wasmtime-serve-pooling]="$WRK_RPS" STD_P99[wasmtime-serve-pooling]="$WRK_P99"
    stop_server
}

print_standard() {
    local row
    echo "## Standard components (the default app built with --features snow-guest/wasi-http; /home/ wrk -t1 -c64 $DURATION)"
    echo
    echo "Load average at the start: ${LOAD[standard]:--}. wasmtime serve: ${WASMTIME_VERSION:-not installed, row skipped}."
    echo
    echo "| server | req/s | p99 ms | req/s ÷ wasmtime serve |"
    echo "|---|---:|---:|---:|"
    for row in "${STD_ROWS[@]}"; do
        echo "| $row | ${STD_RPS[$row]:--} | ${STD_P99[$row]:--}" \
            "| $(ratio "${STD_RPS[$row]:-}" "${STD_RPS[wasmtime-serve]:-}") |"
    done
    echo
    echo "snow-module: the native Snow build (one instance per worker). snow-standard: a fresh instance per request, these components' default, pre-initialised through its wizer-initialize export. snow-standard-reuse: --isolation instance. wasmtime-serve: \`wasmtime serve -S cli\`, a fresh instance per request, with its on-demand allocator and then with -O pooling-allocator."
    echo
    echo "Snow ÷ wasmtime serve, the same component with a fresh instance per request: $(ratio "${STD_RPS[snow-standard]:-}" "${STD_RPS[wasmtime-serve]:-}") (goal ≥ 1.5: $(at_least "$(ratio "${STD_RPS[snow-standard]:-}" "${STD_RPS[wasmtime-serve]:-}")" 1.5)); against its pooling allocator: $(ratio "${STD_RPS[snow-standard]:-}" "${STD_RPS[wasmtime-serve-pooling]:-}")."
    echo
}
