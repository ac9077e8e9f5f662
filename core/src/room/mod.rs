//! The chat room: clients, their dialects, the commands, and the pump.
//!
//! A [`Room`] owns no socket and reads no clock. A frontend accepts a
//! connection and asks the room for a slot ([`Room::accept`]), then, whenever
//! it wakes up, lets the room move bytes over each connection with
//! [`Room::pump`] and sleeps until [`Room::poll_timeout`]. Tests and fuzzers
//! use the byte-level calls instead: [`Room::receive`], [`Room::transmit`],
//! [`Room::peer_closed`] and [`Room::poll_close`].
//!
//! The room is split by concern: this file has its types, storage, the pump
//! and time; `input` turns bytes into lines and nicknames, `commands` runs
//! what a registered client says, and `log` stores lines and hands each
//! client its share.

use core::fmt::{self, Write as _};

use embedded_io::{Error as _, ErrorKind, Read, ReadReady, Write, WriteReady};
use heapless::{String, Vec};

use crate::clean::clean;
use crate::fmt::{debug, info};
use crate::nick::{Nick, NickError, MAX_NICK};
use crate::ring::{Cursor, Line, Ring, EVERYONE};
use crate::time::Instant;

mod commands;
mod input;
mod log;

/// The longest line a client may send, in bytes, without its terminator.
/// RFC 1459's 512 is what chat software and its users expect.
pub const MAX_LINE: usize = 512;

/// The input buffer: one maximal line and its `\r\n`.
const INPUT: usize = MAX_LINE + 2;

/// The longest line the server ever stores: `-> *{nick}* {text}\n`.
const MAX_OUT: usize = 3 + 1 + MAX_NICK + 2 + MAX_LINE + 1;

/// The tutorial's client reads with `recv(1024)`: a seed-dialect client never
/// gets a larger write (no line is longer than [`MAX_OUT`], so one always fits).
const SEED_WRITE: usize = 1024;

/// The longest name a seed-dialect client may put before its messages.
const MAX_SAID: usize = 2 * MAX_NICK;

/// The first bytes on every connection; the tutorial's client answers them
/// with its nickname.
const GREETING: &[u8] = b"NICK";

/// What a newcomer gets when every slot is taken, before the frontend closes
/// the connection. It has no slot, so the frontend sends it.
pub const ROOM_FULL: &[u8] = b"*** the room is full, try again later\n";

/// What a client that reads more slowly than the room talks gets before it is
/// disconnected: the lines it had not read are gone.
const TOO_SLOW: &[u8] = b"*** disconnected: you read more slowly than the room talks and missed lines\n";

/// Limits and timeouts. [`Config::default`] holds the protocol's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// A connection that has not registered a nickname by then is closed:
    /// a silent connection cannot hold a slot. Default 30 s.
    pub registration_timeout_ms: u64,
    /// A nickname with no line terminator after this long marks a
    /// seed-dialect client. Long enough for a line client's `\n` to follow in
    /// a second segment, short enough not to be felt. Default 250 ms.
    pub seed_grace_ms: u64,
    /// Flood control, or `None` to read as fast as clients send (benchmarks).
    pub throttle: Option<Throttle>,
    /// How long a leaving client's last lines (its `left!`, a shutdown
    /// notice) may take to go out before the connection is closed anyway.
    /// Default 2 s.
    pub drain_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            registration_timeout_ms: 30_000,
            seed_grace_ms: 250,
            throttle: Some(Throttle::default()),
            drain_timeout_ms: 2_000,
        }
    }
}

/// A token bucket per client: each line takes a token; tokens come back one
/// per `interval_ms` up to `burst`. An empty bucket stops reading from that
/// client, so a flooder is slowed down (its bytes wait in its socket) and
/// none of its lines is dropped. Defaults as ergo's: burst 5, 2 lines/s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Throttle {
    /// Lines a quiet client may send at once. At least 1.
    pub burst: u16,
    /// Milliseconds per token.
    pub interval_ms: u64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle { burst: 5, interval_ms: 500 }
    }
}

/// A client's slot in the room, from [`Room::accept`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ClientId(u16);

impl ClientId {
    /// The slot's index, below the room's capacity: frontends keep their
    /// connections in an array indexed by it.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    /// The id of slot `index` (below the room's capacity), for frontends
    /// that find a connection's slot from a readiness event.
    pub fn from_index(index: usize) -> ClientId {
        ClientId(index as u16)
    }
}

