//! `chat-server`: the chat room on a laptop.

use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;

use chat_core::{Config, Throttle};
use clap::Parser;
use host::server::{Options, Server, Storage};

/// A TCP chat room. Clients: the tutorial's Python client, `nc`, `telnet`,
/// or `chat-client`. The protocol is in PROTOCOL.md.
#[derive(Parser, Debug)]
#[command(version, after_help = "Logging: RUST_LOG=debug for more, RUST_LOG=warn for less (default: info).")]
struct Cli {
    /// Address to listen on; port 0 picks a free port. The first line on
    /// stdout is `listening on ADDR` with the real address.
    #[arg(short, long, default_value = "127.0.0.1:55555")]
    listen: SocketAddr,

    /// Most clients in the room at once; one more is told the room is full.
    #[arg(short, long, default_value_t = 1024, value_parser = clap::value_parser!(u16).range(1..65535))]
    capacity: u16,

    /// Bytes of the room's shared log: a client that falls this far behind
    /// is disconnected as too slow (it is told why).
    #[arg(long, default_value_t = 4 << 20, value_parser = clap::value_parser!(u32).range(4096..))]
    ring: u32,

    /// Flood control: lines a client may send at once.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    burst: u16,

    /// Flood control: lines a second a client may send after its burst.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=1000))]
    rate: u16,

    /// Turn flood control off (for benchmarks).
    #[arg(long)]
    no_throttle: bool,

    /// Seconds of silence before TCP keepalive probes a client: one that
    /// vanished is disconnected about twice that long later (at most 20 s more).
    #[arg(long, value_name = "SECS", default_value = "20", value_parser = host::keepalive::parse_secs)]
    keepalive: std::time::Duration,

    /// Seconds a connection may take to choose a nickname.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    registration_timeout: u64,
}

/// Connections the kernel may hold for us while the loop is busy. std's 128
/// drops SYNs when a thousand clients arrive at once; the kernel caps this
/// at `net.core.somaxconn` anyway.
const BACKLOG: i32 = 4096;

/// A listening socket on `addr`, with a deep backlog.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();

    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => log::debug!("open-file limit: {limit}"),
        Err(e) => log::warn!("cannot raise the open-file limit: {e}"),
    }

    let options = Options {
        capacity: usize::from(cli.capacity),
        ring_bytes: cli.ring as usize,
        config: Config {
            registration_timeout_ms: cli.registration_timeout * 1000,
            throttle: (!cli.no_throttle)
                .then_some(Throttle { burst: cli.burst, interval_ms: 1000 / u64::from(cli.rate) }),
            ..Config::default()
        },
    };
    let listener = match listen(cli.listen) {
        Ok(listener) => listener,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            eprintln!("chat-server: address {} already in use", cli.listen);
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("chat-server: cannot listen on {}: {e}", cli.listen);
            return ExitCode::FAILURE;
        }
    };
    let mut storage = Storage::new(&options);
    let server = match Server::new(listener, &mut storage, options.config) {
        Ok(server) => server.with_keepalive(cli.keepalive),
        Err(e) => {
            eprintln!("chat-server: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match server.local_addr() {
        Ok(addr) => println!("listening on {addr}"),
        Err(e) => {
            eprintln!("chat-server: cannot read the listening address: {e}");
            return ExitCode::FAILURE;
        }
    }
    log::info!(
        "room for {} clients, {} KiB log, flood control {}",
        options.capacity,
        options.ring_bytes / 1024,
        match options.config.throttle {
            Some(t) => format!("{} lines then {}/s", t.burst, 1000 / t.interval_ms),
            None => "off".to_string(),
        }
    );
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-server: {e}");
            ExitCode::FAILURE
        }
    }
}
