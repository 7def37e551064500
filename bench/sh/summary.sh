# shellcheck shell=bash
# The figures users feel, each from its section of this run, next to its
# goal: one table to read first.

# "yes"/"no" for $1 against the goal $3 ($2: le or ge), "-" without a number.
meets() {
    case "$2" in
        le) within "$1" "$3" ;;
        ge) at_least "$1" "$3" ;;
    esac
}

print_summary() {
    local iso cold swap dip kept rps p99 standard c=64
    iso="$(ratio "${ISO_RPS[request]:-}" "${ISO_RPS[instance]:-}")"
    cold="${STARTUP_COLD_TIERED:--}"
    swap="${SWAP_MEDIAN[rename]:--}"
    dip="$(field dip_pct "${SWAP_LOAD_OUT[cached]:-}")"
    # Points of throughput the cached swaps lost beyond the control run's
    # (none when they lost less).
    kept="$(awk -v a="$(field kept_after_swaps_pct "${SWAP_LOAD_OUT[control]:-}")" \
        -v b="$(field kept_after_swaps_pct "${SWAP_LOAD_OUT[cached]:-}")" 'BEGIN {
            if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/) print "-"
            else printf "%.1f", (a - b > 0 ? a - b : 0)
        }')"
    rps="$(ratio "${RPS[snow,$c]:-}" "${RPS[hyper,$c]:-}")"
    p99="$(ratio "${P99[snow,$c]:-}" "${P99[hyper,$c]:-}")"
    standard="$(ratio "${STD_RPS[snow-standard]:-}" "${STD_RPS[wasmtime-serve]:-}")"
    local proxy_small proxy_big sse
    proxy_small="$(ratio "${STREAM_RPS[snow]:-}" "${STREAM_RPS[nginx]:-}")"
    proxy_big="$(ratio "${STREAM_MBS[snow]:-}" "${STREAM_MBS[nginx]:-}")"
    sse="$(field per_request_pss_kib "${SSE_OUT:-}")"
    echo "## Summary (each figure from its section below)"
    echo
    echo "| figure | this run | goal | met |"
    echo "|---|---:|---:|:---:|"
    echo "| \`--isolation request\` /home/ req/s ÷ default isolation | $iso | ≥ 0.30 | $(meets "$iso" ge 0.30) |"
    echo "| \`--isolation request\` KiB per parked request (PSS) | ${ISO_PARK_PSS[request]:--} | ≤ 64 | $(meets "${ISO_PARK_PSS[request]:-}" le 64) |"
    echo "| cold start, empty cache, to first answer (tiered) ms | $cold | ≤ 100 | $(meets "$cold" le 100) |"
    echo "| cold start with --compiler cranelift ms | ${STARTUP_COLD_CRANELIFT:--} | | |"
    echo "| hot swap, file renamed over → first new answer ms | $swap | ≤ 100 | $(meets "$swap" le 100) |"
    echo "| throughput dip, worst 100 ms window near a cached swap | ${dip:--}% | ≤ 10% | $(meets "${dip:-}" le 10) |"
    echo "| … the control run's (no deploy) | $(field dip_pct "${SWAP_LOAD_OUT[control]:-}")% | | |"
    echo "| … throughput a swap loses beyond the control, points | ${kept:--} | ≤ 10 | $(meets "$kept" le 10) |"
    echo "| /home/ c$c req/s ÷ native hyper | $rps | ≥ 1.00 | $(meets "$rps" ge 1.00) |"
    echo "| /home/ c$c p99 ÷ native hyper's | $p99 | ≤ 1.10 | $(meets "$p99" le 1.10) |"
    echo "| standard component /home/ req/s, snow ÷ wasmtime serve | $standard | ≥ 1.5 | $(meets "$standard" ge 1.5) |"
    echo "| proxy, small body, req/s snow ÷ nginx | $proxy_small | ≥ 1.00 | $(meets "$proxy_small" ge 1.00) |"
    echo "| … snow ÷ native hyper proxy, small body | $(ratio "${STREAM_RPS[snow]:-}" "${STREAM_RPS[native]:-}") | | |"
    echo "| … native hyper proxy ÷ nginx, small body | $(ratio "${STREAM_RPS[native]:-}" "${STREAM_RPS[nginx]:-}") | | |"
    echo "| … snow ÷ bare tokio proxy, small body | $(ratio "${STREAM_RPS[snow]:-}" "${STREAM_RPS[bare]:-}") | | |"
    echo "| … bare tokio proxy ÷ nginx, small body | $(ratio "${STREAM_RPS[bare]:-}" "${STREAM_RPS[nginx]:-}") | | |"
    echo "| proxy, 100 MiB body, MB/s snow ÷ nginx | $proxy_big | ≥ 1.00 | $(meets "$proxy_big" ge 1.00) |"
    echo "| KiB per server-sent event client (${SSE_CLIENTS:-10000} clients, PSS) | ${sse:--} | ≤ 16 | $(meets "${sse:-}" le 16) |"
    echo
}
