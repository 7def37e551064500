#!/usr/bin/env bash
# Runs each fuzz target for a bounded time, one after the other.
#
#   fuzz/run.sh                           # every target, 60 s each
#   SECONDS_PER_TARGET=600 fuzz/run.sh    # longer runs
#   fuzz/run.sh http_request              # only the named targets
#
# New interesting inputs go to fuzz/corpus/TARGET, crashes to
# fuzz/artifacts/TARGET (both ignored by git); fuzz/corpus-seed/TARGET is the
# committed starting corpus.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# cargo-fuzz passes unstable compiler flags (-Zsanitizer, sanitizer-coverage
# options); this lets the stable toolchain pinned by rust-toolchain.toml take
# them, so no nightly toolchain is needed.
export RUSTC_BOOTSTRAP=1
# The host's build script builds the guest modules under CARGO_TARGET_DIR;
# without it they would go to the workspace's target/ and contend with
# ordinary builds there.
export CARGO_TARGET_DIR="$PWD/fuzz/target"

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    seeds=()
    if [ -d "fuzz/corpus-seed/$target" ]; then
        seeds+=("fuzz/corpus-seed/$target")
    fi
    # 16 codegen units instead of cargo-fuzz's 1: the instrumented build
    # includes wasmtime and cranelift, which take far longer to build as one
    # unit, while the code under test is too small to lose much speed.
    cargo fuzz run --codegen-units 16 "$target" "fuzz/corpus/$target" "${seeds[@]}" -- \
        -max_total_time="${SECONDS_PER_TARGET:-60}" -print_final_stats=1
done
