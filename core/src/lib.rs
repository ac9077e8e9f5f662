//! The chat room's protocol engine.
//!
//! `chat_core` is everything the chat server *decides*, and nothing it
//! *does*: it owns no socket, reads no clock, allocates nothing and never
//! blocks. The same engine runs in `chat-server` on a laptop (std sockets),
//! in `tap-server` on smoltcp over a TAP device, and as firmware on a
//! Cortex-M3 board with 64 KiB of RAM.
//!
//! # Design
//!
//! - **Sans-IO.** A frontend accepts a connection and asks the [`Room`] for
//!   a slot ([`Room::accept`], or [`Room::accept_web`] for its web
//!   listener). Whenever it wakes up it lets the room move bytes over the
//!   connections that became ready with [`Room::pump`] (any `embedded_io`
//!   `Read + Write + ReadReady + WriteReady`: a std socket, a TLS session, a
//!   smoltcp socket), calls [`Room::handle_timeout`], pumps every client
//!   [`Room::poll_ready`] names, closes those that came back
//!   [`Status::Closed`], and sleeps until [`Room::poll_timeout`] or the next
//!   readiness event. Time is passed in as [`Instant`]. A wake-up costs what
//!   is active: the room keeps lists of the clients with news and with
//!   deadlines, and never scans its free slots. The core's own tests drive
//!   rooms exactly so, over in-memory connections.
//! - **Fixed storage, chosen by the caller.** Client slots and the room's
//!   log live in slices the caller hands over, as smoltcp's `SocketSet`
//!   takes its storage: a [`Storage`] in a `static` on a board, `Vec`s sized
//!   from the command line on the host. Memory use is known before the first
//!   client connects.
//! - **One log for every recipient.** Every line the server sends is stored
//!   once in a ring with a sequence number; each client reads it through its
//!   own cursor, and a run of lines goes out in one write. A client that
//!   falls a whole ring behind is disconnected with a notice saying so (its
//!   room sees `{nick} left!`): nobody silently misses a line.
//! - **Three dialects in one room.** The tutorial's Python client (the
//!   *seed* dialect: bare nickname, one message per `send`, ASCII), line
//!   clients (`nc`, `chat-client`: `\n`-terminated UTF-8) and browsers (the
//!   [`web`] dialect: the room serves its own page, then a WebSocket with one
//!   text frame per line) talk to each other; the seed and line dialects are
//!   told apart by how the nickname arrives. Newcomers are replayed the
//!   room's last lines; a room may have a password and operators.
//!   [`wire`] holds every fixed text a client and a server share;
//!   `PROTOCOL.md` at the repository root has every byte.
//! - **One room on several servers.** A room can be one member of a room
//!   spanning several servers ([`Room::join_cluster`]): it hands out what
//!   its clients do as [`cluster`] events ([`Room::poll_event`]) instead of
//!   showing them, and shows the events that something outside (a broker)
//!   puts in one order ([`Room::apply`]); nicknames are claimed outside
//!   ([`Room::claimed`]). No broker code here: `chat-server --nats` is one
//!   such frontend.
//! - **Hostile input is normal input.** Lines are bounded, text is cleaned of
//!   terminal escapes and bidi overrides ([`clean()`]), flooders are slowed
//!   down by a token bucket rather than dropped, silent connections time
//!   out, and no input can make the engine panic.
//!
//! # Features
//!
//! - `log`: log through the `log` crate (host frontends).
//! - `defmt`: log through `defmt` and derive `defmt::Format` (firmware).
//!
//! At most one of them; with neither, the engine does not log.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

// MUST go first: the logging macros are used by every module below.
mod fmt;

mod clean;
pub mod cluster;
mod nick;
mod ring;
mod room;
mod time;
pub mod web;
pub mod wire;

#[cfg(test)]
mod tests;

pub use clean::clean;
pub use nick::{Nick, NickError, MAX_NICK};
pub use ring::LineStorage;
pub use room::{
    ClientId, ClientStorage, Config, Reason, Refused, RemoteStorage, Room, Status, Storage, Throttle, MAX_BANS,
};
pub use time::{Duration, Instant};
pub use wire::{Dialect, MAX_LINE, ROOM_FULL};
