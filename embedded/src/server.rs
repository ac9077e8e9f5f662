//! The server loop: a smoltcp interface, a pool of TCP sockets listening on
//! the chat port (and the web port, if any), and a [`Room`] that decides
//! everything said over them.

use chat_core::wire::{BANNED, ROOM_FULL, WEB_BANNED, WEB_ROOM_FULL};
use chat_core::{ClientId, Duration as ChatDuration, Instant, Refused, Room, Status};
use smoltcp::iface::{Config as IfaceConfig, Interface, PollResult, SocketHandle, SocketSet, SocketStorage};
use smoltcp::phy::Device;
use smoltcp::socket::tcp::{Socket, SocketBuffer, State};
use smoltcp::time::{Duration, Instant as NetInstant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, IpEndpoint, Ipv4Address, Ipv4Cidr};

use crate::conn::TcpConn;
use crate::fmt::{debug, info, warning};

/// How long a connection the server closed may take to finish its closing
/// handshake (the peer acknowledging our FIN and sending its own) before it
/// is reset, so that a peer that never closes its side cannot keep a socket
/// out of the pool.
pub const LINGER: ChatDuration = ChatDuration::from_secs(5);

/// The smallest receive or send buffer a socket may have: the send buffer
/// of a fresh connection must take what a refused connection is told whole
/// ([`ROOM_FULL`] or [`BANNED`], on the web port their HTTP responses
/// [`WEB_ROOM_FULL`] and [`WEB_BANNED`], about 150 bytes), as it is written
/// once and the connection closed.
pub const MIN_BUFFER: usize = 256;

// What a refused connection is told fits a fresh send buffer whole.
const _: () = {
    let answers = [ROOM_FULL, BANNED, WEB_ROOM_FULL, WEB_BANNED];
    let mut i = 0;
    while i < answers.len() {
        assert!(answers[i].len() <= MIN_BUFFER);
        i += 1;
    }
};

/// Keep-alive probes on idle connections, and the silence after which a
/// connection is reset: a peer that vanished without a FIN or RST (cable
/// pulled, host powered off) frees its socket and its room slot within
/// `TIMEOUT` (about a minute, as `chat-server`'s TCP keepalive: 20 s idle,
/// then 4 probes 5 s apart), while an idle but live client answers the
/// probes and stays.
const KEEP_ALIVE: Duration = Duration::from_secs(20);
const TIMEOUT: Duration = Duration::from_secs(60);

/// Where the server is on the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The interface's Ethernet address; unicast.
    pub mac: EthernetAddress,
    /// The server's IPv4 address and the prefix length of its network.
    pub address: Ipv4Cidr,
    /// A router for clients outside that network, if any.
    pub gateway: Option<Ipv4Address>,
    /// The chat port, not 0.
    pub port: u16,
    /// The web port, if browsers are served (the core's page, and its
    /// WebSocket into the room: [`Room::accept_web`]); not 0, not `port`.
    pub web_port: Option<u16>,
    /// Seeds TCP's initial sequence numbers; should differ on every start
    /// (it need not be secret).
    pub random_seed: u64,
}

/// Which port a socket listens on: the chat port or the web port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Door {
    Chat,
    Web,
}

/// What one socket of the pool is doing.
#[derive(Clone, Copy, Debug)]
enum Role {
    /// Not set up yet (a fresh [`Slot`]).
    Unused,
    /// Listening on the chat port or the web port, or in the middle of a
    /// handshake there.
    Listening(Door),
    /// Carrying a client of the room.
    Client(ClientId),
    /// Closed by us (its client left, or it was told the room is full);
    /// waiting for the closing handshake, at most until `since` +
    /// [`LINGER`].
    Closing { since: Instant },
    /// Neither listening nor connected: the server is shutting down.
    Idle,
}

/// The server's bookkeeping for one socket of the pool. Callers allocate
/// these (one per socket, see [`Sockets`]); the server fills them.
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    handle: Option<SocketHandle>,
    role: Role,
    /// The peer, kept for the log: a reset socket forgets it.
    remote: Option<IpEndpoint>,
    /// The socket carrying the client whose [`ClientId`] is this slot's
    /// index: the way back from the room's ready list to a socket. (There
    /// is a slot per socket and a socket per client, so every id has one.)
    socket_of_client: Option<u16>,
}

