//! The room's limits as command-line flags: one vocabulary for every server.
//!
//! `chat-server` (host) and `tap-server` (embedded, feature `std`) flatten
//! [`RoomArgs`] into their own command lines, so `--capacity`, `--ring`,
//! `--burst`, `--rate`, `--no-throttle`, `--history` and
//! `--registration-timeout` mean the same in both. It is a crate of its own because neither binary's
//! package may depend on the other's: `host` is the laptop frontend,
//! `embedded` a `no_std` library whose `std` feature only adds
//! `tap-server`; this crate is std and clap, and only the binaries use it.
//!
//! A binary whose room is smaller by default (tap-server's 8 clients, as on
//! the board) changes the defaults with [`RoomArgs::with_defaults`].

use chat_core::{Config, Duration, Throttle};
use clap::{Args, Command};

/// The room's size and limits, as flags.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct RoomArgs {
    /// Most clients in the room at once; one more is told the room is full.
    #[arg(short, long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u16).range(1..65535))]
    pub capacity: u16,

    /// Bytes of the room's shared log: a client that falls this far behind
    /// is disconnected as too slow (it is told why).
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20, value_parser = clap::value_parser!(u32).range(4096..))]
    pub ring: u32,

    /// Flood control: lines a client may send at once.
    #[arg(long, value_name = "LINES", default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    pub burst: u16,

    /// Flood control: lines a second a client may send after its burst.
    #[arg(long, value_name = "LINES", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub rate: u16,

    /// Turn flood control off (for benchmarks).
    #[arg(long)]
    pub no_throttle: bool,

    /// Lines of the room a line client is replayed when it joins (0: none).
    #[arg(long, value_name = "LINES", default_value_t = chat_core::wire::DEFAULT_HISTORY)]
    pub history: u16,

    /// Seconds a connection may take to choose a nickname.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub registration_timeout: u64,
}

impl RoomArgs {
    /// `command` (which flattens [`RoomArgs`]) with other defaults for the
    /// room's size and log, and `--capacity`'s upper bound at `max_capacity`.
    pub fn with_defaults(command: Command, capacity: u16, max_capacity: u16, ring: u32) -> Command {
        command
            .mut_arg("capacity", |arg| {
                arg.default_value(capacity.to_string())
                    .value_parser(clap::value_parser!(u16).range(1..=i64::from(max_capacity)))
            })
            .mut_arg("ring", |arg| arg.default_value(ring.to_string()))
    }

    /// The room's configuration: flood control, history and the
    /// registration timeout from the flags, the rest the core's defaults.
    pub fn config(&self) -> Config {
        let interval = Duration::from_millis(1000 / u64::from(self.rate));
        Config {
            registration_timeout: Duration::from_secs(self.registration_timeout),
            throttle: (!self.no_throttle).then_some(Throttle { burst: self.burst, interval }),
            history: self.history,
            ..Config::default()
        }
    }

    /// Client slots.
    pub fn capacity(&self) -> usize {
        usize::from(self.capacity)
    }

    /// Bytes of the room's log.
    pub fn ring_bytes(&self) -> usize {
        self.ring as usize
    }

    /// Flood control in words, for a server's first log line.
    pub fn describe_throttle(&self) -> String {
        match self.config().throttle {
            Some(t) => format!("{} lines then {}/s", t.burst, 1000 / t.interval.millis().max(1)),
            None => "off".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches, Parser};

    use super::*;

    #[derive(Parser, Debug)]
    #[command(name = "test-server")]
    struct Cli {
        #[command(flatten)]
        room: RoomArgs,
    }

    fn parse(args: &[&str], small: bool) -> Result<RoomArgs, clap::Error> {
        let mut command = Cli::command();
        if small {
            command = RoomArgs::with_defaults(command, 8, 1024, 256 << 10);
        }
        let matches = command.try_get_matches_from(std::iter::once("test-server").chain(args.iter().copied()))?;
        Cli::from_arg_matches(&matches).map(|cli| cli.room)
    }

    #[test]
    fn defaults_are_the_cores() {
        let room = parse(&[], false).unwrap();
        assert_eq!((room.capacity, room.ring), (1024, 4 << 20));
        assert_eq!(room.config(), Config::default());
        assert_eq!(room.describe_throttle(), "5 lines then 2/s");
    }

    #[test]
    fn flags_set_the_limits() {
        let room = parse(&["--capacity", "3", "--burst", "20", "--rate", "1000", "--registration-timeout", "2"], false)
            .unwrap();
        assert_eq!(room.capacity(), 3);
        let config = room.config();
        assert_eq!(config.throttle, Some(Throttle { burst: 20, interval: Duration::from_millis(1) }));
        assert_eq!(config.registration_timeout, Duration::from_secs(2));
        assert_eq!(parse(&["--no-throttle"], false).unwrap().config().throttle, None);
    }

    #[test]
    fn a_binary_may_change_the_defaults_and_bound() {
        let room = parse(&[], true).unwrap();
        assert_eq!((room.capacity, room.ring), (8, 256 << 10));
        assert_eq!(parse(&["--capacity", "1024"], true).unwrap().capacity, 1024);
        assert!(parse(&["--capacity", "1025"], true).is_err());
        assert!(parse(&["--capacity", "0"], false).is_err());
    }
}
