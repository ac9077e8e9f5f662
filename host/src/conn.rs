//! A non-blocking mio socket seen through the core's `embedded-io` traits,
//! in plain text or through TLS ([`crate::tls::TlsConn`]).
//!
//! embedded-io has no "would block": a read returning `Ok(0)` is the end of
//! the stream. So a [`Socket`] keeps the readiness mio reported and answers
//! `ReadReady`/`WriteReady` from it, clearing it when the kernel runs dry (a
//! short read or write, or `WouldBlock`). mio is edge-triggered: the flags are
//! set again by the next event, which the kernel raises when more bytes or
//! more buffer space arrive. Once the peer has closed or reset, there is no
//! next event: from then on only `WouldBlock` clears readability, so the end
//! of the stream is always read.
//!
//! A [`Conn`] is what the room pumps: the socket itself, or a TLS session
//! over it. Both follow the same rules: `ReadReady` says a read will return
//! bytes or the end of the stream (for TLS: plaintext, or the peer's close),
//! `WriteReady` says the kernel has room for more, and "not ready after all"
//! is an error of kind `Interrupted`, which the room does not take as fatal.

use std::io::{self, Read as _, Write as _};
use std::net::SocketAddr;

use mio::net::TcpStream;

use crate::tls::TlsConn;

/// A client's socket and the readiness mio last reported for it.
pub struct Socket {
    stream: TcpStream,
    peer: SocketAddr,
    readable: bool,
    writable: bool,
    /// The peer closed or reset: no more readiness events will come.
    hung_up: bool,
}

impl Socket {
    /// Wraps a freshly accepted socket: writable (a new socket has buffer
    /// space), not known to be readable yet.
    pub fn new(stream: TcpStream, peer: SocketAddr) -> Socket {
        Socket { stream, peer, readable: false, writable: true, hung_up: false }
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Whether a read may return bytes (or the end) without blocking.
    pub fn is_readable(&self) -> bool {
        self.readable
    }

    /// Whether a write may take bytes without blocking.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// Records what a readiness event said.
    pub fn ready(&mut self, readable: bool, writable: bool, hung_up: bool) {
        self.readable |= readable || hung_up;
        self.writable |= writable;
        self.hung_up |= hung_up;
    }

    /// Ends our side after our last bytes and drops what the peer still
    /// sends. Closing with unread input makes the kernel send a reset, which
    /// can destroy our last lines (a notice saying why) before the peer reads
    /// them.
    fn close(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        let mut sink = [0; 4096];
        for _ in 0..16 {
            if !matches!(self.stream.read(&mut sink), Ok(n) if n > 0) {
                break;
            }
        }
    }
}

/// Reads as std does, with `WouldBlock` for "nothing now"; keeps the
/// readiness flag up to date.
impl io::Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.stream.read(buf) {
                Ok(n) => {
                    // A short read drained the socket, unless the peer hung
                    // up: then the end of the stream is still to be read.
                    if n < buf.len() && !self.hung_up {
                        self.readable = false;
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if e.kind() == io::ErrorKind::WouldBlock {
                        self.readable = false;
                    }
                    return Err(e);
                }
            }
        }
    }
}

/// Writes as std does, with `WouldBlock` for "no room now"; keeps the
/// readiness flag up to date.
impl io::Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match self.stream.write(buf) {
                Ok(n) => {
                    if n < buf.len() {
                        self.writable = false;
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if e.kind() == io::ErrorKind::WouldBlock {
                        self.writable = false;
                    }
                    return Err(e);
                }
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A client connection: plain text, or TLS.
pub enum Conn {
    /// Bytes as they are on the wire.
    Plain(Socket),
    /// A TLS session over the socket (boxed: rustls's state is large).
    Tls(Box<TlsConn>),
}

impl Conn {
    fn socket(&self) -> &Socket {
        match self {
            Conn::Plain(socket) => socket,
            Conn::Tls(tls) => tls.socket(),
        }
    }

    fn socket_mut(&mut self) -> &mut Socket {
        match self {
            Conn::Plain(socket) => socket,
            Conn::Tls(tls) => tls.socket_mut(),
        }
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.socket().peer()
    }

    /// The socket, for (de)registering with the poller.
    pub fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.socket_mut().stream
    }

    /// Records what a readiness event said.
    pub fn ready(&mut self, readable: bool, writable: bool, hung_up: bool) {
        self.socket_mut().ready(readable, writable, hung_up);
    }

    /// Ends the connection after the bytes already written (a TLS session
    /// says `close_notify` first), without a reset.
    pub fn close(&mut self) {
        if let Conn::Tls(tls) = self {
            tls.close_notify();
        }
        self.socket_mut().close();
    }
}

/// `WouldBlock` as embedded-io spells "not ready after all".
pub(crate) fn not_ready() -> io::Error {
    io::Error::from(io::ErrorKind::Interrupted)
}

/// A std result with `WouldBlock` turned into [`not_ready`].
fn or_not_ready(result: io::Result<usize>) -> io::Result<usize> {
    result.map_err(|e| if e.kind() == io::ErrorKind::WouldBlock { not_ready() } else { e })
}

impl embedded_io::ErrorType for Conn {
    type Error = io::Error;
}

impl embedded_io::Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(socket) => or_not_ready(socket.read(buf)),
            Conn::Tls(tls) => tls.read(buf),
        }
    }
}

impl embedded_io::ReadReady for Conn {
    fn read_ready(&mut self) -> io::Result<bool> {
        match self {
            Conn::Plain(socket) => Ok(socket.readable),
            Conn::Tls(tls) => tls.read_ready(),
        }
    }
}

impl embedded_io::Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(socket) => or_not_ready(socket.write(buf)),
            Conn::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl embedded_io::WriteReady for Conn {
    fn write_ready(&mut self) -> io::Result<bool> {
        match self {
            Conn::Plain(socket) => Ok(socket.writable),
            Conn::Tls(tls) => tls.write_ready(),
        }
    }
}