/// Returned by [`Room::accept`] when every slot is taken; send [`ROOM_FULL`]
/// and close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RoomFull;

impl fmt::Display for RoomFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the room is full")
    }
}

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Reason {
    /// The peer closed its side.
    PeerClosed,
    /// The client said `/quit`.
    Quit,
    /// No nickname within [`Config::registration_timeout_ms`].
    RegistrationTimeout,
    /// Its unread lines were overwritten: it read more slowly than the room
    /// talked.
    TooSlow,
    /// The server is shutting down.
    Shutdown,
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

/// How a client frames what it sends and what it is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Dialect {
    /// Not known yet: the nickname has not arrived.
    Unknown,
    /// `\n`-terminated UTF-8 lines both ways (nc, telnet, `chat-client`).
    Line,
    /// The tutorial's client: one message per `send`, prefixed with its own
    /// `{nick}: `; it is sent ASCII without terminators.
    Seed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    /// Connected, no nickname yet.
    Greeting,
    /// Registered: in the room.
    Chatting,
    /// Out of the room; its last lines are going out.
    Leaving,
    /// To be closed now, with a farewell if `farewell` is set.
    Dropped,
}

/// One client slot. Callers allocate these (see [`Storage`]); the room fills
/// them.
#[derive(Clone)]
pub struct Client {
    state: State,
    dialect: Dialect,
    nick: Nick,
    /// Seed dialect: the name the client itself puts before each message.
    said: Vec<u8, MAX_SAID>,
    input: [u8; INPUT],
    filled: u16,
    /// The rest of an overlong line is being skipped.
    discarding: bool,
    cursor: Cursor,
    /// Broadcast lines from this sequence number on are for this client.
    joined: u64,
    /// Nothing from this sequence number on is for this client.
    until: u64,
    /// One past the last line addressed to this client alone.
    private_until: u64,
    /// Bytes of [`GREETING`] still to send.
    greeting: u8,
    /// [`TOO_SLOW`] is still to be sent, after `mend`.
    farewell: bool,
    /// Bytes of the farewell already sent.
    farewell_sent: u16,
    /// What ends the line a dropped client was cut off in: the rest of its
    /// last character (so the line stays UTF-8) and `\n`.
    mend: Vec<u8, 4>,
    /// A `left!` line is still to be broadcast for this dropped client.
    announce: bool,
    /// Reading stopped while the connection had bytes ready.
    paused: bool,
    tokens: u16,
    next_token: Instant,
    accepted: Instant,
    /// When input last arrived (the seed grace period runs from it).
    heard: Instant,
    /// When a leaving client is closed whatever is still unsent.
    deadline: Instant,
    reason: Reason,
}

impl Client {
    /// A free slot.
    pub const EMPTY: Client = Client {
        state: State::Free,
        dialect: Dialect::Unknown,
        nick: Nick::EMPTY,
        said: Vec::new(),
        input: [0; INPUT],
        filled: 0,
        discarding: false,
        cursor: Cursor { seq: 0, sent: 0, sep: false },
        joined: u64::MAX,
        until: u64::MAX,
        private_until: 0,
        greeting: 0,
        farewell: false,
        farewell_sent: 0,
        mend: Vec::new(),
        announce: false,
        paused: false,
        tokens: 0,
        next_token: Instant::ZERO,
        accepted: Instant::ZERO,
        heard: Instant::ZERO,
        deadline: Instant::ZERO,
        reason: Reason::PeerClosed,
    };

    fn sees(&self, slot: u16, seq: u64, line: Line) -> bool {
        seq < self.until && (Ring::is_for(line, slot) || (Ring::is_broadcast(line) && seq >= self.joined))
    }
}

/// Fixed storage for a room of `CLIENTS` clients whose log keeps up to
/// `LINES` lines in `BYTES` bytes; it can live in a `static` on a board.
/// On the host, where sizes come from the command line, hand
/// [`Room::new`] slices instead.
pub struct Storage<const CLIENTS: usize, const LINES: usize, const BYTES: usize> {
    clients: [Client; CLIENTS],
    lines: [Line; LINES],
    bytes: [u8; BYTES],
}

