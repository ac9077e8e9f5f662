//! The server's event loop: one thread, one poller, no thread per client.
//!
//! Each wake-up: accept what is waiting, pump the connections that became
//! ready (reading and handling their lines), act on the room's deadlines,
//! then pump the clients the room has news for ([`Room::poll_ready`]), so
//! each recipient gets everything new in one write and idle clients cost
//! nothing. Then sleep until the next readiness event or the room's next
//! deadline: an idle server uses no CPU.
//!
//! A second, TLS, listener may feed the same room ([`Server::listen_tls`]):
//! its connections are [`Conn::Tls`], pumped by the same code. So may a web
//! listener ([`Server::listen_web`]): its connections are browsers, taken
//! with [`Room::accept_web`].
//!
//! Given a NATS server ([`Server::join_cluster`]), the room is one member
//! of a room spanning every chat-server on it: the broker's side runs on a
//! thread of its own ([`crate::nats::Bridge`]), which wakes this loop
//! through a `mio::Waker`; the loop hands it what the room asks of the
//! world outside ([`Room::poll_event`]) and hands the room the events of
//! the one order ([`Room::apply`]).

use std::io::{self, Read as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chat_core::cluster::Outgoing;
use chat_core::{ClientId, ClientStorage, Config, Instant, LineStorage, RemoteStorage, Room, Status};
use log::{info, warn};
use mio::net::{TcpListener, UnixStream};
use mio::{Events, Interest, Poll, Token};

use crate::conn::{Conn, Socket};
use crate::nats::{self, Bridge, In, Out};
use crate::tls::TlsConn;
pub use room_args::Secrets;

const LISTENER: Token = Token(usize::MAX - 1);
const SIGNAL: Token = Token(usize::MAX - 2);
const TLS_LISTENER: Token = Token(usize::MAX - 3);
const WEB_LISTENER: Token = Token(usize::MAX - 4);
const CLUSTER: Token = Token(usize::MAX - 5);

/// How many clients of other servers a member room knows by name (`/who`,
/// `/msg`, unique nicknames): 33 bytes each.
const MAX_REMOTES: usize = 16_384;

/// How long `accept` rests after running out of file descriptors: long
/// enough not to spin, short enough that a freed descriptor is used soon.
const ACCEPT_BACKOFF: chat_core::Duration = chat_core::Duration::from_millis(100);

/// Average bytes a stored line takes, to size the log's index from its bytes.
const BYTES_PER_LINE: usize = 32;

/// What the server is asked to be.
#[derive(Clone, Debug)]
pub struct Options {
    /// Client slots.
    pub capacity: usize,
    /// Bytes of the room's log: how far a client may fall behind.
    pub ring_bytes: usize,
    /// The room's limits and timeouts.
    pub config: Config,
    /// The room's password and the operators' (see [`Room::set_password`]).
    pub secrets: Secrets,
    /// The pages whose browsers may open the room's WebSocket; empty: the
    /// web listener's own page only (see [`Room::set_web_origins`]).
    pub web_origins: &'static [&'static str],
    /// The room will be one member of a room spanning several servers
    /// ([`Server::join_cluster`]).
    pub member: bool,
}

/// The room's storage, sized at start and never grown.
pub struct Storage {
    secrets: Secrets,
    web_origins: &'static [&'static str],
    clients: Vec<ClientStorage>,
    lines: Vec<LineStorage>,
    bytes: Vec<u8>,
    /// A member room's list of the clients on other servers.
    remotes: Option<Vec<RemoteStorage>>,
}

impl Storage {
    /// Storage for `options`.
    pub fn new(options: &Options) -> Storage {
        Storage {
            secrets: options.secrets.clone(),
            web_origins: options.web_origins,
            clients: vec![ClientStorage::EMPTY; options.capacity],
            lines: vec![LineStorage::EMPTY; (options.ring_bytes / BYTES_PER_LINE).max(2)],
            bytes: vec![0; options.ring_bytes],
            remotes: options.member.then(|| vec![RemoteStorage::EMPTY; MAX_REMOTES]),
        }
    }
}

/// Which listener a connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Door {
    /// The chat port: line and seed clients.
    Chat,
    /// The TLS listener: the same clients in a TLS session.
    Tls,
    /// The web port: browsers, for the page and its WebSocket
    /// ([`Room::accept_web`]).
    Web,
}

