//! What a run is asked to do: the servers, the dialect its clients speak, how
//! many of them, what they send and when. The command line builds a
//! [`Plan`]; the report carries its shape as it was asked for.

use std::net::SocketAddr;
use std::time::Duration;

use chat_core::wire::CONNECTED;
use serde::Serialize;

use crate::message;

/// How the bench's clients talk to the server: the core's dialects, by the
/// names the command line and the reports use.
pub use chat_core::Dialect;

/// What the server says once a client is registered. chat-server's seed
/// dialect, like the tutorial's server, sends it with no terminator; a web
/// client's frames are read as lines (see [`crate::websocket`]).
pub fn registered(dialect: Dialect) -> Vec<u8> {
    let mut line = CONNECTED.as_bytes().to_vec();
    if dialect != Dialect::Seed {
        line.push(b'\n');
    }
    line
}

fn serialize_dialect<S: serde::Serializer>(dialect: &Dialect, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(dialect.name())
}

/// What a run is asked to do. Serialised (its shape only, not how the bench
/// behaves) into the report.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// The servers' addresses: client `i` connects to `addrs[i % len]`
    /// (see [`Plan::addr_of`]). Several servers of one room (over a broker)
    /// are still one room: every client expects every message. Never empty.
    pub addrs: Vec<SocketAddr>,
    #[serde(serialize_with = "serialize_dialect")]
    pub dialect: Dialect,
    /// Clients connected and registered; each must receive every message.
    pub clients: usize,
    /// The first `speakers` clients send messages (at most `clients`).
    pub speakers: usize,
    /// Messages each speaker sends.
    pub messages: usize,
    /// Bytes of each message's text (the payload, without `{nick}: `).
    pub size: usize,
    /// Messages a second per speaker; `None`: as fast as the socket takes
    /// them.
    pub rate: Option<f64>,
    /// Set TCP_NODELAY on the bench's sockets.
    #[serde(skip)]
    pub nodelay: bool,
    /// The whole run ends by then, finished or not.
    #[serde(skip)]
    pub timeout: Duration,
    /// Once everything is sent, the run ends after this long without input.
    #[serde(skip)]
    pub settle: Duration,
    /// Registrations in flight at once.
    #[serde(skip)]
    pub concurrency: usize,
    /// Show a progress bar (on runs longer than a couple of seconds).
    #[serde(skip)]
    pub progress: bool,
    /// How long every client stays registered and idle before anyone speaks.
    #[serde(skip)]
    pub hold: Duration,
    /// Unpaced speakers wait for their own echo when this many of their
    /// messages are out (closed loop); `None`: no limit.
    #[serde(skip)]
    pub window: Option<usize>,
    /// Write each client's received bytes to `client-{i}.bin` here.
    #[serde(skip)]
    pub dump: Option<std::path::PathBuf>,
    /// Talk TLS to the servers, with this configuration.
    #[serde(skip)]
    pub tls: Option<crate::tls::Tls>,
    /// Check that every client saw the messages in one order (see
    /// [`crate::order`]); the report says so when it does.
    #[serde(skip)]
    pub same_order: bool,
}

impl Plan {
    /// Which of [`Plan::addrs`] client `i` connects to: round-robin, so
    /// every server has clients (and speakers) when there are enough.
    pub fn addr_of(&self, i: usize) -> usize {
        i % self.addrs.len()
    }

    /// How many clients connect to each of [`Plan::addrs`], in its order.
    pub fn clients_per_addr(&self) -> Vec<usize> {
        let n = self.addrs.len();
        (0..n).map(|a| self.clients / n + usize::from(a < self.clients % n)).collect()
    }

    /// The smallest message size this plan's fields fit in.
    pub fn min_size(&self) -> usize {
        message::min_size(self.clients, self.messages, self.max_micros())
    }

    /// The latest timestamp a message of this run can carry.
    fn max_micros(&self) -> u64 {
        (self.timeout + self.hold + Duration::from_secs(1)).as_micros().min(u128::from(u64::MAX)) as u64
    }

    /// Deliveries a perfect run makes: every client receives every message,
    /// its own included.
    pub fn expected(&self) -> u64 {
        self.clients as u64 * self.speakers as u64 * self.messages as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(addrs: usize, clients: usize) -> Plan {
        Plan {
            addrs: (0..addrs).map(|a| SocketAddr::from(([127, 0, 0, 1], 1000 + a as u16))).collect(),
            dialect: Dialect::Line,
            clients,
            speakers: clients,
            messages: 1,
            size: 64,
            rate: None,
            nodelay: false,
            timeout: Duration::from_secs(1),
            settle: Duration::from_secs(1),
            concurrency: 1,
            progress: false,
            hold: Duration::ZERO,
            window: None,
            dump: None,
            tls: None,
            same_order: false,
        }
    }

    #[test]
    fn clients_go_round_robin_over_the_addresses() {
        let three = plan(3, 7);
        let assigned: Vec<usize> = (0..7).map(|i| three.addr_of(i)).collect();
        assert_eq!(assigned, [0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(three.clients_per_addr(), [3, 2, 2]);
        assert_eq!(plan(1, 5).clients_per_addr(), [5]);
        assert_eq!(plan(4, 2).clients_per_addr(), [1, 1, 0, 0]);
    }
}