impl<const CLIENTS: usize, const LINES: usize, const BYTES: usize> Storage<CLIENTS, LINES, BYTES> {
    /// Empty storage.
    pub const fn new() -> Self {
        Storage { clients: [Client::EMPTY; CLIENTS], lines: [Line::EMPTY; LINES], bytes: [0; BYTES] }
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
    clients: &'a mut [Client],
    ring: Ring<'a>,
    config: Config,
    /// No client's cursor is below this: pushing lines that only drop older
    /// ones needs no look at the clients.
    slowest: u64,
    /// Slots not free.
    occupied: usize,
    /// Where to start looking for a free slot.
    free_hint: usize,
    /// Dropped clients whose `left!` line is still to be broadcast.
    unannounced: usize,
    /// Those lines are being broadcast.
    announcing: bool,
}

/// A line being composed: never longer than the longest line stored.
type Text = String<MAX_OUT>;

impl<'a> Room<'a> {
    /// A room for `clients.len()` clients whose log keeps up to `lines.len()`
    /// lines in `bytes`.
    ///
    /// # Panics
    ///
    /// If `clients` is empty or has more than 65,534 slots, if `lines` has
    /// fewer than 2 entries, or if `bytes` cannot hold two of the longest
    /// lines (1,110 bytes): those are configuration errors, not conditions
    /// a peer can cause.
    pub fn new(clients: &'a mut [Client], lines: &'a mut [Line], bytes: &'a mut [u8], config: Config) -> Self {
        assert!(!clients.is_empty() && clients.len() < usize::from(u16::MAX), "a room needs 1 to 65534 client slots");
        assert!(lines.len() >= 2, "a room's log needs at least 2 lines");
        assert!(bytes.len() >= 2 * MAX_OUT, "a room's log needs at least {} bytes", 2 * MAX_OUT);
        for client in clients.iter_mut() {
            client.state = State::Free;
        }
        let mut config = config;
        if let Some(throttle) = &mut config.throttle {
            throttle.burst = throttle.burst.max(1);
        }
        Room {
            clients,
            ring: Ring::new(lines, bytes),
            config,
            slowest: 0,
            occupied: 0,
            free_hint: 0,
            unannounced: 0,
            announcing: false,
        }
    }

    /// How many clients the room holds at most.
    pub fn capacity(&self) -> usize {
        self.clients.len()
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
        let client = &self.clients[id.index()];
        match client.state {
            State::Chatting => Some(client.nick.as_str()),
            _ => None,
        }
    }

    /// The dialect a client speaks, as far as it is known.
    pub fn dialect(&self, id: ClientId) -> Dialect {
        self.clients[id.index()].dialect
    }

