//! `tap-server`: the chat server on smoltcp, over a Linux TAP device.
//!
//! The same `no_std` server loop as the firmware (`embedded::Server`), run
//! as a process: smoltcp is the TCP/IP stack, and the TAP device is its
//! Ethernet link to the host's kernel, so `nc` and the tutorial's client on
//! the host reach it at `--address`.

use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::{Command, ExitCode};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chat_core::{ClientStorage, Instant, LineStorage, Room};
use clap::{CommandFactory, FromArgMatches, Parser};
use embedded::{Server, Settings, Slot, Sockets};
use log::{info, warn};
use mio::net::UnixStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use room_args::RoomArgs;
use smoltcp::iface::SocketStorage;
use smoltcp::phy::{Medium, TunTapInterface};
use smoltcp::wire::{EthernetAddress, Ipv4Cidr};

/// Each socket's receive and send buffers. A send buffer holds what a
/// client has not acknowledged yet; the room's log holds the rest.
const RX_BUFFER: usize = 4096;
const TX_BUFFER: usize = 8192;

/// The room's defaults here: 8 clients, as on the board, at most 1024;
/// a 256 KiB log (how far a client may fall behind before it is
/// disconnected as too slow), with a line record per 64 bytes of it.
const CAPACITY: u16 = 8;
const MAX_CAPACITY: u16 = 1024;
const LOG_BYTES: u32 = 256 * 1024;
const BYTES_PER_LINE: usize = 64;

/// The poller's tokens: the TAP device, and the signal pipe.
const TAP: Token = Token(0);
const SIGNAL: Token = Token(1);

#[derive(Parser, Debug)]
#[command(
    name = "tap-server",
    version,
    about = "The chat server on smoltcp, over a Linux TAP device",
    long_about = "The chat server on smoltcp, over a Linux TAP device.\n\n\
        tap-server runs the chat room on smoltcp, a TCP/IP stack of its own, whose Ethernet link to \
        this machine's kernel is a TAP device: the same server loop as the firmware. Clients on this \
        machine connect to --address, e.g. `nc 192.168.69.1 55555`. It speaks the protocol in \
        PROTOCOL.md: line clients (nc, telnet, chat-client) and the tutorial's Python client; \
        browsers get the chat page on --web-port (http://192.168.69.1/) and join the same room over \
        its WebSocket.\n\n\
        The room's flags (--capacity, --ring, --burst, --rate, --no-throttle, \
        --registration-timeout) are chat-server's too. Where chat-server takes --listen \
        ADDRESS:PORT on this machine's stack, tap-server takes the address of its own stack, with \
        the network's prefix, and the port apart: --address ADDRESS/PREFIX --port PORT.",
    after_help = "The TAP device must exist and be up, with an address for this machine's side on \
        --address's network. The simplest way: as root, in a network namespace of its own (README.md \
        and tests/tap.rs do this):\n\n    \
        ip netns add chat\n    \
        ip netns exec chat ip link set lo up\n    \
        ip netns exec chat ip tuntap add name tap0 mode tap\n    \
        ip netns exec chat ip addr add 192.168.69.100/24 dev tap0\n    \
        ip netns exec chat ip link set tap0 up\n    \
        ip netns exec chat tap-server\n\n\
        Logs go to stderr (RUST_LOG=debug for more); the first line on stdout is \
        `listening on ADDRESS:PORT`, the second (unless --web-port 0) `web on ADDRESS:PORT`. SIGINT or SIGTERM tells every client that the server is \
        shutting down, closes their connections (waiting at most the room's drain timeout, 2 s) \
        and exits 0."
)]
struct Args {
    /// The TAP device to serve on. It must exist and be up.
    #[arg(long, value_name = "NAME", default_value = "tap0")]
    tap: String,

    /// The server's own IPv4 address on the TAP network, with the network's
    /// prefix length. Not the TAP device's address (that is this machine's
    /// side of the link).
    #[arg(long, value_name = "ADDRESS/PREFIX", default_value = "192.168.69.1/24", value_parser = parse_cidr)]
    address: Ipv4Cidr,

