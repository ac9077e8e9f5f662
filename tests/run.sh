#!/usr/bin/env bash
# The test command: formatting, lints, every test, and the no_std build.
# It installs what a brand-new machine lacks, then runs everything; CI runs
# exactly this (`.ci/run`). Usage: tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }

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

step "toolchain"
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed | grep -q '^clippy' || rustup component add clippy
rustup target list --installed | grep -q '^thumbv7m-none-eabi$' || rustup target add thumbv7m-none-eabi
have python3 || apt_install python3
have tmux || apt_install tmux
have ip || apt_install iproute2
# The firmware's test boots it on QEMU's lm3s6965evb and decodes its log.
have qemu-system-arm || apt_install qemu-system-arm
# tests/tls.rs talks to chat-server with `openssl s_client`.
have openssl || apt_install openssl
if ! have defmt-print; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    have defmt-print || cargo install defmt-print --locked
fi

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
if grep -rnE '^\s*(extern crate (alloc|std)|use (alloc|std)::)' core/src --include=*.rs | grep -v 'core/src/tests.rs'; then
    echo "core uses alloc or std outside its tests" >&2
    exit 1
fi

step "cargo build -p embedded --no-default-features --target thumbv7m-none-eabi (no_std, no alloc)"
cargo build -p embedded --no-default-features --target thumbv7m-none-eabi
cargo build -p embedded --no-default-features --target thumbv7m-none-eabi --features defmt

step "firmware: cargo clippy and build -p lm3s6965 --target thumbv7m-none-eabi --profile firmware"
cargo clippy -p lm3s6965 --target thumbv7m-none-eabi -- -D warnings
cargo build -p lm3s6965 --target thumbv7m-none-eabi --profile firmware

step "fuzz the core for 60 s (fuzz/run.sh 60)"
# cargo-fuzz needs a nightly toolchain; where none is installed and none
# can be fetched, this step says so and is skipped (the rest still ran).
if rustup run nightly rustc --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal; then
    (cd fuzz && cargo test --quiet)
    fuzz/run.sh 60 2>&1 | tail -n 40
else
    echo "skipped: no nightly toolchain here, and none could be installed (cargo-fuzz needs one)"
fi

step "cargo test --workspace --exclude lm3s6965"
cargo test --workspace --exclude lm3s6965
