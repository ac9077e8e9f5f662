#!/usr/bin/env bash
# Cargo's runner for thumbv7m-none-eabi (.cargo/config.toml): boots an ELF
# on QEMU's lm3s6965evb and decodes its defmt log (semihosting on QEMU's
# stdout) with defmt-print.
#
#   cargo run -p lm3s6965 --target thumbv7m-none-eabi --profile firmware
#   embedded/lm3s6965/run.sh ELF       # the same, for a built ELF
#
#   TAP=tap0    attach the board's Ethernet to this existing TAP device (QEMU
#               needs the right to open it); without TAP the board has a NIC
#               with no cable (`-nic none`: never QEMU's default user-mode
#               network, which would reach out of this machine)
#   MAC=...     the board's MAC address (default 52:54:00:12:34:56), which
#               QEMU puts in USER0/USER1 where the firmware reads it
#   QEMU_EXTRA  more QEMU arguments
#
# Ctrl-C (or SIGTERM) stops QEMU. The exit status is QEMU's: 0 when stopped
# so, non-zero after a panic or a fault (the firmware logs it first).
set -euo pipefail

elf=${1:?usage: run.sh ELF}
mac=${MAC:-52:54:00:12:34:56}

for tool in qemu-system-arm defmt-print; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "run.sh: no $tool; apt-get install qemu-system-arm, cargo install defmt-print --locked" >&2
        exit 127
    fi
done

args=(
    -cpu cortex-m3 -machine lm3s6965evb
    # -nographic would put the UART and QEMU's monitor on stdout and corrupt
    # the binary defmt stream: stdout is semihosting's alone.
    -display none -serial none -monitor none
    -semihosting-config enable=on,target=native
    -kernel "$elf"
)
# QEMU's stderr (not the log): QEMU 7.2 prints "Timer with period zero,
# disabling" at every start, from its model of the board's watchdog on
# reset, before the firmware runs (`-S`, which never starts the CPU, shows
# it too); with `-nic none`, "warning: nic stellaris_enet.0 has no peer",
# as the board's own Ethernet has no cable. Both are harmless.
if [[ -n "${TAP:-}" ]]; then
    args+=(-nic "tap,ifname=$TAP,script=no,downscript=no,model=stellaris,mac=$mac")
else
    args+=(-nic none)
fi
# shellcheck disable=SC2206 # word splitting wanted
args+=(${QEMU_EXTRA:-})

# QEMU in the background, its stdout into defmt-print, so that this script
# knows QEMU's PID: told to stop (Ctrl-C, SIGTERM), it stops QEMU by that
# PID rather than leave it running; defmt-print then reads the end of its
# input, prints the last lines and exits.
qemu-system-arm "${args[@]}" > >(exec defmt-print -e "$elf") &
qemu=$!
trap 'kill "$qemu" 2>/dev/null || true' INT TERM HUP
while true; do
    status=0
    wait "$qemu" || status=$?
    # A signal ends `wait` early: wait again until QEMU is gone.
    kill -0 "$qemu" 2>/dev/null || break
done
wait # for defmt-print
exit "$status"
