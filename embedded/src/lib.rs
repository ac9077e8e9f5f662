//! The chat room on smoltcp.
//!
//! The same [`chat_core::Room`] that `chat-server` runs over std sockets,
//! run over smoltcp's TCP sockets on any [`smoltcp::phy::Device`]: a Linux
//! TAP device in `tap-server`, a board's Ethernet MAC in firmware. This
//! crate only moves bytes; every protocol decision is the room's.
//!
//! - [`TcpConn`] makes a smoltcp TCP socket an `embedded_io` connection, so
//!   [`Room::pump`](chat_core::Room::pump) drives it as it drives a std
//!   socket.
//! - [`Server`] owns a smoltcp interface and a pool of TCP sockets
//!   listening on the chat port and, with [`Settings::web_port`], on the
//!   web port, whose connections the room takes as browsers
//!   ([`Room::accept_web`](chat_core::Room::accept_web): the chat page, and
//!   its WebSocket into the room). One socket per client slot plus a spare
//!   for each port, so the connection one beyond capacity is still accepted
//!   and told [`ROOM_FULL`](chat_core::ROOM_FULL) (in HTTP on the web port)
//!   before it is closed; every socket serves either port, the free ones
//!   shared out between the two. A socket whose
//!   connection is over listens again at once: where the server closed
//!   first, smoltcp would keep it in TIME-WAIT for 10 s, and a burst of
//!   short sessions would find no socket listening, so TIME-WAIT is
//!   skipped; a peer that never finishes closing is reset after
//!   [`LINGER`].
//! - Memory comes from the caller ([`Sockets`], or [`Storage`] for a
//!   `static`), time too (a [`chat_core::Instant`] in milliseconds), and
//!   [`Server::poll`] says when it next has something to do, so a loop can
//!   sleep until then or until a frame arrives: an idle server uses no CPU.
//!
//! ```text
//! let mut server = Server::new(&mut device, &settings, now(), room, storage.sockets());
//! loop {
//!     let next = server.poll(now(), &mut device);
//!     sleep_until_frame_or(next);
//! }
//! ```
//!
//! # Features
//!
//! The library is `no_std` and allocates nothing, whatever the features.
//!
//! - `std` (default): what the `tap-server` binary needs (smoltcp's TAP
//!   device, clap, env_logger, signals); implies `log`. Firmware and the
//!   `thumbv7m-none-eabi` check build with `--no-default-features`.
//! - `log`: log through `log` (host).
//! - `defmt`: log through `defmt` (firmware).
//!
//! At most one of `log` and `defmt`; each turns on the same feature in
//! `chat_core` and smoltcp.
#![no_std]
#![deny(missing_docs)]

// MUST go first: the logging macros are used by the modules below.
mod fmt;

mod conn;
mod server;

// The tests' clients use smoltcp's allocating socket set (feature `std`).
#[cfg(all(test, feature = "std"))]
mod tests;

pub use conn::TcpConn;
pub use server::{Server, Settings, Slot, Sockets, Storage, LINGER, MIN_BUFFER};