    /// Takes a slot for a new connection. Its first output is `NICK`.
    pub fn accept(&mut self, now: Instant) -> Result<ClientId, RoomFull> {
        let n = self.clients.len();
        let slot =
            (0..n).map(|i| (self.free_hint + i) % n).find(|&i| self.clients[i].state == State::Free).ok_or(RoomFull)?;
        self.free_hint = (slot + 1) % n;
        let tokens = self.config.throttle.map_or(0, |t| t.burst);
        let client = &mut self.clients[slot];
        *client = Client::EMPTY;
        client.state = State::Greeting;
        client.cursor = Cursor { seq: self.ring.next(), sent: 0, sep: false };
        client.greeting = GREETING.len() as u8;
        client.tokens = tokens;
        client.accepted = now;
        client.heard = now;
        self.occupied += 1;
        Ok(ClientId(slot as u16))
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
    /// Lines this client sends make other clients' output pending: after
    /// pumping the connections that woke up, pump every connection for which
    /// [`Room::needs_pump`] says so.
    pub fn pump<C>(&mut self, id: ClientId, conn: &mut C, now: Instant) -> Status
    where
        C: Read + Write + ReadReady + WriteReady,
    {
        let slot = id.index();
        let result = self
            .write_to(slot, conn)
            .and_then(|()| self.read_from(slot, conn, now))
            .and_then(|()| self.write_to(slot, conn));
        match result {
            Ok(()) => self.poll_close(id, now).map_or(Status::Open, Status::Closed),
            Err(kind) => {
                self.disconnect(id, Reason::Io(kind));
                Status::Closed(Reason::Io(kind))
            }
        }
    }

    /// Whether pumping this client would do something now: it has output
    /// pending, its connection is to be closed, or reading from it was paused
    /// (flood control, full input) and may go on.
    pub fn needs_pump(&mut self, id: ClientId, now: Instant) -> bool {
        let slot = id.index();
        match self.clients[slot].state {
            State::Free => false,
            State::Leaving | State::Dropped => true,
            State::Greeting | State::Chatting => {
                self.has_output(slot) || (self.clients[slot].paused && self.wants_input(slot, now))
            }
        }
    }

    fn write_to<C: Write + WriteReady>(&mut self, slot: usize, conn: &mut C) -> Result<(), ErrorKind> {
        let mut batch = [0; SEED_WRITE];
        loop {
            let out = self.output(slot, &mut batch);
            let len = out.len();
            if len == 0 || !conn.write_ready().map_err(|e| e.kind())? {
                return Ok(());
            }
            match conn.write(out) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    self.sent(slot, n, n < len);
                    if n < len {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(()),
                Err(e) => return Err(e.kind()),
            }
        }
    }

    fn read_from<C: Read + ReadReady>(&mut self, slot: usize, conn: &mut C, now: Instant) -> Result<(), ErrorKind> {
        // Input left over from a throttled or full moment goes first.
        self.handle_input(slot, now, false);
        self.clients[slot].paused = false;
        while conn.read_ready().map_err(|e| e.kind())? {
            if !self.wants_input(slot, now) {
                // Bytes wait in the connection: read them once tokens are back.
                self.clients[slot].paused = true;
                break;
            }
            let client = &mut self.clients[slot];
            let filled = usize::from(client.filled);
            match conn.read(&mut client.input[filled..]) {
                Ok(0) => {
                    self.peer_closed(ClientId(slot as u16), now);
                    return Ok(());
                }
                Ok(n) => {
                    client.filled += n as u16;
                    client.heard = now;
                    self.handle_input(slot, now, false);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => break,
                Err(e) => return Err(e.kind()),
            }
        }
        // A seed client's message is whatever arrived together.
        if self.clients[slot].dialect == Dialect::Seed {
            self.handle_input(slot, now, true);
        }
        Ok(())
    }

    // ----- byte-level calls -------------------------------------------------

    /// Hands the room bytes received from a client, as one read would.
    /// Returns how many it took: fewer than offered when the client's input
    /// buffer is full of lines its flood-control bucket does not allow yet,
    /// or when it is no longer reading; offer the rest later.
    pub fn receive(&mut self, id: ClientId, mut bytes: &[u8], now: Instant) -> usize {
        let slot = id.index();
        let offered = bytes.len();
        self.handle_input(slot, now, false);
        while !bytes.is_empty() && self.wants_input(slot, now) {
            let client = &mut self.clients[slot];
            let filled = usize::from(client.filled);
            let take = bytes.len().min(INPUT - filled);
            client.input[filled..filled + take].copy_from_slice(&bytes[..take]);
            client.filled += take as u16;
            client.heard = now;
            bytes = &bytes[take..];
            self.handle_input(slot, now, bytes.is_empty());
        }
        // Bytes left over wait for a token, as they would in a socket.
        self.clients[slot].paused = !bytes.is_empty();
        offered - bytes.len()
    }

    /// The client's peer closed its side: a last unterminated line counts as
    /// a line, then the client leaves.
    pub fn peer_closed(&mut self, id: ClientId, now: Instant) {
        let slot = id.index();
        match self.clients[slot].state {
            State::Chatting => {
                self.handle_input(slot, now, true);
                let client = &mut self.clients[slot];
                let filled = usize::from(client.filled);
                if client.state == State::Chatting && client.dialect == Dialect::Line && 0 < filled && filled < INPUT {
                    // The last line had no terminator: end it.
                    client.input[filled] = b'\n';
                    client.filled += 1;
                    self.handle_input(slot, now, true);
                }
                if self.clients[slot].state == State::Chatting {
                    self.leave(slot, Reason::PeerClosed, "", now);
                }
            }
            State::Greeting => self.start_leaving(slot, Reason::PeerClosed, now),
            _ => {}
        }
    }

    /// Copies into `out` what one write to the client would carry now, and
    /// counts it as sent. Returns the number of bytes (0: nothing pending).
    pub fn transmit(&mut self, id: ClientId, out: &mut [u8]) -> usize {
        let slot = id.index();
        let mut batch = [0; SEED_WRITE];
        let pending = self.output(slot, &mut batch);
        let n = pending.len().min(out.len());
        out[..n].copy_from_slice(&pending[..n]);
        let short = n < pending.len();
        self.sent(slot, n, short);
        n
    }

    /// If the client's connection is to be closed now, frees its slot and
    /// says why. Call after its output went out (or could not).
    pub fn poll_close(&mut self, id: ClientId, now: Instant) -> Option<Reason> {
        let slot = id.index();
        let done = match self.clients[slot].state {
            State::Dropped => true,
            State::Leaving => now >= self.clients[slot].deadline || !self.has_output(slot),
            _ => false,
        };
        if !done {
            return None;
        }
        let reason = self.clients[slot].reason;
        self.release(slot);
        Some(reason)
    }

    /// The connection failed or the frontend gave up on it: the client leaves
    /// at once (the room sees `{nick} left!`) and its slot is free.
    pub fn disconnect(&mut self, id: ClientId, reason: Reason) {
        let slot = id.index();
        if self.clients[slot].state == State::Chatting {
            self.announce_left(slot, "");
        }
        if self.clients[slot].state != State::Free {
            self.clients[slot].reason = reason;
            self.release(slot);
        }
    }

    fn release(&mut self, slot: usize) {
        let client = &mut self.clients[slot];
        if client.state != State::Free {
            debug!("slot {} closed", slot);
            client.state = State::Free;
            self.occupied -= 1;
        }
    }

    // ----- time -------------------------------------------------------------

    /// Acts on everything due by `now`: seed-dialect nicknames whose grace
    /// period ended, registration timeouts, lines waiting for flood-control
    /// tokens, leaving clients out of time. Pump afterwards.
    pub fn handle_timeout(&mut self, now: Instant) {
        let config = self.config;
        for slot in 0..self.clients.len() {
            let client = &self.clients[slot];
            let (state, dialect, filled) = (client.state, client.dialect, client.filled);
            let timed_out = now >= client.accepted + config.registration_timeout_ms;
            let graced = now >= client.heard + config.seed_grace_ms;
            match state {
                State::Greeting if timed_out => {
                    let seconds = config.registration_timeout_ms / 1000;
                    self.notice(slot, format_args!("*** no nickname after {seconds} s, closing"));
                    self.start_leaving(slot, Reason::RegistrationTimeout, now);
                }
                State::Greeting if dialect == Dialect::Unknown && filled > 0 && graced => {
                    self.register_seed(slot, now);
                }
                State::Chatting => {
                    if config.throttle.is_some() {
                        // Refill, so the bucket's deadline moves on.
                        self.has_token(slot, now);
                    }
                    if filled > 0 {
                        self.handle_input(slot, now, dialect == Dialect::Seed);
                    }
                }
                _ => {}
            }
        }
    }

    /// When [`Room::handle_timeout`] next has something to do, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let config = &self.config;
        self.clients
            .iter()
            .filter_map(|client| match client.state {
                State::Greeting => {
                    let timeout = client.accepted + config.registration_timeout_ms;
                    if client.dialect == Dialect::Unknown && client.filled > 0 {
                        Some(timeout.min(client.heard + config.seed_grace_ms))
                    } else {
                        Some(timeout)
                    }
                }
                // Only a client with lines waiting for a token needs waking.
                State::Chatting
                    if config.throttle.is_some() && client.tokens == 0 && (client.paused || client.filled > 0) =>
                {
                    Some(client.next_token)
                }
                State::Leaving => Some(client.deadline),
                _ => None,
            })
            .min()
    }

    /// Starts a shutdown: every client is told and leaves; keep pumping
    /// until the room [`is_empty`](Room::is_empty) (at most
    /// [`Config::drain_timeout_ms`]).
    pub fn shutdown(&mut self, now: Instant) {
        let seq = self.push(EVERYONE, &[b"*** the server is shutting down\n"]);
        for slot in 0..self.clients.len() {
            let client = &mut self.clients[slot];
            if client.state == State::Greeting {
                // Let it see the shutdown notice, and nothing else.
                client.joined = seq;
            }
            if matches!(client.state, State::Greeting | State::Chatting) {
                self.start_leaving(slot, Reason::Shutdown, now);
            }
        }
    }
}
