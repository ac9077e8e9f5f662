//! One client's slot: small types, each with one job.

use core::net::IpAddr;

use heapless::Vec;

use super::bucket::{Bucket, Throttle};
use super::farewell::Farewell;
use super::framing::Input;
use super::lists::{Linked, Links};
use super::member::Claim;
use super::web::Web;
use super::Reason;
use crate::nick::{Nick, MAX_NICK};
use crate::ring::{Cursor, Line, Recipient};
use crate::time::Instant;
use crate::wire::{Dialect, GREETING};

/// The longest name a seed-dialect client may put before its messages.
pub(super) const MAX_SAID: usize = 2 * MAX_NICK;

/// Where a client is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    Free,
    /// Connected, no nickname yet.
    Greeting,
    /// Registered: in the room.
    Chatting,
    /// Out of the room; its last lines are going out.
    Leaving,
    /// Dropped: closed once its farewell (if it has one) is out, or at its
    /// deadline.
    Dropped,
}

/// One client slot: an opaque storage cell, as smoltcp's `SocketStorage`
/// is. Callers allocate these (see [`crate::Storage`]); the room fills them.
#[derive(Clone)]
pub struct ClientStorage {
    pub(super) client: Client,
    links: Links,
}

impl ClientStorage {
    /// A free slot.
    pub const EMPTY: ClientStorage = ClientStorage { client: Client::FREE, links: Links::NONE };
}

impl Linked for ClientStorage {
    fn links(&self) -> &Links {
        &self.links
    }

    fn links_mut(&mut self) -> &mut Links {
        &mut self.links
    }
}

/// A client, from its connection to its close.
#[derive(Clone)]
pub(super) struct Client {
    pub state: State,
    pub dialect: Dialect,
    pub nick: Nick,
    /// Seed dialect: the name the client itself puts before each message.
    pub said: Vec<u8, MAX_SAID>,
    pub input: Input,
    pub bucket: Bucket,
    /// Reading stopped while the connection had bytes ready.
    pub paused: bool,
    /// Told to slow down in this episode of held lines.
    pub warned: bool,
    pub cursor: Cursor,
    /// Which lines of the log are for this client.
    pub window: Window,
    /// Bytes of [`GREETING`] still to send.
    pub greeting: u8,
    pub farewell: Farewell,
    /// A `left!` line is still to be broadcast for this dropped client.
    pub announce: bool,
    pub accepted: Instant,
    /// When input last arrived (the seed grace period runs from it).
    pub heard: Instant,
    /// When a leaving client is closed whatever is still unsent.
    pub deadline: Instant,
    pub reason: Reason,
    /// The peer's address, from the frontend: what `/ban` bans.
    pub peer: Option<IpAddr>,
    /// Its nickname is chosen, its password not given yet.
    pub awaiting_password: bool,
    /// Wrong passwords so far, to get in or to become an operator.
    pub wrong_passwords: u8,
    pub operator: bool,
    /// A browser's HTTP request, or its WebSocket.
    pub web: Web,
    /// In a member room: the nickname it asked the world outside for.
    pub claim: Claim,
    pub wanted: Nick,
    /// Variants of its name a seed client was refused.
    pub seed_tries: u8,
    /// In a member room: it left, and waits for its own `left!`.
    pub left_pending: bool,
}

/// The part of the log a client sees: broadcasts from when it joined, lines
/// addressed to it, and nothing from when it left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Window {
    /// Broadcast lines from this sequence number on are for this client.
    pub joined: u64,
    /// Nothing from this sequence number on is for this client.
    pub until: u64,
    /// One past the last line addressed to this client alone.
    pub private_until: u64,
}

impl Window {
    const CLOSED: Window = Window { joined: u64::MAX, until: u64::MAX, private_until: 0 };

    /// Whether line `seq` is for the client in slot `me`.
    pub fn sees(&self, me: super::ClientId, seq: u64, line: Line) -> bool {
        seq < self.until
            && match line.to() {
                Recipient::One(to) => to == me,
                Recipient::Everyone | Recipient::Notice => seq >= self.joined,
                Recipient::Cluster => false,
            }
    }
}

impl Client {
    const FREE: Client = Client {
        state: State::Free,
        dialect: Dialect::Unknown,
        nick: Nick::EMPTY,
        said: Vec::new(),
        input: Input::EMPTY,
        bucket: Bucket::EMPTY,
        paused: false,
        warned: false,
        cursor: Cursor::at(0),
        window: Window::CLOSED,
        greeting: 0,
        farewell: Farewell::NONE,
        announce: false,
        accepted: Instant::ZERO,
        heard: Instant::ZERO,
        deadline: Instant::ZERO,
        reason: Reason::PeerClosed,
        peer: None,
        awaiting_password: false,
        wrong_passwords: 0,
        operator: false,
        web: Web::NEW,
        claim: Claim::None,
        wanted: Nick::EMPTY,
        seed_tries: 0,
        left_pending: false,
    };

    /// A new connection, about to be sent [`GREETING`], reading the log from
    /// `cursor` on.
    pub fn greeting(cursor: Cursor, throttle: Option<&Throttle>, now: Instant) -> Client {
        Client {
            state: State::Greeting,
            cursor,
            greeting: GREETING.len() as u8,
            bucket: throttle.map_or(Bucket::EMPTY, Bucket::full),
            accepted: now,
            heard: now,
            ..Client::FREE
        }
    }
}
