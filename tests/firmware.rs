//! End-to-end test of the LM3S6965 firmware (`embedded/lm3s6965`): the chat
//! server booted on QEMU's `lm3s6965evb`, its Ethernet on a TAP device, with
//! the tutorial's Python client and raw line clients; then its footprint,
//! from the ELF and from the stack it used over the session.
//!
//! The test makes its own network namespace (see `tests/support/netns.rs`
//! and `tests/support/board.rs`)
//! and runs QEMU and every client inside it: the traffic never leaves the
//! namespace. It needs root, `ip`, `/dev/net/tun`, python3,
//! `qemu-system-arm` and `defmt-print` (tests/run.sh installs them), so it
//! is `#[ignore]`d: `cargo test -- --include-ignored` runs it (as
//! tests/run.sh does), and there a missing prerequisite fails it.
//!
//! Every step waits for what it expects before the next one, and whole
//! transcripts are compared at every step, as in `tests/tap.rs`.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use tests::board::{firmware, require_tools, Board, MAC};
use tests::netns::{
    a_browser_fetches_the_page_and_chats_with_a_line_client, chat_between_two_tutorial_clients_and_a_line_client,
    Clients, SERVER_IP, WEB_PORT,
};
use tests::{Proc, Transcript};

/// What a client beyond capacity gets, and nothing else.
const ROOM_FULL: &str = "*** the room is full, try again later\n";

/// The room's size in the firmware (`CLIENTS` in its firmware.rs).
const CLIENTS: usize = 8;

/// The footprint the firmware must stay within, with 8 clients: of the
/// chip's 256 KiB of flash and 64 KiB of RAM. Flash was 64 KiB for the
/// chat alone; history, passwords and operators took it past that, and the
/// web page will need more: 96 KiB is the budget with all of it.
const FLASH_BUDGET: u64 = 96 * 1024;
const RAM_BUDGET: u64 = 48 * 1024;

/// An allocated section of the ELF: its name, address and size.
struct Section {
    name: String,
    addr: u64,
    size: u64,
    /// It has bytes in the file (not .bss-like): a load image in flash.
    loaded: bool,
}

/// The allocated sections of a 32-bit little-endian ELF, from its section
/// headers.
fn sections(elf: &[u8]) -> Vec<Section> {
    const SHT_NOBITS: u32 = 8;
    const SHF_ALLOC: u32 = 2;
    assert!(elf.len() > 0x34 && elf.starts_with(b"\x7fELF\x01\x01"), "not a 32-bit little-endian ELF");
    let u16_at = |at: usize| usize::from(u16::from_le_bytes([elf[at], elf[at + 1]]));
    let u32_at = |at: usize| u32::from_le_bytes([elf[at], elf[at + 1], elf[at + 2], elf[at + 3]]);
    let (table, entry, count, names) = (u32_at(0x20) as usize, u16_at(0x2e), u16_at(0x30), u16_at(0x32));
    let header = |index: usize| table + index * entry;
    let strings = u32_at(header(names) + 0x10) as usize;
    (0..count)
        .map(header)
        .filter(|&h| u32_at(h + 8) & SHF_ALLOC != 0 && u32_at(h + 0x14) > 0)
        .map(|h| {
            let name = &elf[strings + u32_at(h) as usize..];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            Section {
                name: String::from_utf8_lossy(name).into_owned(),
                addr: u64::from(u32_at(h + 0xc)),
                size: u64::from(u32_at(h + 0x14)),
                loaded: u32_at(h + 4) != SHT_NOBITS,
            }
        })
        .collect()
}

/// Prints the firmware's flash and RAM use (RAM with the measured stack
/// peak) and checks them against the budgets.
fn footprint(elf: &Path, stack_peak: u64) {
    const RAM_START: u64 = 0x2000_0000;
    let bytes = std::fs::read(elf).unwrap_or_else(|e| panic!("read {}: {e}", elf.display()));
    let sections = sections(&bytes);
    // Flash: what is placed there, and the initial values of RAM's .data.
    let flash: Vec<&Section> = sections.iter().filter(|s| s.addr < RAM_START || s.loaded).collect();
    let ram: Vec<&Section> = sections.iter().filter(|s| s.addr >= RAM_START).collect();
    let sum = |list: &[&Section]| list.iter().map(|s| s.size).sum::<u64>();
    let terms =
        |list: &[&Section]| list.iter().map(|s| format!("{} {}", s.name, s.size)).collect::<Vec<_>>().join(" + ");
    let kib = |bytes: u64| bytes as f64 / 1024.0;
    let (flash_total, ram_total) = (sum(&flash), sum(&ram) + stack_peak);
    eprintln!("footprint of {} ({CLIENTS} clients):", elf.display());
    eprintln!(
        "  flash: {} = {flash_total} B ({:.1} KiB; budget {} KiB)",
        terms(&flash),
        kib(flash_total),
        FLASH_BUDGET / 1024
    );
    eprintln!(
        "  RAM:   {} + stack peak {stack_peak} = {ram_total} B ({:.1} KiB; budget {} KiB)",
        terms(&ram),
        kib(ram_total),
        RAM_BUDGET / 1024
    );
    assert!(flash_total <= FLASH_BUDGET, "flash {flash_total} B is over the budget of {FLASH_BUDGET} B");
    assert!(ram_total <= RAM_BUDGET, "RAM {ram_total} B is over the budget of {RAM_BUDGET} B");
}