impl Slot {
    /// A slot not set up yet.
    pub const EMPTY: Slot = Slot { handle: None, role: Role::Unused, remote: None, socket_of_client: None };
}

/// The memory for the server's TCP sockets, from the caller: statics on a
/// board ([`Storage`]), `Vec`s sized from the command line on a host.
///
/// There are `storage.len()` sockets; `slots` has as many entries, and
/// `rx` and `tx` are split evenly among them as their receive and send
/// buffers. Give the pool one socket more than the room has client slots
/// (two with a web port: a spare for each port): a connection beyond
/// capacity then still gets through the handshake and is told
/// [`ROOM_FULL`] (a browser: [`WEB_ROOM_FULL`]) instead of being refused
/// unheard.
///
/// Every socket serves either port. A smoltcp socket listens on one port
/// at a time, so with a web port the free sockets are shared between the
/// two: a socket that starts listening takes the port with fewer sockets
/// listening, and when one port has none left while the other has two or
/// more idle, one of those moves over. A room's clients can then be all
/// line clients, all browsers or any mix, on one socket per client plus
/// the spares; a pool split in two fixed halves would need a spare and
/// room for every client on each side.
pub struct Sockets<'a> {
    /// smoltcp's socket table.
    pub storage: &'a mut [SocketStorage<'a>],
    /// One per socket.
    pub slots: &'a mut [Slot],
    /// Every socket's receive buffer, back to back.
    pub rx: &'a mut [u8],
    /// Every socket's send buffer, back to back.
    pub tx: &'a mut [u8],
}

/// Fixed memory for `SOCKETS` sockets with `RX`- and `TX`-byte buffers, to
/// keep in a `static` on a board (for example in a `StaticCell`).
pub struct Storage<'a, const SOCKETS: usize, const RX: usize, const TX: usize> {
    storage: [SocketStorage<'a>; SOCKETS],
    slots: [Slot; SOCKETS],
    rx: [[u8; RX]; SOCKETS],
    tx: [[u8; TX]; SOCKETS],
}

impl<'a, const SOCKETS: usize, const RX: usize, const TX: usize> Storage<'a, SOCKETS, RX, TX> {
    /// Empty storage.
    pub const fn new() -> Self {
        Storage {
            storage: [SocketStorage::EMPTY; SOCKETS],
            slots: [Slot::EMPTY; SOCKETS],
            rx: [[0; RX]; SOCKETS],
            tx: [[0; TX]; SOCKETS],
        }
    }

    /// The sockets' memory, for [`Server::new`].
    pub fn sockets(&'a mut self) -> Sockets<'a> {
        Sockets {
            storage: &mut self.storage,
            slots: &mut self.slots,
            rx: self.rx.as_flattened_mut(),
            tx: self.tx.as_flattened_mut(),
        }
    }
}

impl<const SOCKETS: usize, const RX: usize, const TX: usize> Default for Storage<'_, SOCKETS, RX, TX> {
    fn default() -> Self {
        Self::new()
    }
}

/// The chat server on a smoltcp interface.
///
/// Drive it with [`Server::poll`] whenever the device has a frame or the
/// time it returned has come; it never blocks, reads no clock and
/// allocates nothing.
pub struct Server<'a> {
    iface: Interface,
    sockets: SocketSet<'a>,
    slots: &'a mut [Slot],
    room: Room<'a>,
    port: u16,
    web_port: Option<u16>,
    /// False once [`Server::shutdown`] was called.
    accepting: bool,
}

