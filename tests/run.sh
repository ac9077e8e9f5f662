#!/usr/bin/env bash
# The test command: formatting, lints, every test, and the no_std build.
# It installs what a brand-new machine lacks, then runs everything; CI runs
# exactly this (`.ci/run`). Usage: tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
# An executable on PATH (not a shell builtin: the tests run `kill` as a program).
have() { type -P "$1" >/dev/null 2>&1; }

apt_updated=
apt_install() {
    if [ "$(id -u)" != 0 ]; then
        echo "tests/run.sh: missing $*; install it (as root: apt-get install $*) and run again" >&2
        exit 1
    fi
    if [ -z "$apt_updated" ]; then
        apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# What the tests run, on a brand-new Debian machine: a C and C++ compiler
# (Rust's linker; libfuzzer-sys builds C++), rustup's components and
# targets (Rust itself through rustup is the one prerequisite), python3
# (the tutorial's programs and the namespace tests' clients), tmux
# (chat-client on a terminal), iproute2 (`ip`, `ss`: the namespaces and TAP
# devices), procps (`kill`), qemu-system-arm and defmt-print (the firmware),
# chromium and chromium-driver (the chat page's browser tests, tests/web.rs),
# nats-server (a room across servers, tests/cluster.rs).
step "what the tests need"
if ! have cc || ! have c++; then apt_install build-essential; fi
# rustup's cargo, and what `cargo install` puts next to it (defmt-print).
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if ! have rustup; then
    echo "tests/run.sh: Rust through rustup is a prerequisite (README, \"Before you start\"): install it, then run again" >&2
    exit 1
fi
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed | grep -q '^clippy' || rustup component add clippy
rustup target list --installed | grep -q '^thumbv7m-none-eabi$' || rustup target add thumbv7m-none-eabi
have python3 || apt_install python3
have tmux || apt_install tmux
have ip && have ss || apt_install iproute2
have kill || apt_install procps
# The firmware's test boots it on QEMU's lm3s6965evb and decodes its log.
have qemu-system-arm || apt_install qemu-system-arm
# tests/tls.rs talks to chat-server with `openssl s_client`.
have openssl || apt_install openssl
have defmt-print || cargo install defmt-print --locked
# The page's tests drive Debian's Chromium, headless, through its chromedriver.
have chromium && have chromedriver || apt_install chromium chromium-driver
# tests/cluster.rs: several chat-servers as one room, each test with its
# own nats-server -js (Debian's, in /usr/sbin).
have nats-server || [ -x /usr/sbin/nats-server ] || apt_install nats-server

step "cargo fmt --all --check"
cargo fmt --all --check

# The firmware (lm3s6965) is left out of every workspace-wide command: it
# logs through defmt where the rest logs through `log`, and it is built for
# the board below.
step "cargo clippy --workspace --exclude lm3s6965 --all-targets -- -D warnings"
cargo clippy --workspace --exclude lm3s6965 --all-targets -- -D warnings

step "cargo build -p core --target thumbv7m-none-eabi (no_std, no alloc)"
cargo build -p core --target thumbv7m-none-eabi
cargo build -p core --target thumbv7m-none-eabi --features defmt
# std does not exist for thumbv7m-none-eabi: the builds above prove the
# core does without it (its unit tests, under cfg(test), may use it). alloc
# does exist there, so the core must not name it anywhere.
if grep -rnE 'extern crate alloc|\balloc::' core/src --include=*.rs; then
    echo "core uses alloc" >&2
    exit 1
fi

step "cargo build -p embedded --no-default-features --target thumbv7m-none-eabi (no_std, no alloc)"
cargo build -p embedded --no-default-features --target thumbv7m-none-eabi
cargo build -p embedded --no-default-features --target thumbv7m-none-eabi --features defmt

step "firmware: cargo clippy and build -p lm3s6965 --target thumbv7m-none-eabi --profile firmware"
cargo clippy -p lm3s6965 --target thumbv7m-none-eabi -- -D warnings
cargo build -p lm3s6965 --target thumbv7m-none-eabi --profile firmware

# The fuzz harness's own tests replay the seed corpus through it, on
# stable: they run every time.
step "(cd fuzz && cargo test): the seed scenarios, replayed through the fuzz harness"
(cd fuzz && cargo test --quiet)

step "fuzz the core for 60 s (fuzz/run.sh 60)"
# cargo-fuzz needs a nightly toolchain. Where none is installed and none can
# be fetched, this step says so loudly and the run goes on (CI fails here).
if rustup run nightly rustc --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal; then
    fuzz/run.sh 60 2>&1 | tail -n 40
elif [ "${CI:-}" = true ]; then
    echo "tests/run.sh: CI=true and no nightly toolchain: the fuzz run cannot run" >&2
    exit 1
else
    echo "NOT RUN: the 60-second fuzz run (no nightly toolchain here, and none could be installed)" >&2
fi

# The tests that need root, TAP devices or QEMU are #[ignore]d, so that a
# plain `cargo test` does not run them; here they run, and fail where the
# machine lacks what they need.
step "cargo test --workspace --exclude lm3s6965 -- --include-ignored"
cargo test --workspace --exclude lm3s6965 -- --include-ignored
