//! The server against smoltcp clients over a simulated Ethernet wire, on a
//! simulated clock: no TAP device, no root, no waiting. (`tests/tap.rs`
//! runs the real binary against the kernel's TCP and the Python clients.)

extern crate std;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::string::String;
use std::vec;
use std::vec::Vec;

use chat_core::wire::WEB_ROOM_FULL;
use chat_core::{ClientId, Config, Dialect, Instant, Room, ROOM_FULL};
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp::{Socket, SocketBuffer, State};
use smoltcp::time::Instant as NetInstant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address, Ipv4Cidr};

use crate::{Server, Settings, Sockets, Storage};

const SERVER: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
const PORT: u16 = 55555;
const WEB_PORT: u16 = 8080;

type Queue = Rc<RefCell<VecDeque<Vec<u8>>>>;

/// One end of an Ethernet cable: frames sent at one end arrive at the other.
struct End {
    rx: Queue,
    tx: Queue,
}

fn cable() -> (End, End) {
    let (a, b) = (Queue::default(), Queue::default());
    (End { rx: a.clone(), tx: b.clone() }, End { rx: b, tx: a })
}

struct Rx(Vec<u8>);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

struct Tx(Queue);

impl phy::TxToken for Tx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let result = f(&mut frame);
        self.0.borrow_mut().push_back(frame);
        result
    }
}

impl Device for End {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx;

    fn receive(&mut self, _: NetInstant) -> Option<(Rx, Tx)> {
        let frame = self.rx.borrow_mut().pop_front()?;
        Some((Rx(frame), Tx(self.tx.clone())))
    }

    fn transmit(&mut self, _: NetInstant) -> Option<Tx> {
        Some(Tx(self.tx.clone()))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

/// A client connection and everything it has received.
struct Conn {
    handle: SocketHandle,
    got: String,
    /// What it should have received so far.
    want: String,
}

/// The server, and the clients' host at the other end of the cable.
struct Net<'s> {
    server: Server<'s>,
    server_end: End,
    iface: Interface,
    sockets: SocketSet<'static>,
    end: End,
    now: u64,
    next_port: u16,
}

impl<'s> Net<'s> {
    /// The server on `room` and `sockets` at one end of a new cable.
    fn new(room: Room<'s>, sockets: Sockets<'s>) -> Self {
        Net::with(&settings(), room, sockets)
    }

    /// The same, with a web port.
    fn with_web(room: Room<'s>, sockets: Sockets<'s>) -> Self {
        Net::with(&Settings { web_port: Some(WEB_PORT), ..settings() }, room, sockets)
    }

