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

use std::path::{Path, PathBuf};

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

    /// A file holding the room's password: every line client is asked for
    /// it after its nickname (the tutorial's client cannot send one and is
    /// refused). A file, not the command line, where `ps` would show it.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// A file holding the operators' password: `/op PASSWORD` makes a
    /// client an operator, who can `/kick`, `/ban` and `/unban`.
    #[arg(long, value_name = "FILE")]
    pub op_password_file: Option<PathBuf>,

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

    /// The passwords from their files, or which file could not be used.
    pub fn secrets(&self) -> Result<Secrets, String> {
        Ok(Secrets {
            password: self.password_file.as_deref().map(read_secret).transpose()?,
            op_password: self.op_password_file.as_deref().map(read_secret).transpose()?,
        })
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

/// The room's password and the operators', read from their files.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// What a client must send after its nickname, if anything.
    pub password: Option<Vec<u8>>,
    /// What `/op` takes, if the room has operators.
    pub op_password: Option<Vec<u8>>,
}

impl std::fmt::Debug for Secrets {
    /// Says which passwords are set, never what they are.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("password", &self.password.as_ref().map(|_| "set"))
            .field("op_password", &self.op_password.as_ref().map(|_| "set"))
            .finish()
    }
}

/// A password file's first line, without its line end: what a client
/// types. Empty is refused (it would let anyone in with an empty line, and
/// is most likely a mistake).
fn read_secret(path: &Path) -> Result<Vec<u8>, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read the password file {}: {e}", path.display()))?;
    let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(format!("the password file {} has an empty first line", path.display()));
    }
    Ok(line.to_vec())
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