/// A server about to run: the listening sockets, the poller, and the room.
pub struct Server<'a> {
    room: Room<'a>,
    listener: TcpListener,
    /// The TLS listener and what its sessions are made from.
    tls: Option<(TcpListener, Arc<rustls::ServerConfig>)>,
    /// The web listener, if the server has one ([`Server::listen_web`]),
    /// and its TLS configuration when it serves HTTPS and WSS.
    web: Option<(TcpListener, Option<Arc<rustls::ServerConfig>>)>,
    poll: Poll,
    signals: UnixStream,
    conns: Vec<Option<Conn>>,
    clock: std::time::Instant,
    /// When accepting may be tried again after running out of descriptors.
    accept_again: Option<Instant>,
    /// When a shutdown gives up waiting for output to drain.
    shutdown_by: Option<Instant>,
    /// Silence before TCP keepalive probes a client ([`crate::keepalive`]).
    keepalive: Duration,
    /// The broker's side of a member room.
    cluster: Option<Bridge>,
}

impl<'a> Server<'a> {
    /// A server on `listener` with a room in `storage`. SIGINT and SIGTERM
    /// start a graceful shutdown.
    pub fn new(listener: std::net::TcpListener, storage: &'a mut Storage, config: Config) -> io::Result<Server<'a>> {
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let (signals, sender) = std::os::unix::net::UnixStream::pair()?;
        signals.set_nonblocking(true)?;
        sender.set_nonblocking(true)?;
        let mut signals = UnixStream::from_std(signals);
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::low_level::pipe::register(signal, sender.try_clone()?)?;
        }
        poll.registry().register(&mut signals, SIGNAL, Interest::READABLE)?;
        let capacity = storage.clients.len();
        let mut room = Room::new(&mut storage.clients, &mut storage.lines, &mut storage.bytes, config);
        room.set_password(storage.secrets.password.as_deref());
        room.set_op_password(storage.secrets.op_password.as_deref());
        if !storage.web_origins.is_empty() {
            room.set_web_origins(Some(storage.web_origins));
        }
        if let Some(remotes) = storage.remotes.as_deref_mut() {
            room.join_cluster(remotes);
        }
        Ok(Server {
            room,
            listener,
            tls: None,
            web: None,
            poll,
            signals,
            conns: (0..capacity).map(|_| None).collect(),
            clock: std::time::Instant::now(),
            accept_again: None,
            shutdown_by: None,
            keepalive: crate::keepalive::IDLE,
            cluster: None,
        })
    }

    /// Makes the room one member of the room `options.room` on the NATS
    /// server `options.url`, with every other chat-server there (its
    /// storage must have been made with [`Options::member`]). Returns once
    /// the broker answered, or why it did not.
    pub fn join_cluster(&mut self, options: &nats::Options) -> Result<(), String> {
        if !self.room.is_member() {
            return Err("the room's storage was not made for a member room".into());
        }
        let waker = mio::Waker::new(self.poll.registry(), CLUSTER).map_err(|e| format!("cannot make a waker: {e}"))?;
        let history = usize::from(self.room.config().history);
        let bridge = Bridge::start(options, waker, history)?;
        info!("server {} in room {} on {}", bridge.server_id(), options.room, options.url);
        self.cluster = Some(bridge);
        Ok(())
    }

