//! The web dialect: the chat page and the WebSocket over which a browser
//! joins the room.
//!
//! A frontend's web listener hands its connections to the room with
//! [`Room::accept_web`](crate::Room::accept_web). The room reads an
//! HTTP/1.1 request from it: `GET /` gets [`PAGE`], `GET /ws` with a valid
//! WebSocket upgrade gets `101 Switching Protocols`, and from then on each
//! line is one text frame both ways. PROTOCOL.md has every byte.

/// The chat page, gzipped at build time from `core/web/chat.html`.
pub const PAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/chat.html.gz"));

/// Where the page opens its WebSocket.
pub const WS_PATH: &str = "/ws";