#[test]
#[ignore = "needs root, /dev/net/tun and qemu-system-arm"]
fn firmware_serves_the_chat_room_on_an_emulated_lm3s6965() {
    const TEST: &str = "firmware";
    require_tools(TEST);
    let started = Instant::now();
    let elf = firmware();
    let built = started.elapsed();
    let mut board = Board::boot(TEST, &elf);
    let booted = started.elapsed() - built;
    board.wait_for_log(&format!("MAC {}", MAC.replace(':', "-")));

    // Two tutorial clients and a line client chat, as with tap-server.
    let phase = Instant::now();
    chat_between_two_tutorial_clients_and_a_line_client(&board);
    let chat = phase.elapsed();

    // A browser on port 80: the page, then its WebSocket into the room.
    let phase = Instant::now();
    board.wait_for_log(&format!("web on {SERVER_IP}:{WEB_PORT}"));
    a_browser_fetches_the_page_and_chats_with_a_line_client(&board);
    let web = phase.elapsed();

    // A full room: 8 clients at once, and a ninth is told so.
    let phase = Instant::now();
    let mut clients: Vec<(Proc, Transcript)> = Vec::new();
    for n in 1..=CLIENTS {
        let nick = format!("c{n}");
        let joined = board.joined_line_client(&nick);
        for (_, seen) in &mut clients {
            seen.see(&format!("{nick} joined!\n"));
        }
        clients.push(joined);
    }

    // The ninth connection gets through (the spare socket), is told, and is
    // closed: its client exits on the firmware's close.
    let mut extra = board.line_client();
    extra.stdout.wait_for(ROOM_FULL);
    assert!(extra.wait().success(), "the extra client's connection was not closed");
    assert_eq!(extra.stdout.text(), ROOM_FULL, "what the ninth client got");

    // The others are undisturbed.
    clients[0].0.type_in("still here\n");
    for (_, seen) in &mut clients {
        seen.see("c1: still here\n");
    }

    // A slot freed is a slot taken: c8 leaves, c9 gets in.
    clients[CLIENTS - 1].0.type_in("/quit\n");
    for (_, seen) in &mut clients {
        seen.see("c8 left!\n");
    }
    assert!(clients[CLIENTS - 1].0.wait().success(), "c8's connection was not closed");
    clients.pop();
    let joined = board.joined_line_client("c9");
    for (_, seen) in &mut clients {
        seen.see("c9 joined!\n");
    }
    clients.push(joined);
    clients[1].0.type_in("welcome c9\n");
    for (_, seen) in &mut clients {
        seen.see("c2: welcome c9\n");
    }
    for (_, seen) in &clients {
        seen.done();
    }
    let capacity = phase.elapsed();

    let log = board.log.text();
    for line in [
        "Connected with 192.168.69.100:",
        " (web)",
        "Nickname is alice",
        "Nickname is bob",
        "Nickname is wendy",
        "Nickname is c9",
        "the room is full",
    ] {
        assert!(log.contains(line), "the firmware's log lacks {line:?}:\n{}", board.describe());
    }
    for bad in ["ERROR", "panic", "HardFault"] {
        assert!(!log.contains(bad), "the firmware's log has {bad:?}:\n{}", board.describe());
    }

    // The firmware checks its stack every 250 ms and logs each new peak:
    // after a second, the last one logged is the session's.
    thread::sleep(Duration::from_secs(1));
    let peak = board.stack_peak().unwrap_or_else(|| panic!("no stack peak in the log:\n{}", board.describe()));
    drop(clients);
    drop(board);
    footprint(&elf, peak);
    eprintln!(
        "firmware: build {built:?}, boot {booted:?}, chat {chat:?}, browser {web:?}, {CLIENTS} clients and a ninth \
         {capacity:?}, total {:?}",
        started.elapsed()
    );
}
