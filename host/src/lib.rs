//! The chat room on a laptop: `chat-server` and `chat-client` over std
//! sockets, in plain text or TLS.
//!
//! The server is a thin frontend over the `chat_core` engine: it owns the
//! sockets ([`conn`], [`tls`]), the poller and the clock ([`server`]), and the
//! command line; every protocol decision is the core's.

pub mod client;
pub mod conn;
pub mod keepalive;
pub mod nats;
pub mod server;
pub mod tls;
pub mod tls_client;
