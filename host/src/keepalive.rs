//! TCP keepalive for `chat-server`'s and `chat-client`'s connections, so a
//! peer that vanished without a word (unplugged, powered off, a NAT that
//! forgot the connection) is noticed instead of holding a slot, or a
//! terminal, forever.

use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};

/// Idle time before the first probe, by default: a vanished peer is noticed
/// after `IDLE + PROBES × INTERVAL` = 40 s of silence.
pub const IDLE: Duration = Duration::from_secs(20);

/// Time between probes (at most the idle time, so a short `--keepalive`
/// stays short).
pub const INTERVAL: Duration = Duration::from_secs(5);

/// Unanswered probes before the connection is given up.
pub const PROBES: u32 = 4;

/// Turns keepalive on for `socket`, probing after `idle` of silence. Data
/// that goes unacknowledged for as long is given up on too
/// (`TCP_USER_TIMEOUT`), so a peer that vanished while we were sending is
/// noticed as soon as one that vanished while all was quiet.
pub fn enable<'s>(socket: impl Into<SockRef<'s>>, idle: Duration) -> std::io::Result<()> {
    let socket = socket.into();
    let interval = INTERVAL.min(idle);
    socket.set_tcp_keepalive(&TcpKeepalive::new().with_time(idle).with_interval(interval).with_retries(PROBES))?;
    socket.set_tcp_user_timeout(Some(give_up_after(idle)))
}

/// How long a silent peer lasts with keepalive after `idle`.
pub fn give_up_after(idle: Duration) -> Duration {
    idle + INTERVAL.min(idle) * PROBES
}

/// Parses `--keepalive SECS` (1 to 3600).
pub fn parse_secs(text: &str) -> Result<Duration, String> {
    match text.parse::<u64>() {
        Ok(secs @ 1..=3600) => Ok(Duration::from_secs(secs)),
        _ => Err(format!("\"{text}\" is not a number of seconds from 1 to 3600")),
    }
}
