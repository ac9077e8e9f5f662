//! `tap-server`: the chat server on smoltcp, over a Linux TAP device.
//!
//! The same `no_std` server loop as the firmware (`embedded::Server`), run
//! as a process: smoltcp is the TCP/IP stack, and the TAP device is its
//! Ethernet link to the host's kernel, so `nc` and the tutorial's client on
//! the host reach it at `--address`.

use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use chat_core::{ClientStorage, Config, Instant, LineStorage, Room};
use clap::Parser;
use embedded::{Server, Settings, Slot, Sockets};
use log::{info, warn};
use smoltcp::iface::SocketStorage;
use smoltcp::phy::{Medium, TunTapInterface};
use smoltcp::wire::{EthernetAddress, Ipv4Cidr};

/// Each socket's receive and send buffers. A send buffer holds what a
/// client has not acknowledged yet; the room's log holds the rest.
const RX_BUFFER: usize = 4096;
const TX_BUFFER: usize = 8192;

/// The room's log: how far a client may fall behind before it is
/// disconnected as too slow.
const LOG_BYTES: usize = 256 * 1024;
const LOG_LINES: usize = 4096;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "The chat server on smoltcp, over a Linux TAP device",
    long_about = "The chat server on smoltcp, over a Linux TAP device.\n\n\
        tap-server runs the chat room on smoltcp, a TCP/IP stack of its own, whose Ethernet link to \
        this machine's kernel is a TAP device: the same server loop as the firmware. Clients on this \
        machine connect to --address, e.g. `nc 192.168.69.1 55555`. It speaks the protocol in \
        PROTOCOL.md: line clients (nc, telnet, chat-client) and the tutorial's Python client.",
    after_help = "The TAP device must exist and be up, with an address for this machine's side on \
        the same network as --address. Create it once (as root):\n\n    \
        ip tuntap add name tap0 mode tap user $USER\n    \
        ip link set tap0 up\n    \
        ip addr add 192.168.69.100/24 dev tap0\n\n\
        Logs go to stderr (RUST_LOG=debug for more); the first line on stdout is \
        `listening on ADDRESS:PORT`. SIGINT or SIGTERM tells every client that the server is \
        shutting down, closes their connections (waiting at most 2 s) and exits 0."
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

    /// The server's Ethernet address (unicast).
    #[arg(long, value_name = "MAC", default_value = "02:00:00:00:00:01", value_parser = parse_mac)]
    mac: EthernetAddress,

    /// How many clients the room holds. One connection more is accepted
    /// only to be told the room is full.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024))]
    clients: u16,

    /// Turn flood control off (for benchmarks); by default a client may send
    /// 5 lines at once, then 2 a second.
    #[arg(long)]
    no_throttle: bool,

    /// Lines of the room a line client is replayed when it joins (0: none).
    #[arg(long, default_value_t = chat_core::wire::DEFAULT_HISTORY)]
    history: u16,
}

fn main() -> ExitCode {
    let args = Args::parse();
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
    let mut device = open_tap(args)?;

    // The signal handlers only write a byte into this pair; the loop sleeps
    // on it and on the TAP device at once, so a signal wakes it whenever it
    // comes, and an idle server sleeps with no timeout at all.
    let (signals, wake) = UnixStream::pair().map_err(|e| format!("cannot create a socket pair: {e}"))?;
    signals.set_nonblocking(true).map_err(|e| format!("cannot set up signals: {e}"))?;
    wake.set_nonblocking(true).map_err(|e| format!("cannot set up signals: {e}"))?;
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let writer = wake.try_clone().map_err(|e| format!("cannot set up signals: {e}"))?;
        signal_hook::low_level::pipe::register(signal, writer)
            .map_err(|e| format!("cannot handle signal {signal}: {e}"))?;
    }

    let capacity = usize::from(args.clients);
    let sockets = capacity + 1;
    let mut clients = vec![ClientStorage::EMPTY; capacity];
    let mut lines = vec![LineStorage::EMPTY; LOG_LINES];
    let mut bytes = vec![0; LOG_BYTES];
    let config = Config {
        throttle: if args.no_throttle { None } else { Config::default().throttle },
        history: args.history,
        ..Config::default()
    };
    let room = Room::new(&mut clients, &mut lines, &mut bytes, config);
    let mut storage: Vec<SocketStorage> = (0..sockets).map(|_| SocketStorage::EMPTY).collect();
    let mut slots = vec![Slot::EMPTY; sockets];
    let mut rx = vec![0; sockets * RX_BUFFER];
    let mut tx = vec![0; sockets * TX_BUFFER];

    let settings =
        Settings { mac: args.mac, address: args.address, gateway: None, port: args.port, random_seed: random_seed() };
    let clock = std::time::Instant::now();
    let now = || Instant::from_millis(u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX));
    let sockets = Sockets { storage: &mut storage, slots: &mut slots, rx: &mut rx, tx: &mut tx };
    let mut server = Server::new(&mut device, &settings, now(), room, sockets);

    let listening = format!("listening on {}:{}", args.address.address(), args.port);
    println!("{listening}");
    info!("{listening} ({} clients, TAP device {})", capacity, args.tap);

    let fds = [device.as_raw_fd(), signals.as_raw_fd()];
    // When a shutdown started: it ends when the room is empty or after the
    // room's drain timeout.
    let mut stopping: Option<Instant> = None;
    loop {
        let at = now();
        let next = server.poll(at, &mut device);
        if let Some(since) = stopping {
            if server.room().is_empty() || at >= since + server.room().config().drain_timeout {
                break;
            }
        }
        let deadline = match stopping {
            Some(since) => {
                let drained = since + server.room().config().drain_timeout;
                Some(next.map_or(drained, |next| next.min(drained)))
            }
            None => next,
        };
        let signalled = wait(fds, deadline.map(|deadline| at.until(deadline).millis()))
            .map_err(|e| format!("cannot wait for the TAP device: {e}"))?;
        if signalled {
            drain(&signals);
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

/// The commands that create and configure the TAP device for `args`.
fn setup_help(args: &Args) -> String {
    let name = &args.tap;
    let host = host_side(args.address);
    format!("    ip tuntap add name {name} mode tap user $USER\n    ip link set {name} up\n    ip addr add {host} dev {name}")
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

/// Sleeps until the TAP device has a frame, a signal came, or `timeout_ms`
/// passed (never, if `None`). Returns whether a signal came.
fn wait(fds: [RawFd; 2], timeout_ms: Option<u64>) -> io::Result<bool> {
    let mut pollfds = fds.map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 });
    let timeout = timeout_ms.map_or(-1, |ms| i32::try_from(ms).unwrap_or(i32::MAX));
    // SAFETY: `pollfds` is an array of initialised `pollfd`s that outlives
    // the call, and its length is passed with it.
    let ready = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, timeout) };
    if ready < 0 {
        let error = io::Error::last_os_error();
        // A signal interrupted the sleep: its byte is in the pipe; the next
        // wait sees it at once.
        return if error.kind() == io::ErrorKind::Interrupted { Ok(false) } else { Err(error) };
    }
    Ok(pollfds[1].revents & libc::POLLIN != 0)
}

/// Empties the signal pipe, so the next wait sleeps again.
fn drain(mut signals: &UnixStream) {
    let mut buf = [0; 64];
    while matches!(io::Read::read(&mut signals, &mut buf), Ok(n) if n > 0) {}
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
