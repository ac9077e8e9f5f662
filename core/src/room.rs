//! The chat room: clients, their dialects, the commands, and the pump.
//!
//! A [`Room`] owns no socket and reads no clock. A frontend accepts a
//! connection and asks the room for a slot ([`Room::accept`]), then, whenever
//! it wakes up, lets the room move bytes over each connection with
//! [`Room::pump`] and sleeps until [`Room::poll_timeout`]. Tests and fuzzers
//! use the byte-level calls instead: [`Room::receive`], [`Room::transmit`],
//! [`Room::peer_closed`] and [`Room::poll_close`].

use core::fmt::{self, Write as _};

use embedded_io::{Error as _, ErrorKind, Read, ReadReady, Write, WriteReady};
use heapless::{String, Vec};

use crate::clean::clean;
use crate::fmt::{debug, info};
use crate::nick::{Nick, NickError, MAX_NICK};
use crate::ring::{Cursor, Line, Ring, EVERYONE};
use crate::time::Instant;

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

const HELP: [&str; 8] = [
    "*** commands:",
    "***   /nick NEW        change your nickname",
    "***   /who             list who is in the room",
    "***   /me ACTION       say an action, shown as: * alice waves",
    "***   /msg NICK TEXT   send TEXT to NICK only",
    "***   /quit [REASON]   leave the room",
    "***   /help            this list",
    "***   //TEXT           say a line that starts with /",
];

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

    // ----- input ------------------------------------------------------------

    fn wants_input(&mut self, slot: usize, now: Instant) -> bool {
        let client = &self.clients[slot];
        matches!(client.state, State::Greeting | State::Chatting)
            && usize::from(client.filled) < INPUT
            && self.has_token(slot, now)
    }

    fn has_token(&mut self, slot: usize, now: Instant) -> bool {
        let Some(throttle) = self.config.throttle else { return true };
        let client = &mut self.clients[slot];
        while client.tokens < throttle.burst && now >= client.next_token {
            client.tokens += 1;
            client.next_token = client.next_token + throttle.interval_ms;
        }
        if client.tokens == throttle.burst {
            client.next_token = now + throttle.interval_ms;
        }
        client.tokens > 0
    }

    fn take_token(&mut self, slot: usize, now: Instant) -> bool {
        if self.config.throttle.is_none() {
            return true;
        }
        let ok = self.has_token(slot, now);
        if ok {
            self.clients[slot].tokens -= 1;
        }
        ok
    }

    /// Drops the first `n` bytes of a client's input.
    fn consume(&mut self, slot: usize, n: usize) {
        let client = &mut self.clients[slot];
        let filled = usize::from(client.filled);
        client.input.copy_within(n..filled, 0);
        client.filled = (filled - n) as u16;
    }

    /// Handles complete lines (or, for a seed client at the end of a chunk,
    /// complete messages) in a client's input, as flood control allows.
    fn handle_input(&mut self, slot: usize, now: Instant, chunk_end: bool) {
        loop {
            let client = &self.clients[slot];
            if !matches!(client.state, State::Greeting | State::Chatting) || client.filled == 0 {
                return;
            }
            if client.dialect == Dialect::Seed {
                return self.handle_seed_input(slot, now, chunk_end);
            }
            let filled = usize::from(client.filled);
            let Some(end) = client.input[..filled].iter().position(|&b| b == b'\n') else {
                if filled == INPUT {
                    // No terminator in a full buffer: the line is too long.
                    if !client.discarding {
                        self.notice(slot, format_args!("*** line too long (over {MAX_LINE} bytes), not sent"));
                    }
                    self.clients[slot].discarding = true;
                    self.clients[slot].filled = 0;
                }
                return;
            };
            if client.discarding {
                self.clients[slot].discarding = false;
                self.consume(slot, end + 1);
                continue;
            }
            if !self.take_token(slot, now) {
                return;
            }
            let client = &mut self.clients[slot];
            client.dialect = Dialect::Line;
            let line = &client.input[..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > MAX_LINE {
                self.consume(slot, end + 1);
                self.notice(slot, format_args!("*** line too long (over {MAX_LINE} bytes), not sent"));
                continue;
            }
            let text = cleaned(line);
            self.consume(slot, end + 1);
            self.handle_text(slot, &text, now);
        }
    }

    /// A seed client's input: messages are split where the client's own
    /// `{nick}: ` prefix starts one and at any `\n`; the prefix is dropped.
    fn handle_seed_input(&mut self, slot: usize, now: Instant, chunk_end: bool) {
        let mut prefix = Vec::<u8, { MAX_SAID + 2 }>::new();
        let _ = prefix.extend_from_slice(&self.clients[slot].said);
        let _ = prefix.extend_from_slice(b": ");
        if self.clients[slot].discarding {
            // The tail of an overlong message: skip to the next message.
            let client = &self.clients[slot];
            let data = &client.input[..usize::from(client.filled)];
            match find(&data[1..], &prefix).map(|at| at + 1) {
                Some(at) => {
                    self.consume(slot, at);
                    self.clients[slot].discarding = false;
                }
                None => {
                    self.clients[slot].filled = 0;
                    if chunk_end {
                        self.clients[slot].discarding = false;
                    }
                    return;
                }
            }
        }
        loop {
            let client = &self.clients[slot];
            let filled = usize::from(client.filled);
            if client.state != State::Chatting || filled == 0 {
                return;
            }
            let data = &client.input[..filled];
            let start = if data.starts_with(&prefix) { prefix.len() } else { 0 };
            let next_prefix = find(&data[start..], &prefix).map(|at| start + at);
            let newline = data[start..].iter().position(|&b| b == b'\n').map(|at| start + at);
            let (end, skip) = match (next_prefix, newline) {
                (Some(p), Some(n)) if n < p => (n, 1),
                (None, Some(n)) => (n, 1),
                (Some(p), _) => (p, 0),
                (None, None) if chunk_end => (filled, 0),
                (None, None) => {
                    if filled == INPUT {
                        // One message fills the buffer and goes on.
                        self.clients[slot].filled = 0;
                        self.clients[slot].discarding = true;
                        self.notice(slot, format_args!("*** message too long (over {MAX_LINE} bytes), not sent"));
                    }
                    return;
                }
            };
            if !self.take_token(slot, now) {
                return;
            }
            let client = &self.clients[slot];
            let message = &client.input[start..end];
            let message = message.strip_suffix(b"\r").unwrap_or(message);
            if message.len() > MAX_LINE {
                self.consume(slot, end + skip);
                self.notice(slot, format_args!("*** message too long (over {MAX_LINE} bytes), not sent"));
                continue;
            }
            let text = cleaned(message);
            self.consume(slot, end + skip);
            self.handle_text(slot, &text, now);
        }
    }

    // ----- registration -----------------------------------------------------

    /// A cleaned line from a client: a nickname while greeting, else a
    /// command or a chat line.
    fn handle_text(&mut self, slot: usize, text: &str, now: Instant) {
        match self.clients[slot].state {
            State::Greeting => self.register_line(slot, text, now),
            State::Chatting => self.chat(slot, text, now),
            _ => {}
        }
    }

    fn register_line(&mut self, slot: usize, text: &str, now: Instant) {
        match self.check_nick(slot, text) {
            Ok(nick) => self.join(slot, nick, now),
            Err(why) => {
                let shown = shorten(text);
                self.notice(slot, format_args!("*** nickname \"{shown}\" refused: {why}"));
                self.push(slot as u16, &[GREETING, b"\n"]);
            }
        }
    }

    /// The grace period ended with a bare nickname: a seed-dialect client.
    /// It cannot be asked again, so it gets a valid, unique variant.
    fn register_seed(&mut self, slot: usize, now: Instant) {
        let client = &mut self.clients[slot];
        client.dialect = Dialect::Seed;
        let data = &client.input[..usize::from(client.filled)];
        // A first message may have followed the name before the grace period
        // ended: `NeuralNeural: Hello`.
        let name_len = (1..=data.len().min(MAX_SAID))
            .find(|&k| data[k..].starts_with(&data[..k]) && data[2 * k..].starts_with(b": "))
            .unwrap_or(data.len());
        let name = &data[..name_len];
        let name = name.strip_suffix(b"\r").unwrap_or(name);
        client.said.clear();
        let _ = client.said.extend_from_slice(&name[..name.len().min(MAX_SAID)]);
        let cleaned = cleaned(name);
        self.consume(slot, name_len);
        let wanted = Nick::salvage(&cleaned);
        let nick = self.unique_variant(slot, &wanted);
        self.join(slot, nick.clone(), now);
        if nick.as_str() != cleaned.as_str() {
            let shown = shorten(&cleaned);
            let why = match self.check_nick(slot, &cleaned) {
                Err(NickError::Taken) | Ok(_) => "is taken",
                Err(_) => "is not a valid nickname",
            };
            self.notice(slot, format_args!("*** you are {nick} here: \"{shown}\" {why}"));
        }
        self.handle_input(slot, now, true);
    }

    /// `text` as a nickname for `slot`, if valid and not someone else's.
    fn check_nick(&self, slot: usize, text: &str) -> Result<Nick, NickError> {
        let nick = Nick::parse(text)?;
        let taken =
            self.clients.iter().enumerate().any(|(i, c)| i != slot && c.state == State::Chatting && c.nick.same(text));
        if taken {
            Err(NickError::Taken)
        } else {
            Ok(nick)
        }
    }

    /// `wanted`, or its first free variant (`alice2`, `alice3`, …).
    fn unique_variant(&self, slot: usize, wanted: &Nick) -> Nick {
        if self.check_nick(slot, wanted.as_str()).is_ok() {
            return wanted.clone();
        }
        // Start past the highest variant in use, so a crowd of namesakes
        // costs one pass each.
        let base = wanted.as_str();
        let highest = self
            .clients
            .iter()
            .filter(|c| c.state == State::Chatting)
            .filter_map(|c| {
                let nick = c.nick.as_str();
                let head = nick.get(..base.len())?;
                let tail = nick.get(base.len()..)?;
                if head.eq_ignore_ascii_case(base) {
                    tail.parse::<u32>().ok()
                } else {
                    None
                }
            })
            .max()
            .unwrap_or(1);
        (highest.saturating_add(1)..)
            .chain(2..)
            .map(|n| wanted.variant(n))
            .find(|nick| self.check_nick(slot, nick.as_str()).is_ok())
            .unwrap_or_else(|| wanted.clone())
    }

    fn join(&mut self, slot: usize, nick: Nick, _now: Instant) {
        info!("Nickname is {}", nick.as_str());
        let next = self.ring.next();
        let client = &mut self.clients[slot];
        client.state = State::Chatting;
        client.joined = next;
        // Choosing a nickname is not chatting: a newcomer starts with a full bucket.
        client.tokens = self.config.throttle.map_or(0, |t| t.burst);
        if client.private_until <= client.cursor.seq {
            client.cursor = Cursor { seq: next, sent: 0, sep: false };
        }
        client.nick = nick;
        let nick = client.nick.clone();
        self.push(EVERYONE, &[nick.as_str().as_bytes(), b" joined!\n"]);
        self.push(slot as u16, &[b"Connected to server!\n"]);
    }

    // ----- chatting ---------------------------------------------------------

    fn chat(&mut self, slot: usize, text: &str, now: Instant) {
        let nick = self.clients[slot].nick.clone();
        let Some(command) = text.strip_prefix('/') else {
            return self.say(&nick, text);
        };
        if command.starts_with('/') {
            return self.say(&nick, command);
        }
        let (name, arg) = command.split_once(' ').unwrap_or((command, ""));
        let arg = arg.trim();
        match name.to_ascii_lowercase_in::<8>().as_deref() {
            Some("nick") => self.rename(slot, arg),
            Some("who") => self.who(slot),
            Some("me") if !arg.is_empty() => {
                self.push(EVERYONE, &[b"* ", nick.as_str().as_bytes(), b" ", arg.as_bytes(), b"\n"]);
            }
            Some("me") => self.notice(slot, format_args!("*** usage: /me ACTION")),
            Some("msg") => self.private_message(slot, arg),
            Some("quit") => self.leave(slot, Reason::Quit, arg, now),
            Some("help") => {
                for line in HELP {
                    self.push(slot as u16, &[line.as_bytes(), b"\n"]);
                }
            }
            _ => {
                let shown = shorten(name);
                self.notice(slot, format_args!("*** unknown command /{shown}, /help lists them"));
            }
        }
    }

    fn say(&mut self, nick: &Nick, text: &str) {
        if !text.is_empty() {
            self.push(EVERYONE, &[nick.as_str().as_bytes(), b": ", text.as_bytes(), b"\n"]);
        }
    }

    fn rename(&mut self, slot: usize, arg: &str) {
        if arg.is_empty() {
            return self.notice(slot, format_args!("*** usage: /nick NEW"));
        }
        match self.check_nick(slot, arg) {
            Ok(new) => {
                let old = core::mem::replace(&mut self.clients[slot].nick, new.clone());
                info!("{} is now {}", old.as_str(), new.as_str());
                let (old, new) = (old.as_str().as_bytes(), new.as_str().as_bytes());
                self.push(EVERYONE, &[b"*** ", old, b" is now known as ", new, b"\n"]);
            }
            Err(why) => {
                let shown = shorten(arg);
                self.notice(slot, format_args!("*** nickname \"{shown}\" refused: {why}"));
            }
        }
    }

    fn who(&mut self, slot: usize) {
        let count = self.clients.iter().filter(|c| c.state == State::Chatting).count();
        let mut line = Text::new();
        let _ = write!(line, "*** {count} in the room:");
        let mut listed = 0;
        for client in self.clients.iter().filter(|c| c.state == State::Chatting) {
            // Keep room for the longest " and N more".
            if line.len() + 1 + client.nick.as_str().len() > MAX_LINE - 20 {
                break;
            }
            let _ = write!(line, " {}", client.nick);
            listed += 1;
        }
        if listed < count {
            let _ = write!(line, " and {} more", count - listed);
        }
        let _ = line.push('\n');
        self.push(slot as u16, &[line.as_bytes()]);
    }

    fn private_message(&mut self, slot: usize, arg: &str) {
        let (target, text) = arg.split_once(' ').unwrap_or((arg, ""));
        let text = text.trim_start();
        if target.is_empty() || text.is_empty() {
            return self.notice(slot, format_args!("*** usage: /msg NICK TEXT"));
        }
        let found = self.clients.iter().position(|c| c.state == State::Chatting && c.nick.same(target));
        let Some(to) = found else {
            let shown = shorten(target);
            return self.notice(slot, format_args!("*** no such nickname: {shown}"));
        };
        let from = self.clients[slot].nick.clone();
        let to_nick = self.clients[to].nick.clone();
        self.push(to as u16, &[b"*", from.as_str().as_bytes(), b"* ", text.as_bytes(), b"\n"]);
        self.push(slot as u16, &[b"-> *", to_nick.as_str().as_bytes(), b"* ", text.as_bytes(), b"\n"]);
    }

    /// A registered client leaves: the room (the client included) sees
    /// `{nick} left!`, then its connection closes once that went out.
    fn leave(&mut self, slot: usize, reason: Reason, why: &str, now: Instant) {
        self.announce_left(slot, why);
        self.start_leaving(slot, reason, now);
    }

    fn announce_left(&mut self, slot: usize, why: &str) {
        let nick = self.clients[slot].nick.clone();
        info!("{} left", nick.as_str());
        if why.is_empty() {
            self.push(EVERYONE, &[nick.as_str().as_bytes(), b" left!\n"]);
        } else {
            self.push(EVERYONE, &[nick.as_str().as_bytes(), b" left! (", why.as_bytes(), b")\n"]);
        }
    }

    fn start_leaving(&mut self, slot: usize, reason: Reason, now: Instant) {
        let next = self.ring.next();
        let client = &mut self.clients[slot];
        client.state = State::Leaving;
        client.reason = reason;
        client.until = next;
        client.deadline = now + self.config.drain_timeout_ms;
    }

    // ----- the log ----------------------------------------------------------

    /// A server notice for one client (or [`EVERYONE`]).
    fn notice(&mut self, slot: usize, args: fmt::Arguments<'_>) {
        let mut line = Text::new();
        // A notice is at most MAX_OUT - 1 bytes: its variable parts are
        // shortened, so this write cannot fail.
        let _ = line.write_fmt(args);
        let _ = line.push('\n');
        self.push(slot as u16, &[line.as_bytes()]);
    }

    /// Appends a line to the log, disconnecting the clients whose unread
    /// lines it overwrites. Returns its sequence number.
    fn push(&mut self, to: u16, parts: &[&[u8]]) -> u64 {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let first = self.ring.first_after_push(len);
        if first > self.slowest {
            self.catch_laggards(first);
        }
        let seq = self.ring.push(parts, to);
        if let Some(client) = self.clients.get_mut(usize::from(to)) {
            client.private_until = seq + 1;
        }
        if self.unannounced > 0 && !self.announcing {
            self.announcing = true;
            while let Some(slot) = self.clients.iter().position(|c| c.announce) {
                self.clients[slot].announce = false;
                self.unannounced -= 1;
                self.announce_left(slot, "");
            }
            self.announcing = false;
        }
        seq
    }

    /// Lines before `first` are about to be overwritten: every client still
    /// needing one of them is dropped.
    fn catch_laggards(&mut self, first: u64) {
        let next = self.ring.next();
        let mut slowest = next;
        for slot in 0..self.clients.len() {
            self.skip_unseen(slot);
            let client = &mut self.clients[slot];
            match client.state {
                State::Free | State::Dropped => continue,
                State::Greeting if client.private_until <= client.cursor.seq => {
                    // Nothing is waiting for it: it can skip ahead.
                    client.cursor = Cursor { seq: next, sent: 0, sep: false };
                }
                _ => {}
            }
            if client.cursor.seq >= first {
                slowest = slowest.min(client.cursor.seq);
                continue;
            }
            debug!("slot {} too slow, dropped", slot);
            if client.state == State::Chatting {
                client.announce = true;
                client.farewell = true;
                client.farewell_sent = 0;
                client.mend.clear();
                if client.cursor.sent > 0 || client.cursor.sep {
                    if client.dialect != Dialect::Seed && client.cursor.sent > 0 {
                        // The line it is cut off in is still in the log.
                        let text = self.ring.text(self.ring.line(client.cursor.seq));
                        let rest = &text[usize::from(client.cursor.sent)..];
                        for &b in rest.iter().take(3).take_while(|&&b| b & 0xC0 == 0x80) {
                            let _ = client.mend.push(b);
                        }
                    }
                    let _ = client.mend.push(b'\n');
                }
                self.unannounced += 1;
            }
            if client.state != State::Leaving {
                client.reason = Reason::TooSlow;
            }
            client.state = State::Dropped;
        }
        self.slowest = slowest;
    }

    /// Moves a client's cursor past lines that are not for it.
    fn skip_unseen(&mut self, slot: usize) {
        let next = self.ring.next();
        let client = &mut self.clients[slot];
        if client.state == State::Free {
            return;
        }
        while client.cursor.sent == 0 && client.cursor.seq < next.min(client.until) {
            let line = self.ring.line(client.cursor.seq);
            if client.sees(slot as u16, client.cursor.seq, line) {
                return;
            }
            client.cursor.seq += 1;
        }
    }

    // ----- output -----------------------------------------------------------

    fn has_output(&mut self, slot: usize) -> bool {
        self.skip_unseen(slot);
        let client = &self.clients[slot];
        client.greeting > 0
            || client.farewell
            || (client.cursor.seq < self.ring.next().min(client.until) && client.cursor.seq >= self.ring.first())
    }

    /// What one write to the client carries now: the greeting on its own;
    /// for a line client, a run of its lines straight from the log; for a
    /// seed client, its lines made ASCII and joined by `\n` in `batch`.
    fn output<'s>(&'s mut self, slot: usize, batch: &'s mut [u8; SEED_WRITE]) -> &'s [u8] {
        self.skip_unseen(slot);
        let client = &self.clients[slot];
        if client.greeting > 0 {
            return &GREETING[GREETING.len() - usize::from(client.greeting)..];
        }
        if client.farewell {
            return self.farewell(slot, batch);
        }
        if !matches!(client.state, State::Greeting | State::Chatting | State::Leaving) {
            return &[];
        }
        let end = self.ring.next().min(client.until);
        if client.cursor.seq >= end || client.cursor.seq < self.ring.first() {
            return &[];
        }
        if client.dialect == Dialect::Seed {
            let n = self.seed_walk(slot, Some(batch), 0);
            return &batch[..n];
        }
        let client = &self.clients[slot];
        let first = self.ring.line(client.cursor.seq);
        let mut last = first;
        let mut seq = client.cursor.seq + 1;
        while seq < end {
            let line = self.ring.line(seq);
            if !client.sees(slot as u16, seq, line) || !self.ring.follows(last, line) {
                break;
            }
            last = line;
            seq += 1;
        }
        let run = self.ring.span(first, usize::from(client.cursor.sent), last);
        if seq == end || run.len() >= SEED_WRITE / 2 {
            // Everything pending, or enough for one write: straight from the log.
            return run;
        }
        // The run stops at a line for someone else (a newcomer's private
        // `Connected to server!` between `joined!` lines) or at the ring's
        // end, with more to come: gather what follows into one write rather
        // than one write per piece.
        batch[..run.len()].copy_from_slice(run);
        let mut pos = run.len();
        for seq in seq..end {
            let line = self.ring.line(seq);
            if !client.sees(slot as u16, seq, line) {
                continue;
            }
            let text = self.ring.text(line);
            if pos + text.len() > SEED_WRITE {
                break;
            }
            batch[pos..pos + text.len()].copy_from_slice(text);
            pos += text.len();
        }
        &batch[..pos]
    }

    /// The rest of a dropped client's farewell: the end of the line it was
    /// cut off in, then [`TOO_SLOW`].
    fn farewell<'s>(&self, slot: usize, batch: &'s mut [u8; SEED_WRITE]) -> &'s [u8] {
        let client = &self.clients[slot];
        let text = farewell_text(client.dialect);
        let n = client.mend.len();
        batch[..n].copy_from_slice(&client.mend);
        batch[n..n + text.len()].copy_from_slice(text);
        &batch[usize::from(client.farewell_sent).min(n + text.len())..n + text.len()]
    }

    /// Counts `n` bytes of [`Room::output`] as sent; `short` if that was
    /// less than all of it.
    fn sent(&mut self, slot: usize, mut n: usize, short: bool) {
        if n == 0 {
            return;
        }
        let client = &mut self.clients[slot];
        if client.greeting > 0 {
            client.greeting -= n.min(usize::from(client.greeting)) as u8;
            return;
        }
        if client.farewell {
            client.farewell_sent += n as u16;
            client.farewell =
                usize::from(client.farewell_sent) < client.mend.len() + farewell_text(client.dialect).len();
            return;
        }
        if client.dialect == Dialect::Seed {
            self.seed_walk(slot, None, n);
            // A short write is likely to reach the client together with the
            // next one: make sure a line boundary still shows.
            let cursor = &mut self.clients[slot].cursor;
            if short && cursor.sent == 0 {
                cursor.sep = true;
            }
            return;
        }
        while n > 0 {
            self.skip_unseen(slot);
            let client = &mut self.clients[slot];
            let line = self.ring.line(client.cursor.seq);
            let rest = Ring::len_of(line) - usize::from(client.cursor.sent);
            if n >= rest {
                n -= rest;
                client.cursor = Cursor { seq: client.cursor.seq + 1, sent: 0, sep: false };
            } else {
                client.cursor.sent += n as u16;
                n = 0;
            }
        }
    }

    /// Walks a seed client's pending lines as one write lays them out:
    /// ASCII (anything else is `?`), no terminators, `\n` between lines, at
    /// most [`SEED_WRITE`] bytes (`cursor.sep` puts a `\n` before the first
    /// one too). With `out`, copies them there and returns
    /// the length; without, moves the cursor past the first `sent` bytes.
    fn seed_walk(&mut self, slot: usize, mut out: Option<&mut [u8; SEED_WRITE]>, mut sent: usize) -> usize {
        let mut cursor = self.clients[slot].cursor;
        let client = &self.clients[slot];
        let end = self.ring.next().min(client.until);
        let mut pos = 0;
        while cursor.seq < end && (out.is_some() || sent > 0) {
            let line = self.ring.line(cursor.seq);
            if cursor.sent == 0 && !client.sees(slot as u16, cursor.seq, line) {
                cursor.seq += 1;
                continue;
            }
            let text = self.ring.text(line);
            let text = text.strip_suffix(b"\n").unwrap_or(text);
            // The first line of a write has no separator, unless the write
            // before was cut short right after a line.
            let sep = if cursor.sent > 0 || pos == 0 { cursor.sep } else { true };
            // Most lines are ASCII already: their length is their seed length.
            let plain = text.is_ascii();
            let shown = if plain { text.len() } else { ascii(text).count() };
            let rest = usize::from(sep) + shown - usize::from(cursor.sent);
            match out.as_deref_mut() {
                Some(batch) => {
                    if pos > 0 && pos + rest > SEED_WRITE {
                        break;
                    }
                    let dst = &mut batch[pos..pos + rest];
                    let skip = usize::from(cursor.sent);
                    if plain && (!sep || skip > 0) {
                        dst.copy_from_slice(&text[skip - usize::from(sep)..]);
                    } else if plain {
                        dst[0] = b'\n';
                        dst[1..].copy_from_slice(text);
                    } else {
                        let wire = sep.then_some(b'\n').into_iter().chain(ascii(text));
                        for (slot, byte) in dst.iter_mut().zip(wire.skip(skip)) {
                            *slot = byte;
                        }
                    }
                    pos += rest;
                    cursor = Cursor { seq: cursor.seq + 1, sent: 0, sep: false };
                }
                None if sent >= rest => {
                    sent -= rest;
                    pos += rest;
                    cursor = Cursor { seq: cursor.seq + 1, sent: 0, sep: false };
                }
                None => {
                    cursor = Cursor { seq: cursor.seq, sent: cursor.sent + sent as u16, sep };
                    sent = 0;
                }
            }
        }
        if out.is_none() {
            self.clients[slot].cursor = cursor;
        }
        pos
    }
}