    /// Probes a silent client after `idle` instead of [`crate::keepalive::IDLE`].
    pub fn with_keepalive(mut self, idle: Duration) -> Server<'a> {
        self.keepalive = idle;
        self
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Also serves browsers on `listener`: its connections are taken with
    /// [`Room::accept_web`] (the room serves the page and the WebSocket),
    /// in the same loop, with the same backoff when descriptors run out.
    /// With `tls`, over TLS: HTTPS and WSS.
    pub fn listen_web(
        &mut self,
        listener: std::net::TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> io::Result<()> {
        self.web = Some((self.watch(listener, WEB_LISTENER)?, tls));
        Ok(())
    }

    /// The address of the web listener, if there is one.
    pub fn web_addr(&self) -> Option<io::Result<SocketAddr>> {
        self.web.as_ref().map(|(listener, _)| listener.local_addr())
    }

    /// Also accepts TLS clients on `listener`, into the same room.
    pub fn listen_tls(&mut self, listener: std::net::TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<()> {
        self.tls = Some((self.watch(listener, TLS_LISTENER)?, config));
        Ok(())
    }

    /// The address the TLS listener listens on, if there is one.
    pub fn tls_local_addr(&self) -> Option<io::Result<SocketAddr>> {
        self.tls.as_ref().map(|(listener, _)| listener.local_addr())
    }

    /// A further listener, watched by the poller as `token`.
    fn watch(&self, listener: std::net::TcpListener, token: Token) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        self.poll.registry().register(&mut listener, token, Interest::READABLE)?;
        Ok(listener)
    }

    fn now(&self) -> Instant {
        Instant::from_millis(self.clock.elapsed().as_millis() as u64)
    }

    /// Serves until a signal asks it to stop and the room has drained.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.next_deadline().map(|at| Duration::from_millis(self.now().until(at).millis()));
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            let now = self.now();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(now, Door::Chat),
                    TLS_LISTENER => self.accept(now, Door::Tls),
                    WEB_LISTENER => self.accept(now, Door::Web),
                    SIGNAL => self.start_shutdown(now),
                    CLUSTER => self.take_from_broker(now)?,
                    Token(slot) => {
                        let hung_up = event.is_read_closed() || event.is_error();
                        let writable = event.is_writable() || event.is_write_closed();
                        let Some(id) = ClientId::new(slot) else { continue };
                        if let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) {
                            conn.ready(event.is_readable(), writable, hung_up);
                            self.pump(id, now);
                        }
                    }
                }
            }
            if self.accept_again.is_some_and(|at| now >= at) {
                self.accept_again = None;
                for door in [Door::Chat, Door::Tls, Door::Web] {
                    self.accept(now, door);
                }
            }
            self.room.handle_timeout(now);
            self.hand_to_broker();
            while let Some(id) = self.room.poll_ready(now) {
                self.pump(id, now);
            }
            if let Some(by) = self.shutdown_by {
                if self.room.is_empty() || now >= by {
                    if let Some(bridge) = self.cluster.take() {
                        bridge.shutdown();
                    }
                    info!("shut down");
                    return Ok(());
                }
            }
        }
    }

    /// The listener behind `door`, if the server has it.
    fn listener(&self, door: Door) -> Option<&TcpListener> {
        match door {
            Door::Chat => Some(&self.listener),
            Door::Tls => self.tls.as_ref().map(|(listener, _)| listener),
            Door::Web => self.web.as_ref().map(|(listener, _)| listener),
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        [self.room.poll_timeout(), self.accept_again, self.shutdown_by].into_iter().flatten().min()
    }

    /// Accepts what waits on one of the listeners.
    fn accept(&mut self, now: Instant, door: Door) {
        if self.shutdown_by.is_some() || self.accept_again.is_some() {
            return;
        }
        loop {
            let Some(listener) = self.listener(door) else { return };
            let (stream, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE/ENFILE and the like: rest instead of spinning on
                    // a connection we cannot take.
                    warn!("accept failed: {e}; not accepting for {ACCEPT_BACKOFF}");
                    self.accept_again = Some(now + ACCEPT_BACKOFF);
                    return;
                }
            };
            // A paced room wants its lines out now, not after Nagle's delay.
            if let Err(e) = stream.set_nodelay(true) {
                warn!("{peer}: cannot set TCP_NODELAY: {e}");
            }
            // A client that vanished without a word is noticed, not kept.
            if let Err(e) = crate::keepalive::enable(&stream, self.keepalive) {
                warn!("{peer}: cannot turn on TCP keepalive: {e}");
            }
            let socket = Socket::new(stream, peer);
            let tls = match door {
                Door::Chat => None,
                Door::Tls => self.tls.as_ref().map(|(_, config)| config),
                Door::Web => self.web.as_ref().and_then(|(_, config)| config.as_ref()),
            };
            let mut conn = match tls {
                Some(config) => match TlsConn::new(socket, config.clone()) {
                    Ok(session) => Conn::Tls(Box::new(session)),
                    Err(e) => {
                        warn!("{peer}: cannot start a TLS session: {e}");
                        continue;
                    }
                },
                _ => Conn::Plain(socket),
            };
            let accepted = match door {
                Door::Web => self.room.accept_web(now, Some(peer.ip())),
                Door::Chat | Door::Tls => self.room.accept(now, Some(peer.ip())),
            };
            let id = match accepted {
                Ok(id) => id,
                Err(refused) => {
                    info!("Refused {peer}{}: {refused}", door.tag());
                    // Best effort: a new socket has room for one short
                    // answer. A TLS client is closed without it: no session
                    // yet.
                    if let Conn::Plain(_) = conn {
                        let answer = match door {
                            Door::Web => refused.http_response(),
                            Door::Chat | Door::Tls => refused.notice(),
                        };
                        let _ = embedded_io::Write::write(&mut conn, answer);
                        conn.close();
                    }
                    continue;
                }
            };
            let interest = Interest::READABLE | Interest::WRITABLE;
            if let Err(e) = self.poll.registry().register(conn.stream_mut(), Token(id.index()), interest) {
                warn!("{peer}: cannot watch the socket: {e}");
                self.room.disconnect(id, chat_core::Reason::Io(embedded_io::ErrorKind::Other));
                continue;
            }
            info!("Connected with {peer}{}", door.tag());
            self.conns[id.index()] = Some(conn);
        }
    }

    fn pump(&mut self, id: ClientId, now: Instant) {
        let slot = id.index();
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else { return };
        if let Status::Closed(reason) = self.room.pump(id, conn, now) {
            info!("{} disconnected: {reason}", conn.peer());
            let _ = self.poll.registry().deregister(conn.stream_mut());
            conn.close();
            self.conns[slot] = None;
        }
        self.hand_to_broker();
    }

    /// Hands the broker's side what the member room asks of it, in order.
    fn hand_to_broker(&mut self) {
        let Some(bridge) = &self.cluster else { return };
        while let Some(out) = self.room.poll_event() {
            bridge.send(match out {
                Outgoing::Publish(event) => Out::Publish(event.as_bytes().to_vec()),
                Outgoing::Claim { id, nick } => Out::Claim { slot: id.index(), nick: nick.to_owned() },
                Outgoing::Release(nick) => Out::Release(nick.to_owned()),
            });
        }
    }

    /// Hands the member room what the broker's side has for it: the other
    /// servers' clients, the events of the one order, answers to claims,
    /// and whether the broker is reachable.
    fn take_from_broker(&mut self, now: Instant) -> io::Result<()> {
        while let Some(item) = self.cluster.as_ref().and_then(Bridge::poll) {
            match item {
                In::Roster(nicks) => nicks.iter().for_each(|nick| self.room.add_remote(nick)),
                In::History(event) => {
                    if self.room.recall(&event).is_err() {
                        warn!("not a room event in the room's history: {:?}", String::from_utf8_lossy(&event));
                    }
                }
                In::Event(event) => {
                    if self.room.apply(&event, now).is_err() {
                        warn!("not a room event, skipped: {:?}", String::from_utf8_lossy(&event));
                    }
                }
                In::Claimed { slot, nick, granted } => {
                    if let Some(id) = ClientId::new(slot) {
                        self.room.claimed(id, &nick, granted, now);
                    }
                }
                In::Paused => {
                    warn!("the NATS server is unreachable: the room is paused");
                    self.room.pause(now);
                }
                In::Resumed => {
                    info!("the NATS server is back: the room goes on");
                    self.room.resume(now);
                }
                In::Failed(why) => return Err(io::Error::other(why)),
            }
            self.hand_to_broker();
        }
        Ok(())
    }

    fn start_shutdown(&mut self, now: Instant) {
        let mut drained = [0u8; 64];
        while matches!(self.signals.read(&mut drained), Ok(n) if n > 0) {}
        if self.shutdown_by.is_none() {
            let clients = self.room.len();
            info!("shutting down: telling {clients} client{}", if clients == 1 { "" } else { "s" });
            self.room.shutdown(now);
            self.shutdown_by = Some(now + self.room.config().drain_timeout);
        }
    }
}

impl Door {
    /// How the log tells the listeners' connections apart.
    fn tag(self) -> &'static str {
        match self {
            Door::Chat => "",
            Door::Tls => " (TLS)",
            Door::Web => " (web)",
        }
    }
}
