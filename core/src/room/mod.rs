//! The chat room: clients, the commands, the log, and the pump.
//!
//! A [`Room`] owns no socket and reads no clock. A frontend accepts a
//! connection and asks the room for a slot ([`Room::accept`]); whenever it
//! wakes up it pumps the connections that became ready ([`Room::pump`]),
//! acts on the room's deadlines ([`Room::handle_timeout`]), pumps the
//! clients the room has news for ([`Room::poll_ready`]), and sleeps until
//! [`Room::poll_timeout`]. Tests and fuzzers may also use the byte-level
//! calls: [`Room::receive`], [`Room::transmit`], [`Room::peer_closed`] and
//! [`Room::poll_close`].
//!
//! The room is split by concern: this file has the room's types and its
//! public calls; `slot` is one client's state, made of small types
//! (`framing`'s input buffer, `bucket`'s flood control, the log's cursor,
//! `farewell`); `lists` keeps a wake-up's cost to the active slots; `input`
//! turns bytes into lines and nicknames, `commands` runs what a registered
//! client says, and `log` stores lines and hands each client its share.

use core::fmt::{self, Write as _};
use core::net::IpAddr;

use embedded_io::{Error as _, ErrorKind, Read, ReadReady, Write, WriteReady};
use heapless::{String, Vec};

use crate::fmt::debug;
use crate::nick::MAX_NICK;
use crate::ring::{Cursor, LineStorage, Recipient, Ring};
use crate::time::{Duration, Instant};
use crate::wire::{Dialect, BANNED, DEFAULT_HISTORY, MAX_LINE, ROOM_FULL, SHUTDOWN, WEB_BANNED, WEB_ROOM_FULL};

mod bucket;
mod commands;
mod farewell;
mod framing;
mod guard;
mod input;
mod lists;
mod log;
mod member;
mod slot;
mod web;

pub use bucket::Throttle;
pub use member::RemoteStorage;
pub use slot::ClientStorage;

use lists::Lists;
use member::Cluster;
use slot::{Client, State};

/// The longest line the server ever stores: `-> *{nick}* {text}\n`.
const MAX_OUT: usize = 3 + 1 + MAX_NICK + 2 + MAX_LINE + 1;

/// The tutorial's client reads with `recv(1024)`: a seed-dialect client never
/// gets a larger write (no line is longer than [`MAX_OUT`], so one always fits).
const SEED_WRITE: usize = 1024;

/// Limits and timeouts. [`Config::default`] holds the protocol's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// A connection that has not registered a nickname by then is closed:
    /// a silent connection cannot hold a slot. Default 30 s.
    pub registration_timeout: Duration,
    /// A nickname with no line terminator after this long marks a
    /// seed-dialect client. Long enough for a line client's `\n` to follow in
    /// a second segment, short enough not to be felt. Default 250 ms.
    pub seed_grace: Duration,
    /// Flood control, or `None` to read as fast as clients send (benchmarks).
    pub throttle: Option<Throttle>,
    /// How long a leaving client's last lines (its `left!`, a shutdown
    /// notice) may take to go out before the connection is closed anyway.
    /// Default 2 s.
    pub drain_timeout: Duration,
    /// How many of the room's last broadcast lines a line client is sent
    /// when it joins (whatever of them is still in the log); 0 sends none.
    /// Seed clients get none. Default 20.
    pub history: u16,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            registration_timeout: Duration::from_secs(30),
            seed_grace: Duration::from_millis(250),
            throttle: Some(Throttle::default()),
            drain_timeout: Duration::from_secs(2),
            history: DEFAULT_HISTORY,
        }
    }
}

/// A client's slot in the room, from [`Room::accept`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ClientId(u16);

impl ClientId {
    /// The most slots a room can have.
    pub const MAX_SLOTS: usize = u16::MAX as usize;

    /// The id of slot `index`, if a room can have that many slots; for
    /// frontends that find a connection's slot from a readiness event.
    pub const fn new(index: usize) -> Option<ClientId> {
        if index < Self::MAX_SLOTS {
            Some(ClientId(index as u16))
        } else {
            None
        }
    }