    fn with(settings: &Settings, room: Room<'s>, sockets: Sockets<'s>) -> Self {
        let (mut server_end, mut end) = cable();
        let server = Server::new(&mut server_end, settings, Instant::ZERO, room, sockets);
        let mut config = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress([2, 0, 0, 0, 0, 2])));
        config.random_seed = 7;
        let mut iface = Interface::new(config, &mut end, NetInstant::ZERO);
        iface.update_ip_addrs(|addrs| addrs.push(IpCidr::new(IpAddress::v4(10, 0, 0, 2), 24)).unwrap());
        Net { server, server_end, iface, sockets: SocketSet::new(vec![]), end, now: 0, next_port: 49152 }
    }

    /// One simulated millisecond; returns the server's next wake-up.
    fn step(&mut self) -> Option<Instant> {
        self.now += 1;
        let next = self.server.poll(Instant::from_millis(self.now), &mut self.server_end);
        self.iface.poll(NetInstant::from_millis(self.now as i64), &mut self.end, &mut self.sockets);
        next
    }

    /// Steps until `done`, at most 20 simulated seconds.
    fn until(&mut self, what: &str, mut done: impl FnMut(&mut Self) -> bool) {
        for _ in 0..20_000 {
            if done(self) {
                return;
            }
            self.step();
        }
        panic!("timed out waiting for {what}");
    }

    fn socket(&mut self, conn: &Conn) -> &mut Socket<'static> {
        self.sockets.get_mut::<Socket>(conn.handle)
    }

    fn connect(&mut self) -> Conn {
        self.connect_to(PORT)
    }

    fn connect_to(&mut self, port: u16) -> Conn {
        let mut socket = Socket::new(SocketBuffer::new(vec![0; 4096]), SocketBuffer::new(vec![0; 4096]));
        self.next_port += 1;
        socket.connect(self.iface.context(), (SERVER, port), self.next_port).unwrap();
        Conn { handle: self.sockets.add(socket), got: String::new(), want: String::new() }
    }

    fn send(&mut self, conn: &Conn, text: &str) {
        let sent = self.socket(conn).send_slice(text.as_bytes());
        assert_eq!(sent, Ok(text.len()), "sending {text:?}");
    }

    /// Steps until `conn` has received `text` next, then checks all it got.
    fn expect(&mut self, conn: &mut Conn, text: &str) {
        conn.want.push_str(text);
        let want = conn.want.len();
        self.until(text, |net| {
            let socket = net.sockets.get_mut::<Socket>(conn.handle);
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = socket.recv_slice(&mut buf) {
                conn.got.push_str(core::str::from_utf8(&buf[..n]).unwrap());
            }
            conn.got.len() >= want
        });
        assert_eq!(conn.got, conn.want);
    }

    /// Steps until the server has closed `conn`'s connection (its FIN came
    /// after everything expected), then closes our side and forgets it.
    fn expect_closed(&mut self, conn: Conn) {
        self.until("the server's close", |net| {
            let socket = net.sockets.get_mut::<Socket>(conn.handle);
            assert!(!socket.can_recv(), "unexpected bytes after {:?}", conn.want);
            !socket.may_recv()
        });
        self.socket(&conn).close();
        self.until("our close", |net| net.sockets.get_mut::<Socket>(conn.handle).state() == State::Closed);
        self.sockets.remove(conn.handle);
    }

    /// A connection to `port` that is told `answer` (a refusal) and closed.
    fn refused(&mut self, port: u16, answer: &[u8]) {
        let mut conn = self.connect_to(port);
        self.expect(&mut conn, core::str::from_utf8(answer).unwrap());
        self.expect_closed(conn);
    }

    /// A line client registered as `nick`.
    fn join(&mut self, nick: &str) -> Conn {
        let mut conn = self.connect();
        self.expect(&mut conn, "NICK");
        self.send(&conn, &std::format!("{nick}\n"));
        self.expect(&mut conn, &std::format!("{nick} joined!\nConnected to server!\n"));
        conn
    }
}

fn settings() -> Settings {
    Settings {
        mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
        address: Ipv4Cidr::new(SERVER, 24),
        gateway: None,
        port: PORT,
        web_port: None,
        random_seed: 1,
    }
}

#[test]
fn line_clients_chat_and_quit() {
    let mut room = chat_core::Storage::<2, 64, 8192>::new();
    let mut sockets = Storage::<3, 1024, 1024>::new();
    let mut net = Net::new(room.room(quiet()), sockets.sockets());

    let mut alice = net.join("alice");
    let mut bob = net.join("bob");
    net.expect(&mut alice, "bob joined!\n");
    net.send(&alice, "hi bob\n");
    net.expect(&mut alice, "alice: hi bob\n");
    net.expect(&mut bob, "alice: hi bob\n");
    net.send(&bob, "/quit\n");
    net.expect(&mut bob, "bob left!\n");
    net.expect(&mut alice, "bob left!\n");
    net.expect_closed(bob);
    assert_eq!(net.server.room().len(), 1);
}

#[test]
fn the_connection_beyond_capacity_is_told_the_room_is_full() {
    let mut room = chat_core::Storage::<2, 64, 8192>::new();
    let mut sockets = Storage::<3, 1024, 1024>::new();
    let mut net = Net::new(room.room(quiet()), sockets.sockets());

    let mut alice = net.join("alice");
    let mut bob = net.join("bob");
    net.expect(&mut alice, "bob joined!\n");
    net.refused(PORT, ROOM_FULL);
    // The spare socket listens again: another one is told too.
    net.refused(PORT, ROOM_FULL);
    net.send(&bob, "still here\n");
    net.expect(&mut alice, "bob: still here\n");
    net.expect(&mut bob, "bob: still here\n");
}

#[test]
fn sockets_are_recycled_past_time_wait() {
    // One client slot and two sockets: every session needs a recycled one.
    let mut room = chat_core::Storage::<1, 64, 8192>::new();
    let mut sockets = Storage::<2, 1024, 1024>::new();
    let mut net = Net::new(room.room(quiet()), sockets.sockets());

    for round in 0..50 {
        let nick = std::format!("r{round}");
        let mut conn = net.join(&nick);
        net.send(&conn, "/quit\n");
        net.expect(&mut conn, &std::format!("{nick} left!\n"));
        net.expect_closed(conn);
    }
    assert!(net.server.room().is_empty());
}

