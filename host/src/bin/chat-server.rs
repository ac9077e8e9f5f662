//! `chat-server`: the chat room on a laptop.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use host::server::{Options, Server, Storage};
use host::{nats, tls};
use room_args::RoomArgs;

/// A TCP chat room. Clients: the tutorial's Python client, `nc`, `telnet`,
/// or `chat-client`. The protocol is in PROTOCOL.md.
#[derive(Parser, Debug)]
#[command(group = clap::ArgGroup::new("tls_identity").args(["tls_cert", "tls_self_signed"]))]
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
    #[arg(short, long, value_name = "ADDRESS:PORT", default_value = chat_core::wire::DEFAULT_ADDRESS)]
    listen: SocketAddr,

    /// Also serve browsers on this address: the chat page at `/` and its
    /// WebSocket at `/ws`, in the same room (off by default). Port 0 picks
    /// a free port; the line after `listening on ADDR` on stdout is then
    /// `web on ADDR` with the real address.
    #[arg(long, value_name = "ADDRESS:PORT")]
    web: Option<SocketAddr>,

    /// A page allowed to open the room's WebSocket, as a browser names it
    /// in `Origin` (`https://chat.example.org`); repeat for more. Without
    /// any, only the web listener's own page may (the Origin's host is the
    /// request's Host), so another site cannot join in its visitor's name.
    #[arg(long = "web-origin", value_name = "ORIGIN", requires = "web")]
    web_origins: Vec<String>,

    /// Serve the web listener over TLS (HTTPS, and the page's WebSocket as
    /// WSS) with the certificate of --tls-cert/--tls-key or --tls-self-signed.
    #[arg(long, requires_all = ["web", "tls_identity"])]
    web_tls: bool,

    /// Seconds of silence before TCP keepalive probes a client: one that
    /// vanished is disconnected about twice that long later (at most 20 s more).
    #[arg(long, value_name = "SECS", default_value = "20", value_parser = host::keepalive::parse_secs)]
    keepalive: std::time::Duration,

    #[command(flatten)]
    room: RoomArgs,

    /// Be one of several chat-servers that are one room: every server
    /// given the same NATS server (with JetStream: `nats-server -js`) and
    /// --room shares its clients, its lines in one order, and unique
    /// nicknames. Without it the room is this server's alone.
    #[arg(long, value_name = "URL")]
    nats: Option<String>,

    /// The room's name on the NATS server (letters, digits, `-` and `_`).
    #[arg(long = "room", value_name = "NAME", default_value = "chat", requires = "nats")]
    nats_room: String,

    /// Also listen for TLS clients on ADDRESS:PORT (TLS 1.2 and 1.3), into the same
    /// room. Needs --tls-cert and --tls-key, or --tls-self-signed. The line
    /// on stdout after `listening on ADDR` (and `web on ADDR` with --web) is
    /// `listening for TLS on ADDR`, the next the certificate's SHA-256
    /// fingerprint.
    #[arg(long, value_name = "ADDRESS:PORT", requires = "tls_identity")]
    tls_listen: Option<SocketAddr>,

    /// The server's certificate for TLS, PEM (its chain may follow it); for
    /// --tls-listen, --web-tls, or both.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Make a certificate for localhost and 127.0.0.1 at start instead
    /// (clients trust it by the fingerprint the server prints: chat-client --pin).
    #[arg(long)]
    tls_self_signed: bool,
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

/// [`listen`], or what to say about `addr` when it cannot be had.
fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    listen(addr).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => format!("address {addr} already in use"),
        _ => format!("cannot listen on {addr}: {e}"),
    })
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
    // The room borrows its allowed origins for its whole life: the
    // process's.
    let web_origins: Vec<&'static str> =
        cli.web_origins.into_iter().map(|origin| &*Box::leak(origin.into_boxed_str())).collect();
    let options = Options {
        capacity: cli.room.capacity(),
        ring_bytes: cli.room.ring_bytes(),
        config: cli.room.config(),
        secrets,
        web_origins: Box::leak(web_origins.into_boxed_slice()),
        member: cli.nats.is_some(),
    };
    let listeners = bind(cli.listen).and_then(|chat| Ok((chat, cli.web.map(bind).transpose()?)));
    let (listener, web) = match listeners {
        Ok(listeners) => listeners,
        Err(message) => {
            eprintln!("chat-server: {message}");
            return ExitCode::FAILURE;
        }
    };
    // The TLS side is set up before anything is printed: a bad file is
    // reported on its own.
    if (cli.tls_cert.is_some() || cli.tls_self_signed) && cli.tls_listen.is_none() && !cli.web_tls {
        eprintln!("chat-server: a TLS certificate is for --tls-listen or --web-tls: give one of them");
        return ExitCode::FAILURE;
    }
    let identity = match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => Some(tls::load(cert, key)),
        _ if cli.tls_self_signed => Some(tls::self_signed()),
        _ => None,
    };
    let identity = match identity.transpose() {
        Ok(identity) => identity,
        Err(e) => {
            eprintln!("chat-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tls = match (cli.tls_listen, &identity) {
        (Some(addr), Some(identity)) => match listen(addr) {
            Ok(listener) => Some((listener, identity.config.clone())),
            Err(e) => {
                eprintln!("chat-server: cannot listen for TLS on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let mut storage = Storage::new(&options);
    let mut server = match Server::new(listener, &mut storage, options.config) {
        Ok(server) => server.with_keepalive(cli.keepalive),
        Err(e) => {
            eprintln!("chat-server: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(url) = cli.nats {
        if let Err(e) = server.join_cluster(&nats::Options { url, room: cli.nats_room }) {
            eprintln!("chat-server: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Some(web) = web {
        let web_tls = identity.as_ref().filter(|_| cli.web_tls).map(|identity| identity.config.clone());
        if let Err(e) = server.listen_web(web, web_tls) {
            eprintln!("chat-server: cannot serve the web listener: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Some((listener, config)) = tls {
        if let Err(e) = server.listen_tls(listener, config) {
            eprintln!("chat-server: cannot start the TLS listener: {e}");
            return ExitCode::FAILURE;
        }
    }
    let fingerprint = identity.map(|identity| identity.fingerprint);
    let addrs = (server.local_addr(), server.web_addr().transpose(), server.tls_local_addr().transpose());
    match addrs {
        (Ok(addr), Ok(web_addr), Ok(tls_addr)) => {
            println!("listening on {addr}");
            if let Some(web_addr) = web_addr {
                println!("web on {web_addr}");
            }
            if let Some(tls_addr) = tls_addr {
                println!("listening for TLS on {tls_addr}");
            }
            if let Some(fingerprint) = fingerprint {
                println!("TLS certificate SHA-256 fingerprint {fingerprint}");
            }
        }
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => {
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