    /// The slot's index, below the room's capacity: frontends keep their
    /// connections in an array indexed by it.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Why [`Room::accept`] refused a connection: send it [`Refused::notice`]
/// and close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Refused {
    /// Every slot is taken.
    Full,
    /// An operator banned the peer's address.
    Banned,
}

impl Refused {
    /// What the connection is told before it is closed.
    pub fn notice(self) -> &'static [u8] {
        match self {
            Refused::Full => ROOM_FULL,
            Refused::Banned => BANNED,
        }
    }

    /// What a browser on the web listener is told before it is closed: an
    /// HTTP response.
    pub fn http_response(self) -> &'static [u8] {
        match self {
            Refused::Full => WEB_ROOM_FULL,
            Refused::Banned => WEB_BANNED,
        }
    }

    /// Why, in words (for logs under either backend).
    pub fn describe(self) -> &'static str {
        match self {
            Refused::Full => "the room is full",
            Refused::Banned => "the address is banned",
        }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// The most addresses a room bans at once: a fixed list, as everything in
/// the core (`/unban` makes room).
pub const MAX_BANS: usize = 16;

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Reason {
    /// The peer closed its side.
    PeerClosed,
    /// The client said `/quit`.
    Quit,
    /// No nickname within [`Config::registration_timeout`].
    RegistrationTimeout,
    /// Its unread lines were overwritten: it read more slowly than the room
    /// talked.
    TooSlow,
    /// The server is shutting down.
    Shutdown,
    /// An operator kicked it out (`/kick`).
    Kicked,
    /// An operator banned its address (`/ban`).
    Banned,
    /// It sent too many wrong passwords.
    WrongPassword,
    /// The room has a password and the client's dialect cannot send one
    /// (the tutorial's client).
    NoPassword,
    /// A browser's request was answered (the page, or an HTTP error).
    Answered,
    /// A browser broke the WebSocket protocol (the close frame says how).
    Protocol,
    /// In a room spanning several servers, the others saw it leave: its
    /// server was out of touch with them for too long.
    OutOfTouch,
    /// Reading or writing failed.
    Io(ErrorKind),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::PeerClosed => f.write_str("closed by the peer"),
            Reason::Quit => f.write_str("quit"),
            Reason::RegistrationTimeout => f.write_str("no nickname in time"),
            Reason::TooSlow => f.write_str("too slow to read, lines overwritten"),
            Reason::Shutdown => f.write_str("server shutting down"),
            Reason::Kicked => f.write_str("kicked by an operator"),
            Reason::Banned => f.write_str("banned by an operator"),
            Reason::WrongPassword => f.write_str("wrong password"),
            Reason::NoPassword => f.write_str("no way to send the room's password"),
            Reason::Answered => f.write_str("HTTP request answered"),
            Reason::Protocol => f.write_str("WebSocket protocol broken"),
            Reason::OutOfTouch => f.write_str("the other servers saw it leave"),
            Reason::Io(kind) => write!(f, "I/O error: {kind:?}"),
        }
    }
}

/// What [`Room::pump`] left a connection in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Status {
    /// Still in the room (or still leaving): pump it again later.
    Open,
    /// Done: close the connection; its [`ClientId`] is free again.
    Closed(Reason),
}

/// Fixed storage for a room of `CLIENTS` clients whose log keeps up to
/// `LINES` lines in `BYTES` bytes; it can live in a `static` on a board.
/// On the host, where sizes come from the command line, hand
/// [`Room::new`] slices instead.
pub struct Storage<const CLIENTS: usize, const LINES: usize, const BYTES: usize> {
    clients: [ClientStorage; CLIENTS],
    lines: [LineStorage; LINES],
    bytes: [u8; BYTES],
}

impl<const CLIENTS: usize, const LINES: usize, const BYTES: usize> Storage<CLIENTS, LINES, BYTES> {
    /// Empty storage.
    pub const fn new() -> Self {
        Storage { clients: [ClientStorage::EMPTY; CLIENTS], lines: [LineStorage::EMPTY; LINES], bytes: [0; BYTES] }
    }

