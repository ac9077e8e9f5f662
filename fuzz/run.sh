#!/usr/bin/env bash
# Runs the core's fuzz targets for a bounded time.
#
#   fuzz/run.sh SECONDS [room|web|member] [LIBFUZZER_ARGS...]
#
# With a target, runs it for SECONDS seconds; without, runs `room`, `web`
# and `member` for a third of the time each (`fuzz/run.sh 60`: 20 s each).
#
# Installs what is missing (a nightly toolchain, cargo-fuzz), builds each
# target without a sanitizer but with debug assertions and overflow checks
# (the core is `forbid(unsafe_code)`: AddressSanitizer would only slow it
# down fivefold), and runs it from its committed seed corpus
# (fuzz/seeds/TARGET) plus what earlier runs found (fuzz/corpus/TARGET, not
# committed). Exits non-zero if an invariant breaks or the core panics in
# any target; the input is then in fuzz/artifacts/TARGET/ (see
# fuzz/README.md to replay and minimize it). Each run ends with libFuzzer's
# final stats.
#
# CHAT_FUZZ_IGNORE=tag,tag,panic:TEXT in the environment lets a run look
# past known, reported bugs (see fuzz/README.md); it is empty by default.
set -euo pipefail

if [[ $# -lt 1 || ! $1 =~ ^[0-9]+$ ]]; then
    echo "usage: $0 SECONDS [room|web|member] [LIBFUZZER_ARGS...]" >&2
    exit 2
fi
seconds=$1
shift
targets=(room web member)
if [[ $# -gt 0 && ( $1 == room || $1 == web || $1 == member ) ]]; then
    targets=("$1")
    shift
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if ! command -v rustup >/dev/null; then
    echo "fuzz/run.sh: rustup is needed to install a nightly toolchain" >&2
    exit 2
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# Each target's share of the time; libFuzzer reads 0 as "no limit".
share=$(( seconds / ${#targets[@]} ))
(( share > 0 )) || share=1
status=0
summary=()
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
    echo "fuzz/run.sh: target $target for $share s" >&2
    # -timeout: one input running for 10 s is a hang (a loop that never ends).
    code=0
    cargo +nightly fuzz run --sanitizer none --debug-assertions "$target" \
        "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$share" -timeout=10 -print_final_stats=1 "$@" || code=$?
    (( code == 0 )) || status=$code
    summary+=("fuzz/run.sh: target $target: $([[ $code == 0 ]] && echo "no crash" || echo "FAILED (exit $code), input in fuzz/artifacts/$target/")")
done
# One line a target, last, where a `tail` of the output sees them.
printf '%s\n' "${summary[@]}" >&2
exit "$status"
