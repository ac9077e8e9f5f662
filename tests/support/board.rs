//! The LM3S6965 firmware booted on QEMU's `lm3s6965evb` in a network
//! namespace of its own, its Ethernet on the namespace's TAP device, its
//! defmt log decoded: for `tests/firmware.rs` and the browser test of
//! `tests/web.rs`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::netns::{Clients, Netns, PORT, SERVER_IP, TAP};
use crate::{build, root, Output, WAIT};

/// The firmware's package, binary, target and profile.
pub const PACKAGE: &str = "lm3s6965";
pub const BINARY: &str = "chat-firmware";
pub const TARGET: &str = "thumbv7m-none-eabi";
pub const PROFILE: &str = "firmware";

/// The board's MAC address: QEMU puts it in the chip's USER0/USER1
/// registers, where the firmware reads it.
pub const MAC: &str = "52:54:00:65:69:01";

/// Why QEMU and defmt-print cannot be run here, if they cannot.
pub fn tools_missing() -> Option<String> {
    for (tool, install) in
        [("qemu-system-arm", "apt-get install qemu-system-arm"), ("defmt-print", "cargo install defmt-print --locked")]
    {
        if Command::new(tool).arg("--version").output().is_err() {
            return Some(format!("no {tool} ({install})"));
        }
    }
    None
}

/// Fails the test, saying why, if QEMU or defmt-print is missing.
pub fn require_tools(test: &str) {
    if let Some(why) = tools_missing() {
        panic!("{test}: cannot run the firmware: {why}");
    }
}

/// Builds the firmware (as `cargo build -p lm3s6965 --target
/// thumbv7m-none-eabi --profile firmware`) and returns its ELF.
pub fn firmware() -> PathBuf {
    build(&["-p", PACKAGE, "--target", TARGET, "--profile", PROFILE]);
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
    target.join(TARGET).join(PROFILE).join(BINARY)
}

/// The firmware running in QEMU in a namespace of its own, its defmt log
/// decoded. Dropping it stops QEMU (by its PID) and defmt-print, then
/// deletes the namespace.
pub struct Board {
    qemu: Child,
    print: Child,
    /// The firmware's log, as defmt-print decodes it.
    pub log: Output,
    qemu_stderr: Output,
    print_stderr: Output,
    ns: Netns,
}

impl Clients for Board {
    /// The board keeps the protocol's default: the last 20 lines, as far
    /// as its 4 KiB log still has them.
    fn replays_history(&self) -> bool {
        true
    }

    fn ns(&self) -> &Netns {
        &self.ns
    }
}

impl Board {
    /// Boots `elf` in a new namespace, its NIC on the namespace's TAP
    /// device, and waits until the firmware says it listens.
    pub fn boot(test: &str, elf: &Path) -> Board {
        let ns = Netns::for_test(test);
        // `ip netns exec` execs QEMU: the child's PID is QEMU's own.
        let mut qemu = ns
            .command("qemu-system-arm")
            .args(["-cpu", "cortex-m3", "-machine", "lm3s6965evb"])
            .args(["-display", "none", "-serial", "none", "-monitor", "none"])
            .args(["-semihosting-config", "enable=on,target=native"])
            .arg("-nic")
            .arg(format!("tap,ifname={TAP},script=no,downscript=no,model=stellaris,mac={MAC}"))
            .arg("-kernel")
            .arg(elf)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start qemu-system-arm: {e}"));
        let defmt = qemu.stdout.take().expect("piped stdout");
        let qemu_stderr = Output::collect(qemu.stderr.take().expect("piped stderr"));
        // Decodes QEMU's stdout (semihosting: the defmt frames) until it ends.
        let print = Command::new("defmt-print")
            .arg("-e")
            .arg(elf)
            .stdin(Stdio::from(defmt))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut print = match print {
            Ok(print) => print,
            Err(e) => {
                let _ = qemu.kill();
                let _ = qemu.wait();
                panic!("cannot start defmt-print: {e}");
            }
        };
        let log = Output::collect(print.stdout.take().expect("piped stdout"));
        let print_stderr = Output::collect(print.stderr.take().expect("piped stderr"));
        let mut board = Board { qemu, print, log, qemu_stderr, print_stderr, ns };
        board.wait_for_log(&format!("listening on {SERVER_IP}:{PORT}"));
        board
    }

    /// Waits until the firmware's log has `needle`; fails at once if QEMU
    /// exits, and after [`WAIT`].
    pub fn wait_for_log(&mut self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.log.text().contains(needle) {
            let exited = self.qemu.try_wait().expect("try_wait on QEMU");
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "no {needle:?} from the firmware ({}):\n{}",
                exited.map_or_else(|| "timed out".to_string(), |status| format!("QEMU exited: {status}")),
                self.describe()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The firmware's log, QEMU's and defmt-print's stderr, for a failure.
    pub fn describe(&self) -> String {
        format!(
            "firmware log:\n{}\nQEMU's stderr:\n{}\ndefmt-print's stderr:\n{}",
            self.log.text(),
            self.qemu_stderr.text(),
            self.print_stderr.text()
        )
    }

    /// The highest stack peak the firmware logged (`stack peak N B`).
    pub fn stack_peak(&self) -> Option<u64> {
        let log = self.log.text();
        log.match_indices("stack peak ")
            .filter_map(|(at, found)| {
                let rest = &log[at + found.len()..];
                rest.split_once(" B").and_then(|(number, _)| number.parse().ok())
            })
            .max()
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        // QEMU by its PID; defmt-print then reads the end of its input and
        // exits by itself, or is killed (by PID) if it does not. The
        // namespace goes after this (a field, dropped last).
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
        let deadline = Instant::now() + Duration::from_secs(2);
        while matches!(self.print.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.print.kill();
        let _ = self.print.wait();
    }
}