impl<'a> Server<'a> {
    /// A server with the address in `settings`, listening on its port (and
    /// its web port) with every socket in `sockets`, for the clients of
    /// `room`.
    ///
    /// # Panics
    ///
    /// On configuration errors, not on anything a peer can cause: if
    /// `device` is not an Ethernet device, if `settings` has a multicast
    /// MAC or IP address, a port 0, or a web port that is the chat port, if
    /// there are no sockets (or fewer than two with a web port), if `slots`
    /// is not as long as `storage`, or if a socket's share of `rx` or `tx`
    /// is under [`MIN_BUFFER`] bytes.
    pub fn new<D>(device: &mut D, settings: &Settings, now: Instant, room: Room<'a>, sockets: Sockets<'a>) -> Self
    where
        D: Device + ?Sized,
    {
        let Sockets { storage, slots, rx, tx } = sockets;
        let count = storage.len();
        assert!(count > 0, "the server needs at least one socket");
        assert_eq!(slots.len(), count, "one slot per socket");
        assert!(settings.port != 0, "the chat port cannot be 0");
        if let Some(web) = settings.web_port {
            assert!(web != 0 && web != settings.port, "the web port cannot be 0 or the chat port");
            assert!(count >= 2, "the server needs a socket for each port");
        }
        let (rx_len, tx_len) = (rx.len() / count, tx.len() / count);
        assert!(rx_len >= MIN_BUFFER && tx_len >= MIN_BUFFER, "socket buffers need at least {} bytes", MIN_BUFFER);

        let mut config = IfaceConfig::new(HardwareAddress::Ethernet(settings.mac));
        config.random_seed = settings.random_seed;
        let mut iface = Interface::new(config, device, net_time(now));
        iface.update_ip_addrs(|addrs| {
            // A fresh interface has no address yet, and room for at least one.
            let _ = addrs.push(IpCidr::Ipv4(settings.address));
        });
        if let Some(gateway) = settings.gateway {
            // A fresh routing table has room for its default route.
            let _ = iface.routes_mut().add_default_ipv4_route(gateway);
        }

        let set = SocketSet::new(storage);
        let mut server = Server {
            iface,
            sockets: set,
            slots,
            room,
            port: settings.port,
            web_port: settings.web_port,
            accepting: true,
        };
        let buffers = rx.chunks_exact_mut(rx_len).zip(tx.chunks_exact_mut(tx_len));
        for (index, (rx, tx)) in buffers.enumerate().take(count) {
            let mut socket = Socket::new(SocketBuffer::new(rx), SocketBuffer::new(tx));
            // Chat lines are small and should leave at once, not wait for
            // the previous one's acknowledgement.
            socket.set_nagle_enabled(false);
            socket.set_keep_alive(Some(KEEP_ALIVE));
            socket.set_timeout(Some(TIMEOUT));
            let handle = server.sockets.add(socket);
            server.slots[index] = Slot { handle: Some(handle), role: Role::Idle, remote: None, socket_of_client: None };
            server.listen(index, server.next_door());
        }
        server
    }