    /// The chat port.
    #[arg(long, default_value_t = 55555, value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,

    /// The web port: browsers get the chat page at `/` and join the room
    /// over its WebSocket (`/ws`). 0 turns it off.
    #[arg(long, value_name = "PORT", default_value_t = 80)]
    web_port: u16,

    /// The server's Ethernet address (unicast).
    #[arg(long, value_name = "MAC", default_value = "02:00:00:00:00:01", value_parser = parse_mac)]
    mac: EthernetAddress,

    #[command(flatten)]
    room: RoomArgs,
}

impl Args {
    /// The command line, with this server's defaults for the room: 8
    /// clients and a 256 KiB log. `--clients`, the old name of
    /// `--capacity`, is still understood.
    fn parse_command_line() -> Args {
        let command = RoomArgs::with_defaults(Args::command(), CAPACITY, MAX_CAPACITY, LOG_BYTES)
            .mut_arg("capacity", |arg| arg.alias("clients"));
        Args::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit())
    }
}

fn main() -> ExitCode {
    let args = Args::parse_command_line();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tap-server: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let web_port = match args.web_port {
        0 => None,
        port if port == args.port => return Err(format!("--web-port {port} is the chat port too")),
        port => Some(port),
    };
    let mut device = open_tap(args)?;
    check_network(args);

    // The loop sleeps in `poll` on the TAP device and on a socket pair the
    // signal handlers write a byte into, so a signal wakes it whenever it
    // comes, and an idle server sleeps with no timeout at all.
    //
    // mio is edge-triggered: a readiness event comes when a frame arrives,
    // not while frames wait. That is enough because every wake-up calls
    // `Server::poll`, whose `Interface::poll` (smoltcp 0.14) reads frames
    // until the device says `WouldBlock`; a frame that arrives after that
    // read is a new edge. And the signal pipe is read until it is empty.
    let setup = |e: io::Error| format!("cannot set up the poller: {e}");
    let mut poll = Poll::new().map_err(setup)?;
    poll.registry().register(&mut SourceFd(&device.as_raw_fd()), TAP, Interest::READABLE).map_err(setup)?;
    let (signals, wake) = std::os::unix::net::UnixStream::pair().map_err(setup)?;
    signals.set_nonblocking(true).map_err(setup)?;
    wake.set_nonblocking(true).map_err(setup)?;
    let mut signals = UnixStream::from_std(signals);
    poll.registry().register(&mut signals, SIGNAL, Interest::READABLE).map_err(setup)?;
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let writer = wake.try_clone().map_err(setup)?;
        signal_hook::low_level::pipe::register(signal, writer)
            .map_err(|e| format!("cannot handle signal {signal}: {e}"))?;
    }

    let secrets = args.room.secrets()?;
    let capacity = args.room.capacity();
    // A socket per client, and a spare for each port: the connection one
    // beyond capacity is told the room is full, on either port.
    let sockets = capacity + 1 + usize::from(web_port.is_some());
    let mut clients = vec![ClientStorage::EMPTY; capacity];
    let mut lines = vec![LineStorage::EMPTY; (args.room.ring_bytes() / BYTES_PER_LINE).max(2)];
    let mut bytes = vec![0; args.room.ring_bytes()];
    let mut room = Room::new(&mut clients, &mut lines, &mut bytes, args.room.config());
    room.set_password(secrets.password.as_deref());
    room.set_op_password(secrets.op_password.as_deref());
    let mut storage: Vec<SocketStorage> = (0..sockets).map(|_| SocketStorage::EMPTY).collect();
    let mut slots = vec![Slot::EMPTY; sockets];
    let mut rx = vec![0; sockets * RX_BUFFER];
    let mut tx = vec![0; sockets * TX_BUFFER];

    let settings = Settings {
        mac: args.mac,
        address: args.address,
        gateway: None,
        port: args.port,
        web_port,
        random_seed: random_seed(),
    };
    let clock = std::time::Instant::now();
    let now = || Instant::from_millis(u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX));
    let sockets = Sockets { storage: &mut storage, slots: &mut slots, rx: &mut rx, tx: &mut tx };
    let mut server = Server::new(&mut device, &settings, now(), room, sockets);
    // How long a shutdown waits for the clients' last lines to go out.
    let drain_timeout = server.room().config().drain_timeout;

    let listening = format!("listening on {}:{}", args.address.address(), args.port);
    println!("{listening}");
    if let Some(port) = web_port {
        println!("web on {}:{port}", args.address.address());
    }
    info!(
        "{listening} ({} clients, {} KiB log, flood control {}, TAP device {})",
        capacity,
        args.room.ring_bytes() / 1024,
        args.room.describe_throttle(),
        args.tap
    );

    let mut events = Events::with_capacity(4);
    // When a shutdown started: it ends when the room is empty or after the
    // room's drain timeout.
    let mut stopping: Option<Instant> = None;
    loop {
        let at = now();
        let next = server.poll(at, &mut device);
        if let Some(since) = stopping {
            if server.room().is_empty() || at >= since + drain_timeout {
                break;
            }
        }
        let deadline = match stopping {
            Some(since) => Some(next.map_or(since + drain_timeout, |next| next.min(since + drain_timeout))),
            None => next,
        };
        // `Some(at)` (a socket changed after the last read) is a zero
        // timeout: look at the device again at once.
        let timeout = deadline.map(|deadline| Duration::from_millis(at.until(deadline).millis()));
        match poll.poll(&mut events, timeout) {
            Ok(()) => {}
            // A signal interrupted the sleep: its byte is in the pipe, and
            // the next poll returns at once.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot wait for the TAP device: {e}")),
        }
        if events.iter().any(|event| event.token() == SIGNAL) {
            drain(&mut signals);
            if stopping.is_some() {
                warn!("second signal: exiting now");
                break;
            }
            let at = now();
            server.shutdown(at);
            stopping = Some(at);
        }
    }
    info!("bye");
    Ok(())
}