/// `bytes` cleaned (see [`clean()`]), cut at a character boundary to at
/// most [`MAX_LINE`] bytes (replacement characters can make it longer than
/// its input).
fn cleaned(bytes: &[u8]) -> String<MAX_LINE> {
    let mut text = String::new();
    let mut full = false;
    clean(bytes, |c| {
        full = full || text.push(c).is_err();
    });
    text
}

/// [`TOO_SLOW`] as a client of `dialect` gets it.
fn farewell_text(dialect: Dialect) -> &'static [u8] {
    match dialect {
        Dialect::Seed => &TOO_SLOW[..TOO_SLOW.len() - 1],
        _ => TOO_SLOW,
    }
}

/// A seed client's view of UTF-8 text: one byte per character, `?` for
/// anything that is not ASCII.
fn ascii(text: &[u8]) -> impl Iterator<Item = u8> + '_ {
    text.iter().filter(|&&b| b & 0xC0 != 0x80).map(|&b| if b.is_ascii() { b } else { b'?' })
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// At most 40 bytes of `text`, for quoting a peer's input in a notice.
fn shorten(text: &str) -> &str {
    let mut end = text.len().min(40);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// ASCII lower case of a short word, if it fits `N` bytes.
trait ToAsciiLowercaseIn {
    fn to_ascii_lowercase_in<const N: usize>(&self) -> Option<String<N>>;
}

impl ToAsciiLowercaseIn for str {
    fn to_ascii_lowercase_in<const N: usize>(&self) -> Option<String<N>> {
        let mut out = String::new();
        for c in self.chars() {
            out.push(c.to_ascii_lowercase()).ok()?;
        }
        Some(out)
    }
}