    /// The room, to see how many are in it.
    pub fn room(&self) -> &Room<'a> {
        &self.room
    }

    /// Does everything due by `now`: takes in the frames `device` has,
    /// accepts new connections (telling the one too many that the room is
    /// full), lets the room pump every client, closes and recycles sockets,
    /// and sends what is ready.
    ///
    /// Returns when to call it again at the latest, if it has to be called
    /// before the device has another frame: the earliest of smoltcp's
    /// timers (retransmissions, delayed ACKs, keep-alives), the room's
    /// ([`Room::poll_timeout`]) and the closing connections' linger times.
    /// `Some(now)` means "again at once". Sleep until then or until the
    /// device has a frame, whichever comes first.
    pub fn poll<D>(&mut self, now: Instant, device: &mut D) -> Option<Instant>
    where
        D: Device + ?Sized,
    {
        let at = net_time(now);
        self.iface.poll(at, device, &mut self.sockets);
        self.room.handle_timeout(now);
        self.service(now);
        // Sends what the room wrote. If that (or a frame that came in
        // meanwhile) changed a socket, its news has not been looked at: the
        // device will not wake us for a frame already taken in.
        if self.iface.poll(at, device, &mut self.sockets) == PollResult::SocketStateChanged {
            return Some(now);
        }
        let net = self.iface.poll_at(at, &self.sockets).map(chat_time);
        // Only lingers still to run out: one that has is already reset, and
        // a past deadline would make the caller spin.
        let linger = self
            .slots
            .iter()
            .filter_map(|slot| match slot.role {
                Role::Closing { since } => Some(since + LINGER).filter(|&end| end > now),
                _ => None,
            })
            .min();
        // The room has handled everything due by `now` and every client it
        // named was pumped: its deadline is in the future (its rule).
        [net, self.room.poll_timeout(), linger].into_iter().flatten().min()
    }

    /// Starts a shutdown: no new connections, and every client is told and
    /// leaves ([`Room::shutdown`]). Keep polling until the room
    /// [is empty](Room::is_empty) or its drain timeout has passed.
    pub fn shutdown(&mut self, now: Instant) {
        info!("shutting down");
        self.accepting = false;
        self.room.shutdown(now);
        for slot in self.slots.iter_mut() {
            let Some(handle) = slot.handle else { continue };
            if let Role::Listening(_) = slot.role {
                let socket = self.sockets.get_mut::<Socket>(handle);
                // A connection still in its handshake is reset; a listening
                // socket just stops.
                socket.abort();
                slot.role = Role::Idle;
            }
        }
    }

    /// Accepts, pumps, closes and recycles, socket by socket.
    fn service(&mut self, now: Instant) {
        for index in 0..self.slots.len() {
            self.service_one(index, now);
        }
        self.balance();
        // A line read from one client is news for others, and those pumped
        // before it in the pass above have not sent it yet.
        while let Some(id) = self.room.poll_ready(now) {
            let socket = self.slots.get(id.index()).and_then(|slot| slot.socket_of_client);
            if let Some(index) = socket {
                self.pump(usize::from(index), id, now);
            }
        }
    }

    fn service_one(&mut self, index: usize, now: Instant) {
        let Some(handle) = self.slots[index].handle else { return };
        let socket = self.sockets.get_mut::<Socket>(handle);
        match self.slots[index].role {
            Role::Unused | Role::Idle => {}
            Role::Listening(door) => match socket.state() {
                // The handshake failed (timed out or reset): listen again.
                State::Closed | State::TimeWait => self.recycle(index),
                _ if socket.may_send() => self.accept(index, door, now),
                // Listening, or in the handshake.
                _ => {}
            },
            Role::Client(id) => self.pump(index, id, now),
            Role::Closing { since } => match socket.state() {
                // The peer has closed too. TIME-WAIT (10 s in smoltcp) would
                // keep the socket out of the pool: on a chat port with a
                // handful of sockets, 200 quick reconnections would run out
                // of them. It guards against stray segments of this
                // connection being taken for a new one's; a listening socket
                // ignores segments that are not a SYN, and the interface
                // answers them with a reset, which is what a peer still in
                // LAST-ACK needs to hear anyway.
                State::TimeWait => self.recycle(index),
                // Fully closed, or reset by the peer. A socket we aborted
                // still has its RST to send; it forgets its peer once sent.
                State::Closed if socket.remote_endpoint().is_none() => self.recycle(index),
                State::Closed => {}
                _ if now >= since + LINGER => {
                    debug!("socket {} lingered too long, reset", index);
                    socket.abort();
                }
                _ => {}
            },
        }
    }

    /// A connection on a listening socket completed its handshake.
    fn accept(&mut self, index: usize, door: Door, now: Instant) {
        let slot = &mut self.slots[index];
        let Some(handle) = slot.handle else { return };
        let socket = self.sockets.get_mut::<Socket>(handle);
        slot.remote = socket.remote_endpoint();
        let peer = slot.remote.map(|remote| remote.addr.into());
        let (accepted, tag) = match door {
            Door::Chat => (self.room.accept(now, peer), ""),
            Door::Web => (self.room.accept_web(now, peer), " (web)"),
        };
        if let Some(remote) = slot.remote {
            info!("Connected with {}{}", remote, tag);
        }
        match accepted {
            Ok(id) => {
                slot.role = Role::Client(id);
                if let Some(entry) = self.slots.get_mut(id.index()) {
                    entry.socket_of_client = u16::try_from(index).ok();
                }
                // Sends `NICK` now rather than on the next wake-up.
                self.pump(index, id, now);
            }
            Err(refused) => {
                match slot.remote {
                    Some(remote) => info!("{}: {}, closing", remote, refused.describe()),
                    None => info!("socket {}: {}, closing", index, refused.describe()),
                }
                // The send buffer of a fresh connection is empty and at
                // least MIN_BUFFER bytes: the answer fits whole.
                let notice = answer(refused, door);
                if socket.send_slice(notice) != Ok(notice.len()) {
                    warning!("socket {}: the notice did not fit", index);
                }
                socket.close();
                slot.role = Role::Closing { since: now };
            }
        }
    }

    /// Lets the room move bytes over a client's socket; closes it if the
    /// room is done with it.
    fn pump(&mut self, index: usize, id: ClientId, now: Instant) {
        let slot = &mut self.slots[index];
        let Some(handle) = slot.handle else { return };
        let socket = self.sockets.get_mut::<Socket>(handle);
        if let Status::Closed(reason) = self.room.pump(id, &mut TcpConn::new(socket), now) {
            match slot.remote {
                Some(remote) => info!("{} closed: {}", remote, reason),
                None => info!("socket {} closed: {}", index, reason),
            }
            // Sends what the room wrote last (`left!`, a notice), then a FIN.
            socket.close();
            slot.role = Role::Closing { since: now };
        }
    }

    /// Puts a socket whose connection is over back to listening.
    fn recycle(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        slot.remote = None;
        slot.role = Role::Idle;
        if self.accepting {
            let door = self.next_door();
            self.listen(index, door);
            if let Role::Listening(_) = self.slots[index].role {
                debug!("socket {} listening again, on port {}", index, self.port_of(door));
            }
        }
    }

    /// Makes a socket that is closed (or in TIME-WAIT, which `listen`
    /// resets) listen on `door`'s port. Several sockets may listen on one
    /// port: a SYN goes to the first that is listening.
    fn listen(&mut self, index: usize, door: Door) {
        let port = self.port_of(door);
        let slot = &mut self.slots[index];
        let Some(handle) = slot.handle else { return };
        slot.role = match self.sockets.get_mut::<Socket>(handle).listen(port) {
            Ok(()) => Role::Listening(door),
            Err(_) => {
                warning!("socket {} cannot listen on port {}", index, port);
                Role::Idle
            }
        };
    }

    /// Sockets listening on `door`'s port with no handshake under way: those
    /// that can take its next SYN.
    fn idle_listeners(&self, door: Door) -> impl Iterator<Item = usize> + use<'_, 'a> {
        self.slots.iter().enumerate().filter_map(move |(index, slot)| {
            let handle = slot.handle?;
            let idle = matches!(slot.role, Role::Listening(d) if d == door)
                && self.sockets.get::<Socket>(handle).state() == State::Listen;
            idle.then_some(index)
        })
    }

    /// The port a socket that starts listening takes: the one with fewer
    /// sockets waiting for a SYN (the chat port on a tie, and always
    /// without a web port).
    fn next_door(&self) -> Door {
        if self.web_port.is_some() && self.idle_listeners(Door::Web).count() < self.idle_listeners(Door::Chat).count() {
            Door::Web
        } else {
            Door::Chat
        }
    }

    /// With a web port: when one port has no socket waiting for a SYN and
    /// the other has two or more, moves one over, so that either port
    /// answers while there are sockets to spare (a connection refused by
    /// the room is still told why).
    fn balance(&mut self) {
        if self.web_port.is_none() || !self.accepting {
            return;
        }
        for (empty, full) in [(Door::Chat, Door::Web), (Door::Web, Door::Chat)] {
            if self.idle_listeners(empty).next().is_some() {
                continue;
            }
            let Some(index) = self.idle_listeners(full).nth(1) else { continue };
            if let Some(handle) = self.slots[index].handle {
                // A listening socket has no peer: aborting it sends nothing.
                self.sockets.get_mut::<Socket>(handle).abort();
                self.listen(index, empty);
                debug!("socket {} moved to port {}", index, self.port_of(empty));
            }
        }
    }

    /// The port `door` stands for.
    fn port_of(&self, door: Door) -> u16 {
        match door {
            Door::Web => self.web_port.unwrap_or(self.port),
            Door::Chat => self.port,
        }
    }
}

/// What a connection the room refused is told: a notice on the chat port,
/// an HTTP response on the web port.
fn answer(refused: Refused, door: Door) -> &'static [u8] {
    match door {
        Door::Chat => refused.notice(),
        Door::Web => refused.http_response(),
    }
}

/// The room's time as smoltcp's: both are milliseconds from the caller's
/// origin.
fn net_time(now: Instant) -> NetInstant {
    NetInstant::from_millis(i64::try_from(now.millis()).unwrap_or(i64::MAX))
}

/// smoltcp's time as the room's, rounded up: waking before a timer is due
/// would find nothing to do and sleep 0 ms until it is.
fn chat_time(at: NetInstant) -> Instant {
    let micros = u64::try_from(at.total_micros()).unwrap_or(0);
    Instant::from_millis(micros.div_ceil(1000))
}