#[test]
fn a_reset_connection_leaves_the_room_at_once() {
    let mut room = chat_core::Storage::<2, 64, 8192>::new();
    let mut sockets = Storage::<3, 1024, 1024>::new();
    let mut net = Net::new(room.room(quiet()), sockets.sockets());

    let mut alice = net.join("alice");
    let bob = net.join("bob");
    net.expect(&mut alice, "bob joined!\n");
    net.socket(&bob).abort();
    let reset = net.now;
    net.expect(&mut alice, "bob left!\n");
    net.until("bob's slot", |net| net.server.room().len() == 1);
    // Freed as soon as the RST came, not after the room's drain timeout
    // spent waiting to send bob his own `left!`.
    assert!(net.now - reset < 100, "bob's slot was freed after {} ms", net.now - reset);
}

#[test]
fn an_idle_server_has_no_deadline() {
    let mut room = chat_core::Storage::<2, 64, 8192>::new();
    let mut sockets = Storage::<3, 1024, 1024>::new();
    let mut net = Net::new(room.room(quiet()), sockets.sockets());
    assert_eq!(net.step(), None, "nothing connected, nothing to wake up for");

    // A client that spent its flood-control burst and went quiet: the room
    // keeps its refill time, long past; the server must not wake for it.
    let mut flo = net.join("flo");
    net.send(&flo, "1\n2\n3\n4\n5\n");
    net.expect(&mut flo, "flo: 1\nflo: 2\nflo: 3\nflo: 4\nflo: 5\n");
    net.until("quiet", |net| net.now > 2_000);
    let now = Instant::from_millis(net.now + 1);
    // Only smoltcp's keep-alive remains, 20 s after the last exchange (at
    // most 2 s ago).
    let next = net.step().expect("a keep-alive deadline");
    assert!(next.millis() > now.millis() + 15_000, "next wake-up at {next:?}, now {now:?}");
}

/// The protocol's defaults without history on join: these tests are about
/// sockets, and their transcripts stay what they test.
fn quiet() -> Config {
    Config { history: 0, ..Config::default() }
}

#[test]
fn a_full_room_is_told_so_on_both_ports() {
    // Three clients, five sockets: three listen on the chat port and two on
    // the web port at first. Three line clients take the chat port's three;
    // one of the web port's moves over, so that either port still answers.
    let mut room = chat_core::Storage::<3, 64, 8192>::new();
    let mut sockets = Storage::<5, 1024, 1024>::new();
    let mut net = Net::with_web(room.room(quiet()), sockets.sockets());

    let mut alice = net.join("alice");
    let mut bob = net.join("bob");
    let _carol = net.join("carol");
    net.expect(&mut alice, "bob joined!\ncarol joined!\n");
    net.expect(&mut bob, "carol joined!\n");
    for _ in 0..2 {
        net.refused(PORT, ROOM_FULL);
        net.refused(WEB_PORT, WEB_ROOM_FULL);
    }
    net.send(&bob, "still here\n");
    net.expect(&mut alice, "bob: still here\n");
    net.expect(&mut bob, "bob: still here\n");
}

#[test]
fn the_web_port_s_connections_are_the_room_s_browsers() {
    let mut room = chat_core::Storage::<3, 64, 8192>::new();
    let mut sockets = Storage::<5, 1024, 1024>::new();
    let mut net = Net::with_web(room.room(quiet()), sockets.sockets());

    let mut alice = net.join("alice");
    let mut browser = net.connect_to(WEB_PORT);
    net.until("the browser's slot", |net| net.server.room().len() == 2);
    let dialects: Vec<Dialect> = (0..3).map(|i| net.server.room().dialect(ClientId::new(i).unwrap())).collect();
    assert_eq!(dialects, [Dialect::Line, Dialect::Web, Dialect::Unknown]);
    // A browser speaks first: it is sent nothing until it asks.
    net.until("a while", |net| net.now > 1_000);
    net.expect(&mut browser, "");
    // The line clients after it are pumped through their own sockets.
    let mut bob = net.join("bob");
    net.expect(&mut alice, "bob joined!\n");
    net.send(&alice, "hi bob\n");
    net.expect(&mut alice, "alice: hi bob\n");
    net.expect(&mut bob, "alice: hi bob\n");
    net.expect(&mut browser, "");
    // Its hang-up frees its slot.
    net.socket(&browser).close();
    net.until("the browser's departure", |net| net.server.room().len() == 2);
}