/// Opens the TAP device, or says why not and how to create one.
fn open_tap(args: &Args) -> Result<TunTapInterface, String> {
    let name = &args.tap;
    let setup = setup_help(args);
    if !device_exists(name) {
        return Err(format!("there is no network device {name}; create the TAP device (as root):\n{setup}"));
    }
    if device_down(name) {
        return Err(format!("{name} is down; bring it up (as root):\n    ip link set {name} up"));
    }
    // As root, this would create a missing device; it was checked above, so
    // a missing one is reported with the commands that set it up properly.
    TunTapInterface::new(name, Medium::Ethernet).map_err(|e| {
        format!("cannot open TAP device {name}: {e}\nIs it a TAP device you may use? Create one (as root):\n{setup}")
    })
}

/// The commands that create and configure the TAP device for `args`: for
/// the user running tap-server, or, run as root, for root.
fn setup_help(args: &Args) -> String {
    let name = &args.tap;
    let host = host_side(args.address);
    let user = std::env::var("USER").ok().filter(|user| !user.is_empty() && user != "root");
    let owner = user.map(|user| format!(" user {user}")).unwrap_or_default();
    format!(
        "    ip tuntap add name {name} mode tap{owner}\n    ip link set {name} up\n    ip addr add {host} dev {name}"
    )
}

