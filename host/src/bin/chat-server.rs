//! `chat-server`: the chat room on a laptop.

use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;

use clap::Parser;
use host::server::{Options, Server, Storage};
use room_args::RoomArgs;

/// A TCP chat room. Clients: the tutorial's Python client, `nc`, `telnet`,
/// or `chat-client`. The protocol is in PROTOCOL.md.
#[derive(Parser, Debug)]
#[command(
    name = "chat-server",
    version,
    after_help = "The room's flags (--capacity, --ring, --burst, --rate, --no-throttle, \
        --registration-timeout) are tap-server's too. tap-server is its own TCP/IP stack (smoltcp), \
        so where chat-server takes --listen ADDRESS:PORT on this machine's stack, tap-server takes \
        its own address with the network's prefix (--address ADDRESS/PREFIX) and --port.\n\n\
        Logging: RUST_LOG=debug for more, RUST_LOG=warn for less (default: info)."
)]
struct Cli {
    /// Address to listen on; port 0 picks a free port. The first line on
    /// stdout is `listening on ADDR` with the real address.
    #[arg(short, long, value_name = "ADDRESS:PORT", default_value = "127.0.0.1:55555")]
    listen: SocketAddr,

    /// Seconds of silence before TCP keepalive probes a client: one that
    /// vanished is disconnected about twice that long later (at most 20 s more).
    #[arg(long, value_name = "SECS", default_value = "20", value_parser = host::keepalive::parse_secs)]
    keepalive: std::time::Duration,

    #[command(flatten)]
    room: RoomArgs,
}

/// Connections the kernel may hold for us while the loop is busy. std's
/// `TcpListener::bind` asks for 128, which drops SYNs when a thousand
/// clients arrive at once; the kernel caps this at `net.core.somaxconn`
/// (4096 by default since Linux 5.4).
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

    let secrets = match cli.room.secrets() {
        Ok(secrets) => secrets,
        Err(e) => {
            eprintln!("chat-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = Options {
        capacity: cli.room.capacity(),
        ring_bytes: cli.room.ring_bytes(),
        config: cli.room.config(),
        secrets,
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
        cli.room.describe_throttle()
    );
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-server: {e}");
            ExitCode::FAILURE
        }
    }
}
