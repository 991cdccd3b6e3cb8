#!/usr/bin/env bash
# Fuzz smoke for CI: replay the regression inputs, then fuzz each target
# for FUZZ_SECONDS (default 30). Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${FUZZ_SECONDS:-30}"
# cargo-fuzz needs nightly's sanitizer flags. Without a nightly toolchain,
# stable is told to accept them (RUSTC_BOOTSTRAP=1), so fuzzing still runs.
if rustup toolchain list | grep -q '^nightly'; then
    fuzz() { cargo +nightly fuzz "$@"; }
else
    echo "no nightly toolchain: fuzzing on stable with RUSTC_BOOTSTRAP=1"
    fuzz() { RUSTC_BOOTSTRAP=1 cargo fuzz "$@"; }
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
for t in batch_decode segment_scan index_lookup foreign_append log_model txn_files kafka_request_decode; do
    mkdir -p "fuzz/corpus/$t"
    if [ -d "fuzz/regressions/$t" ]; then
        echo "-- $t: replaying regressions"
        fuzz run "$t" "fuzz/regressions/$t" -- -runs=0
    fi
    echo "-- $t: fuzzing for ${secs}s"
    # The log is filtered; the fuzz run's own exit status decides. (It was
    # once read after `|| true`, which reset PIPESTATUS: a crash passed.)
    set +e
    fuzz run "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 2>&1 | grep -E "stat::number_of_executed_units|Done|ERROR|panicked"
    status=${PIPESTATUS[0]}
    set -e
    if [ "$status" -ne 0 ]; then
        echo "fuzz target $t failed (exit $status); the input is in fuzz/artifacts/$t"
        exit 1
    fi
done