    /// A room using this storage.
    pub fn room(&mut self, config: Config) -> Room<'_> {
        Room::new(&mut self.clients, &mut self.lines, &mut self.bytes, config)
    }
}

impl<const CLIENTS: usize, const LINES: usize, const BYTES: usize> Default for Storage<CLIENTS, LINES, BYTES> {
    fn default() -> Self {
        Self::new()
    }
}

/// The chat room. See the crate documentation for how frontends drive it.
pub struct Room<'a> {
    cells: &'a mut [ClientStorage],
    lists: Lists,
    ring: Ring<'a>,
    config: Config,
    /// No client's cursor is below this: pushing lines that only drop older
    /// ones needs no look at the clients.
    slowest: u64,
    /// Slots not free.
    occupied: usize,
    /// Dropped clients whose `left!` line is still to be broadcast.
    unannounced: usize,
    /// Those lines are being broadcast.
    announcing: bool,
    /// The latest time a call said it was: a client dropped while a line
    /// is pushed gets its farewell's deadline from it.
    now: Instant,
    /// What a client must send after its nickname to get in, if anything.
    password: Option<&'a [u8]>,
    /// What `/op` takes to make a client an operator; no operators without.
    op_password: Option<&'a [u8]>,
    /// Addresses refused at [`Room::accept`] for the room's lifetime.
    bans: Vec<IpAddr, MAX_BANS>,
    /// The pages whose browsers may open a WebSocket; `None`: the page's
    /// own origin only.
    web_origins: Option<&'a [&'a str]>,
    /// The room as one member of a wider room ([`Room::join_cluster`]).
    cluster: Option<Cluster<'a>>,
}

/// A line being composed: never longer than the longest line stored.
type Text = String<MAX_OUT>;

impl<'a> Room<'a> {
    /// The smallest log a room takes: two of the longest lines it stores
    /// (`-> *{32-byte nick}* {512-byte text}\n`, 551 bytes), so that a line
    /// being read never stands in the way of the next one.
    pub const MIN_LOG_BYTES: usize = 2 * MAX_OUT;

    /// A room for `clients.len()` clients whose log keeps up to `lines.len()`
    /// lines in `bytes`.
    ///
    /// # Panics
    ///
    /// If `clients` is empty or has more than [`ClientId::MAX_SLOTS`]
    /// slots, if `lines` has fewer than 2 entries, or if `bytes` cannot hold
    /// two of the longest lines ([`Room::MIN_LOG_BYTES`]): those are
    /// configuration errors, not conditions a peer can cause.
    pub fn new(
        clients: &'a mut [ClientStorage],
        lines: &'a mut [LineStorage],
        bytes: &'a mut [u8],
        config: Config,
    ) -> Self {
        assert!(
            !clients.is_empty() && clients.len() <= ClientId::MAX_SLOTS,
            "a room needs 1 to {} client slots",
            ClientId::MAX_SLOTS
        );
        assert!(lines.len() >= 2, "a room's log needs at least 2 lines");
        assert!(bytes.len() >= Self::MIN_LOG_BYTES, "a room's log needs at least {} bytes", Self::MIN_LOG_BYTES);
        for cell in clients.iter_mut() {
            cell.client.state = State::Free;
        }
        let mut config = config;
        if let Some(throttle) = &mut config.throttle {
            throttle.burst = throttle.burst.max(1);
        }
        Room {
            lists: Lists::new(clients),
            cells: clients,
            ring: Ring::new(lines, bytes),
            config,
            slowest: 0,
            occupied: 0,
            unannounced: 0,
            announcing: false,
            now: Instant::ZERO,
            password: None,
            op_password: None,
            bans: Vec::new(),
            web_origins: None,
            cluster: None,
        }
    }

