#!/usr/bin/env bash
# Runs the core's `room` fuzz target for a bounded time.
#
#   fuzz/run.sh SECONDS [LIBFUZZER_ARGS...]
#
# Installs what is missing (a nightly toolchain, cargo-fuzz), builds the
# target without a sanitizer but with debug assertions and overflow checks
# (the core is `forbid(unsafe_code)`: AddressSanitizer would only slow it
# down fivefold), and runs it for SECONDS seconds from the committed seed
# corpus (fuzz/seeds/room) plus what earlier runs found (fuzz/corpus/room,
# not committed). Exits non-zero if an invariant breaks or the core panics;
# the input is then in fuzz/artifacts/room/ (see fuzz/README.md to replay
# and minimize it). The last lines of output are libFuzzer's final stats.
#
# CHAT_FUZZ_IGNORE=tag,tag,panic:TEXT in the environment lets a run look
# past known, reported bugs (see fuzz/README.md); it is empty by default.
set -euo pipefail

if [[ $# -lt 1 || ! $1 =~ ^[0-9]+$ ]]; then
    echo "usage: $0 SECONDS [LIBFUZZER_ARGS...]" >&2
    exit 2
fi
seconds=$1
shift

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

mkdir -p fuzz/corpus/room fuzz/artifacts/room
# -timeout: one input running for 10 s is a hang (a loop that never ends).
exec cargo +nightly fuzz run --sanitizer none --debug-assertions room fuzz/corpus/room fuzz/seeds/room -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 "$@"
