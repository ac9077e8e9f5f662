//! The server's use of the machine, read from `/proc/PID` when the command
//! line names its process (`--server-pid`): resident memory per registered
//! client, and CPU time per delivery (the bench's own too, to tell whose
//! time a latency is). Linux only, like the rest of the
//! bench's figures.

use std::io;

use serde::Serialize;

/// The unit of `utime` and `stime` in `/proc/PID/stat`: Linux reports them
/// in USER_HZ, which the kernel fixes at 100 for user space whatever its
/// own tick rate (`sysconf(_SC_CLK_TCK)` returns it).
const TICKS_PER_SEC: u64 = 100;

/// One reading of the server process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    /// Resident memory (`VmRSS` of `/proc/PID/status`), KiB.
    pub rss_kib: u64,
    /// User and system CPU time (`utime` + `stime` of `/proc/PID/stat`), in
    /// clock ticks.
    pub cpu_ticks: u64,
}

impl Reading {
    /// Reads process `pid` now.
    pub fn of(pid: u32) -> io::Result<Reading> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("no {what} in /proc/{pid}"));
        Ok(Reading {
            rss_kib: vm_rss_kib(&status).ok_or_else(|| bad("VmRSS"))?,
            cpu_ticks: cpu_ticks(&stat).ok_or_else(|| bad("utime and stime"))?,
        })
    }
}

/// `VmRSS` of a `/proc/PID/status`, KiB.
fn vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `utime` + `stime` of a `/proc/PID/stat`: fields 14 and 15, counted
/// after the command name, which is in parentheses and may hold spaces and
/// parentheses of its own.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The server's memory: before the clients connected, and with all of them
/// registered.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Memory {
    pub pid: u32,
    pub before_kib: u64,
    pub after_kib: u64,
    pub per_client_bytes: f64,
}

impl Memory {
    pub fn new(pid: u32, before: Reading, after: Reading, clients: usize) -> Memory {
        let per_client = (after.rss_kib as f64 - before.rss_kib as f64) * 1024.0 / clients as f64;
        Memory { pid, before_kib: before.rss_kib, after_kib: after.rss_kib, per_client_bytes: per_client.round() }
    }

    pub fn row(&self, clients: usize) -> (String, String) {
        (
            "server memory".to_string(),
            format!(
                "VmRSS {} KiB before, {} KiB with {clients} registered: {:.0} bytes per client",
                self.before_kib, self.after_kib, self.per_client_bytes
            ),
        )
    }
}

/// A process's CPU time (user + system) from just before the first message
/// to the end of the run, and per 1,000 deliveries: the server's, and the
/// bench's own (one thread: when it is near 1,000 ms a second, the latencies
/// are partly the bench's).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Cpu {
    pub pid: u32,
    pub ms: f64,
    pub deliveries: u64,
    pub ms_per_1000_deliveries: Option<f64>,
}

impl Cpu {
    pub fn new(pid: u32, before: Reading, after: Reading, deliveries: u64) -> Cpu {
        let ms = after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 * 1000.0 / TICKS_PER_SEC as f64;
        let per_1000 = (deliveries > 0).then(|| crate::report::round(ms * 1000.0 / deliveries as f64, 4));
        Cpu { pid, ms, deliveries, ms_per_1000_deliveries: per_1000 }
    }

    /// A row of the table, named `{who} CPU`.
    pub fn row(&self, who: &str) -> (String, String) {
        let per_1000 = self.ms_per_1000_deliveries.map_or("n/a".to_string(), |ms| format!("{ms:.4}"));
        (
            format!("{who} CPU"),
            format!(
                "{:.0} ms user+system over the messages, {} deliveries: {per_1000} ms per 1,000 (10 ms ticks)",
                self.ms, self.deliveries
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_past_an_awkward_command_name() {
        let stat = "4242 (chat) server) S 1 4242 4242 0 -1 4194560 300 0 0 0 157 43 0 0 20 0 1 0 99 1000 250";
        assert_eq!(cpu_ticks(stat), Some(157 + 43));
        assert_eq!(cpu_ticks("4242 (chat-server) S 1"), None);
        assert_eq!(vm_rss_kib("Name:\tchat-server\nVmRSS:\t   12380 kB\n"), Some(12380));
        assert_eq!(vm_rss_kib("Name:\tchat-server\n"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let reading = Reading::of(std::process::id()).expect("read /proc/self");
        assert!(reading.rss_kib > 0);
    }

    #[test]
    fn cpu_per_thousand_deliveries() {
        let at = |cpu_ticks| Reading { rss_kib: 0, cpu_ticks };
        let cpu = Cpu::new(1, at(100), at(150), 200_000);
        assert_eq!(cpu.ms, 500.0);
        assert_eq!(cpu.ms_per_1000_deliveries, Some(2.5));
        assert_eq!(Cpu::new(1, at(100), at(150), 0).ms_per_1000_deliveries, None);
        let memory =
            Memory::new(1, Reading { rss_kib: 1000, cpu_ticks: 0 }, Reading { rss_kib: 1100, cpu_ticks: 0 }, 50);
        assert_eq!(memory.per_client_bytes, 2048.0);
    }
}