    /// The origins (`http://host:port`, as a browser sends them) whose pages
    /// may open a WebSocket to the room; by default only the server's own
    /// page (the `Origin`'s host is the request's `Host`).
    pub fn set_web_origins(&mut self, origins: Option<&'a [&'a str]>) {
        self.web_origins = origins;
    }

    /// Makes the room ask every line client, after its nickname, for this
    /// password (compared in constant time, never logged or repeated);
    /// clients that cannot send one (the tutorial's) are refused. `None`
    /// opens the room again.
    pub fn set_password(&mut self, password: Option<&'a [u8]>) {
        self.password = password;
    }

    /// Lets a client become an operator with `/op PASSWORD`; operators can
    /// `/kick`, `/ban` and `/unban`. `None`: no operators.
    pub fn set_op_password(&mut self, password: Option<&'a [u8]>) {
        self.op_password = password;
    }

    /// How many clients the room holds at most.
    pub fn capacity(&self) -> usize {
        self.cells.len()
    }

    /// Connections holding a slot (registered or not, leaving included).
    pub fn len(&self) -> usize {
        self.occupied
    }

    /// Whether no connection holds a slot.
    pub fn is_empty(&self) -> bool {
        self.occupied == 0
    }

    /// The limits the room runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The registered nickname of a client, if it has one.
    pub fn nick(&self, id: ClientId) -> Option<&str> {
        let client = self.get(id)?;
        (client.state == State::Chatting).then(|| client.nick.as_str())
    }

    /// The dialect a client speaks, as far as it is known.
    pub fn dialect(&self, id: ClientId) -> Dialect {
        self.get(id).map_or(Dialect::Unknown, |client| client.dialect)
    }

    /// Takes a slot for a new connection from `peer` (its address, if the
    /// frontend knows it: `/ban` bans it). Its first output is `NICK`.
    pub fn accept(&mut self, now: Instant, peer: Option<IpAddr>) -> Result<ClientId, Refused> {
        self.tell_time(now);
        if peer.is_some_and(|peer| self.bans.contains(&peer)) {
            return Err(Refused::Banned);
        }
        let id = self.lists.occupy(self.cells).ok_or(Refused::Full)?;
        let cursor = Cursor::at(self.ring.next());
        *self.client_mut(id) = Client::greeting(cursor, self.config.throttle.as_ref(), now);
        self.client_mut(id).peer = peer;
        self.occupied += 1;
        self.lists.arm(self.cells, id);
        // Its greeting is news for it.
        self.lists.mark_ready(self.cells, id);
        Ok(id)
    }

    /// Takes a slot for a connection to the web listener: the room reads an
    /// HTTP request from it and serves the chat page, or upgrades it to a
    /// WebSocket that joins the room (see [`crate::web`]). On `Err`, send
    /// [`Refused::http_response`] and close.
    pub fn accept_web(&mut self, now: Instant, peer: Option<IpAddr>) -> Result<ClientId, Refused> {
        let id = self.accept(now, peer)?;
        let client = self.client_mut(id);
        client.dialect = Dialect::Web;
        // A browser speaks first: no `NICK` until it is a WebSocket.
        client.greeting = 0;
        Ok(id)
    }

    // ----- the pump ---------------------------------------------------------

    /// Moves whatever bytes are ready over `conn`, without blocking: sends
    /// what the client has pending, reads and handles what it sent (as long
    /// as its flood-control bucket allows), and sends again.
    ///
    /// `conn` must not block when its `ReadReady`/`WriteReady` say it is
    /// ready. `read` returning `Ok(0)` means the peer closed its side. An
    /// error of kind [`ErrorKind::Interrupted`] means "not ready after all"
    /// and is not fatal; any other error ends the connection.
    ///
    /// Lines this client sends are news for other clients: after pumping
    /// the connections that woke up, pump those [`Room::poll_ready`] names.
    pub fn pump<C>(&mut self, id: ClientId, conn: &mut C, now: Instant) -> Status
    where
        C: Read + Write + ReadReady + WriteReady,
    {
        if self.get(id).is_none_or(|client| client.state == State::Free) {
            return Status::Closed(Reason::PeerClosed);
        }
        self.tell_time(now);
        let result =
            self.write_to(id, conn).and_then(|()| self.read_from(id, conn, now)).and_then(|()| self.write_to(id, conn));
        match result {
            Ok(()) => self.poll_close(id, now).map_or(Status::Open, Status::Closed),
            Err(kind) => {
                self.disconnect(id, Reason::Io(kind));
                Status::Closed(Reason::Io(kind))
            }
        }
    }

    /// The next client the room has news for (a line addressed to it, a
    /// drop, a deadline that passed): pump it, and ask again until `None`.
    /// Each call costs O(1) plus, after a broadcast, one look at each client
    /// in the room; free slots are never looked at.
    pub fn poll_ready(&mut self, now: Instant) -> Option<ClientId> {
        loop {
            let id = self.lists.poll_ready(self.cells)?;
            if self.needs_pump(id, now) {
                return Some(id);
            }
        }
    }

    /// Whether pumping this client would do something now: it has output
    /// pending, its connection is to be closed, or reading from it was paused
    /// (flood control, full input) and may go on. It changes nothing.
    pub fn needs_pump(&self, id: ClientId, now: Instant) -> bool {
        let Some(client) = self.get(id) else { return false };
        match client.state {
            State::Free => false,
            State::Leaving | State::Dropped => true,
            State::Greeting | State::Chatting => self.has_output(id) || (client.paused && self.wants_input(id, now)),
        }
    }

    fn write_to<C: Write + WriteReady>(&mut self, id: ClientId, conn: &mut C) -> Result<(), ErrorKind> {
        let mut batch = [0; SEED_WRITE];
        loop {
            let out = self.output(id, &mut batch);
            let len = out.len();
            if len == 0 || !conn.write_ready().map_err(|e| e.kind())? {
                return Ok(());
            }
            match conn.write(out) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    self.sent(id, n, n < len);
                    if n < len {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(()),
                Err(e) => return Err(e.kind()),
            }
        }
    }

    fn read_from<C: Read + ReadReady>(&mut self, id: ClientId, conn: &mut C, now: Instant) -> Result<(), ErrorKind> {
        // Input left over from a throttled or full moment goes first.
        self.handle_input(id, now, false);
        self.client_mut(id).paused = false;
        while conn.read_ready().map_err(|e| e.kind())? {
            if !self.wants_input(id, now) {
                // Bytes wait in the connection: read them once tokens are back.
                self.client_mut(id).paused = true;
                if self.member_blocked(id) {
                    self.note_blocked();
                } else {
                    self.hold(id);
                }
                break;
            }
            match conn.read(self.client_mut(id).input.spare()) {
                Ok(0) => {
                    self.peer_closed(id, now);
                    return Ok(());
                }
                Ok(n) => {
                    let client = self.client_mut(id);
                    client.input.filled(n);
                    client.heard = now;
                    self.handle_input(id, now, false);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => break,
                Err(e) => return Err(e.kind()),
            }
        }
        // A seed client's message is whatever arrived together.
        if self.dialect(id) == Dialect::Seed {
            self.handle_input(id, now, true);
        }
        self.end_of_hold(id);
        Ok(())
    }

    // ----- byte-level calls -------------------------------------------------

    /// Hands the room bytes received from a client, as one read would.
    /// Returns how many it took: fewer than offered when the client's input
    /// buffer is full of lines its flood-control bucket does not allow yet,
    /// or when it is no longer reading; offer the rest later.
    pub fn receive(&mut self, id: ClientId, mut bytes: &[u8], now: Instant) -> usize {
        if self.get(id).is_none() {
            return 0;
        }
        self.tell_time(now);
        let offered = bytes.len();
        self.handle_input(id, now, false);
        while !bytes.is_empty() && self.wants_input(id, now) {
            let client = self.client_mut(id);
            let take = client.input.extend(bytes);
            client.heard = now;
            bytes = &bytes[take..];
            self.handle_input(id, now, bytes.is_empty());
        }
        // Bytes left over wait for a token, as they would in a socket.
        let paused = !bytes.is_empty();
        self.client_mut(id).paused = paused;
        if paused && self.member_blocked(id) {
            self.note_blocked();
        } else if paused {
            self.hold(id);
        }
        self.end_of_hold(id);
        offered - bytes.len()
    }

    /// The client's peer closed its side: a last unterminated line counts as
    /// a line, then the client leaves.
    pub fn peer_closed(&mut self, id: ClientId, now: Instant) {
        let Some(client) = self.get(id) else { return };
        match client.state {
            State::Chatting => {
                self.handle_input(id, now, true);
                let client = self.client_mut(id);
                if client.state == State::Chatting && client.dialect == Dialect::Line {
                    // The last line had no terminator: end it.
                    client.input.terminate();
                    self.handle_input(id, now, true);
                }
                if self.client(id).state == State::Chatting {
                    self.leave(id, Reason::PeerClosed, "", now);
                }
            }
            State::Greeting => self.start_leaving(id, Reason::PeerClosed, now),
            _ => {}
        }
    }

    /// Copies into `out` what one write to the client would carry now, and
    /// counts it as sent. Returns the number of bytes (0: nothing pending).
    pub fn transmit(&mut self, id: ClientId, out: &mut [u8]) -> usize {
        if self.get(id).is_none() {
            return 0;
        }
        let mut batch = [0; SEED_WRITE];
        let pending = self.output(id, &mut batch);
        let n = pending.len().min(out.len());
        out[..n].copy_from_slice(&pending[..n]);
        let short = n < pending.len();
        self.sent(id, n, short);
        n
    }

    /// If the client's connection is to be closed now, frees its slot and
    /// says why. Call after its output went out (or could not).
    pub fn poll_close(&mut self, id: ClientId, now: Instant) -> Option<Reason> {
        let client = self.get(id)?;
        let done = match client.state {
            State::Dropped | State::Leaving => now >= client.deadline || (!self.has_output(id) && !client.left_pending),
            _ => false,
        };
        if !done {
            return None;
        }
        let reason = self.client(id).reason;
        self.release(id);
        Some(reason)
    }

    /// The connection failed or the frontend gave up on it: the client leaves
    /// at once (the room sees `{nick} left!`) and its slot is free.
    pub fn disconnect(&mut self, id: ClientId, reason: Reason) {
        let Some(client) = self.get(id) else { return };
        if client.state == State::Chatting {
            self.announce_left(id, "");
        }
        if self.client(id).state != State::Free {
            self.client_mut(id).reason = reason;
            self.release(id);
        }
    }

    fn release(&mut self, id: ClientId) {
        self.abandon_claim(id);
        let client = self.client_mut(id);
        if client.state != State::Free {
            debug!("slot {} closed", id.index());
            client.state = State::Free;
            self.occupied -= 1;
            self.lists.release(self.cells, id);
        }
    }

    // ----- time -------------------------------------------------------------

    /// Acts on everything due by `now`: seed-dialect nicknames whose grace
    /// period ended, registration timeouts, lines waiting for flood-control
    /// tokens, leaving clients out of time. Then pump what
    /// [`Room::poll_ready`] names.
    ///
    /// It looks only at clients with a deadline, not at every slot.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tell_time(now);
        let mut next = self.lists.take_timed();
        while let Some(id) = next {
            next = Lists::disarm(self.cells, id);
            self.on_deadline(id, now);
            if self.deadline(id).is_some() {
                self.lists.arm(self.cells, id);
            }
        }
    }

    /// When [`Room::handle_timeout`] next has something to do, if ever.
    ///
    /// The rule frontends rely on: once `handle_timeout(now)` has run and
    /// every client [`Room::poll_ready`] named has been pumped, this is
    /// `None` or later than `now`, so a loop that sleeps until then never
    /// spins.
    pub fn poll_timeout(&self) -> Option<Instant> {
        core::iter::successors(self.lists.first_timed(), |&id| Lists::after_timed(self.cells, id))
            .filter_map(|id| self.deadline(id))
            .min()
    }

    fn deadline(&self, id: ClientId) -> Option<Instant> {
        let config = &self.config;
        let client = self.client(id);
        match client.state {
            State::Greeting => {
                let timeout = client.accepted + config.registration_timeout;
                if client.dialect == Dialect::Unknown && !client.input.is_empty() && !self.member_blocked(id) {
                    Some(timeout.min(client.heard + config.seed_grace))
                } else {
                    Some(timeout)
                }
            }
            // Only a client with lines waiting for a token needs waking.
            State::Chatting if self.waits_for_world(id) => None,
            State::Chatting if client.paused || !client.input.is_empty() => {
                config.throttle.and(client.bucket.next_token())
            }
            State::Leaving | State::Dropped => Some(client.deadline),
            _ => None,
        }
    }

    fn on_deadline(&mut self, id: ClientId, now: Instant) {
        let config = self.config;
        let blocked = self.member_blocked(id);
        let client = self.client_mut(id);
        match client.state {
            State::Greeting if now >= client.accepted + config.registration_timeout => {
                if client.dialect == Dialect::Web && self.request_timed_out(id, now) {
                    return;
                }
                let timeout = config.registration_timeout;
                self.notice(id, format_args!("*** no nickname after {timeout}, closing"));
                self.start_leaving(id, Reason::RegistrationTimeout, now);
            }
            State::Greeting
                if client.dialect == Dialect::Unknown
                    && !client.input.is_empty()
                    && now >= client.heard + config.seed_grace
                    && !blocked =>
            {
                self.register_seed(id, now);
            }
            State::Chatting => {
                if let Some(throttle) = &config.throttle {
                    // Refill, so the bucket's deadline moves on.
                    client.bucket.refill(throttle, now);
                }
                let (seed, paused) = (client.dialect == Dialect::Seed, client.paused);
                self.handle_input(id, now, seed);
                if paused {
                    // Its bytes wait in its connection: the frontend reads them.
                    self.lists.mark_ready(self.cells, id);
                }
            }
            State::Leaving | State::Dropped if now >= client.deadline => self.lists.mark_ready(self.cells, id),
            _ => {}
        }
    }

    /// Starts a shutdown: every client is told and leaves; keep pumping
    /// until the room [`is_empty`](Room::is_empty) (at most
    /// [`Config::drain_timeout`]).
    pub fn shutdown(&mut self, now: Instant) {
        self.tell_time(now);
        let seq = self.push(Recipient::Everyone, &[SHUTDOWN]);
        let mut next = self.lists.first();
        while let Some(id) = next {
            next = Lists::after(self.cells, id);
            let client = self.client_mut(id);
            if client.state == State::Greeting {
                // Let it see the shutdown notice, and nothing else.
                client.window.joined = seq;
            }
            if matches!(client.state, State::Greeting | State::Chatting) {
                self.start_leaving(id, Reason::Shutdown, now);
            }
        }
    }

    // ----- slots ------------------------------------------------------------

    /// Time never goes back for the room, whatever a frontend passes.
    fn tell_time(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    fn get(&self, id: ClientId) -> Option<&Client> {
        self.cells.get(id.index()).map(|cell| &cell.client)
    }

    fn client(&self, id: ClientId) -> &Client {
        &self.cells[id.index()].client
    }

    fn client_mut(&mut self, id: ClientId) -> &mut Client {
        &mut self.cells[id.index()].client
    }

    /// The occupied slots, in the order they came in.
    fn occupied(&self) -> impl Iterator<Item = (ClientId, &Client)> + '_ {
        core::iter::successors(self.lists.first(), |&id| Lists::after(self.cells, id)).map(|id| (id, self.client(id)))
    }

    /// The clients in the room (registered), in the order they came in.
    fn chatting(&self) -> impl Iterator<Item = (ClientId, &Client)> + '_ {
        self.occupied().filter(|(_, client)| client.state == State::Chatting)
    }
}
