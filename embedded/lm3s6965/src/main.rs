//! `chat-firmware`: the chat server on a Stellaris LM3S6965 (Cortex-M3,
//! 256 KiB flash, 64 KiB SRAM, on-chip Ethernet MAC), as QEMU's
//! `lm3s6965evb` emulates it.
//!
//! Only the board is here: the Ethernet driver (`eth`), the millisecond
//! clock (`clock`), stack painting (`stack`), startup, the statics, and
//! logging through defmt over semihosting. Everything said on the wire comes
//! from the `embedded` crate's `Server` (smoltcp sockets) and the
//! `chat_core` room it runs, the same code as `tap-server` and, for the
//! protocol, `chat-server`.
//!
//! The server is 192.168.69.1/24, port 55555, for 8 clients (and a ninth
//! socket, so the connection one too many is told the room is full). Its
//! memory is all static and sized here, at compile time.
//!
//! The log is defmt frames on semihosting's stdout: QEMU must run with
//! `-semihosting-config enable=on,target=native`, and `defmt-print -e ELF`
//! decodes its stdout (run.sh does both). On silicon without a debugger
//! attached, semihosting calls fault: give it another defmt transport there.
//!
//! On any target but the board's, this is a stub that says how to build it
//! (see Cargo.toml).
#![cfg_attr(all(target_arch = "arm", target_os = "none"), no_std, no_main)]

#[cfg(all(target_arch = "arm", target_os = "none"))]
mod clock;
#[cfg(all(target_arch = "arm", target_os = "none"))]
mod eth;
#[cfg(all(target_arch = "arm", target_os = "none"))]
mod firmware;
#[cfg(all(target_arch = "arm", target_os = "none"))]
mod stack;

#[cfg(not(all(target_arch = "arm", target_os = "none")))]
fn main() {
    eprintln!(
        "chat-firmware is firmware for the LM3S6965 (QEMU's lm3s6965evb); build and boot it with\n    \
         cargo run -p lm3s6965 --target thumbv7m-none-eabi --profile firmware"
    );
    std::process::exit(2);
}