/// Warns if this machine's side of the TAP link is not on the server's
/// network (then no client here can reach the server), or has the
/// server's own address, saying which `ip` command sets it right. It asks
/// `ip`; without it, nothing is checked.
fn check_network(args: &Args) {
    let name = &args.tap;
    let Ok(output) = Command::new("ip").args(["-o", "-4", "addr", "show", "dev", name]).output() else {
        return;
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let ours: Vec<Ipv4Cidr> = text
        .lines()
        .filter_map(|line| line.split_whitespace().skip_while(|&word| word != "inet").nth(1))
        .filter_map(|cidr| parse_cidr(cidr).ok())
        .collect();
    let fix = format!("ip addr add {} dev {name}", host_side(args.address));
    let server = args.address;
    if ours.iter().any(|cidr| cidr.address() == server.address()) {
        warn!("{name} has the server's own address {}: give it another one (as root): {fix}", server.address());
    } else if !ours.iter().any(|cidr| server.contains_addr(&cidr.address())) {
        let has = if ours.is_empty() {
            "no IPv4 address".to_string()
        } else {
            ours.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        };
        warn!(
            "{name} has {has}, none on the server's network {}: clients here cannot reach {}; \
             add one (as root): {fix}",
            server.network(),
            server.address()
        );
    }
}

/// An address for the host's side of the TAP link: on the server's network,
/// not the server's (`.100` on a /24, as in the README).
fn host_side(server: Ipv4Cidr) -> Ipv4Cidr {
    let prefix = server.prefix_len();
    let bits = u32::from(server.address());
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    let hosts = !mask;
    let network = bits & mask;
    let host = [100, 2, 1].into_iter().find(|&n| n < hosts && network | n != bits).map_or(bits, |n| network | n);
    Ipv4Cidr::new(Ipv4Addr::from(host), prefix)
}

/// Whether this network namespace has a device called `name`.
/// `/proc/net/dev` is the reading process's namespace's, whatever `/sys`
/// shows; if it cannot be read, opening the device will tell.
fn device_exists(name: &str) -> bool {
    match fs::read_to_string("/proc/net/dev") {
        Ok(devices) => devices.lines().filter_map(|line| line.split_once(':')).any(|(dev, _)| dev.trim() == name),
        Err(_) => true,
    }
}

/// Whether the device is administratively down: smoltcp's TAP device
/// panics on the first frame written to a device that is down.
fn device_down(name: &str) -> bool {
    const IFF_UP: u32 = 0x1;
    fs::read_to_string(format!("/sys/class/net/{name}/flags"))
        .ok()
        .and_then(|flags| u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).ok())
        .is_some_and(|flags| flags & IFF_UP == 0)
}

/// Empties the signal pipe (until it would block), so that the next
/// signal is a new readiness event.
fn drain(signals: &mut UnixStream) {
    let mut buf = [0; 64];
    while matches!(io::Read::read(signals, &mut buf), Ok(n) if n > 0) {}
}

/// A seed for TCP's initial sequence numbers, different on every start.
fn random_seed() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    nanos ^ u64::from(std::process::id()).rotate_left(32)
}

fn parse_cidr(text: &str) -> Result<Ipv4Cidr, String> {
    let (address, prefix) = text.split_once('/').ok_or("expected ADDRESS/PREFIX, e.g. 192.168.69.1/24")?;
    let address: Ipv4Addr = address.parse().map_err(|e| format!("{address:?}: {e}"))?;
    let prefix: u8 = prefix.parse().map_err(|e| format!("prefix {prefix:?}: {e}"))?;
    if prefix > 32 {
        return Err(format!("prefix {prefix} is over 32"));
    }
    if address.is_unspecified() || address.is_multicast() || address.is_broadcast() {
        return Err(format!("{address} is not a unicast address"));
    }
    Ok(Ipv4Cidr::new(address, prefix))
}

fn parse_mac(text: &str) -> Result<EthernetAddress, String> {
    let mut bytes = [0; 6];
    let mut parts = text.split([':', '-']);
    for byte in &mut bytes {
        let part = parts.next().ok_or("expected six bytes, e.g. 02:00:00:00:00:01")?;
        if part.len() != 2 {
            return Err(format!("{part:?} is not two hex digits"));
        }
        *byte = u8::from_str_radix(part, 16).map_err(|e| format!("{part:?}: {e}"))?;
    }
    if parts.next().is_some() {
        return Err("expected six bytes, e.g. 02:00:00:00:00:01".into());
    }
    let mac = EthernetAddress(bytes);
    if !mac.is_unicast() {
        return Err(format!("{mac} is not a unicast address (its first byte must be even)"));
    }
    Ok(mac)
}
