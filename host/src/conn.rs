//! A non-blocking mio socket seen through the core's `embedded-io` traits.
//!
//! embedded-io has no "would block": a read returning `Ok(0)` is the end of
//! the stream. So the adapter keeps the readiness mio reported and answers
//! `ReadReady`/`WriteReady` from it, clearing it when the kernel runs dry (a
//! short read or write, or `WouldBlock`). mio is edge-triggered: the flags are
//! set again by the next event, which the kernel raises when more bytes or
//! more buffer space arrive. Once the peer has closed or reset, there is no
//! next event: from then on only `WouldBlock` clears readability, so the end
//! of the stream is always read.

use std::io::{self, Read as _, Write as _};
use std::net::SocketAddr;

use mio::net::TcpStream;

/// A client connection.
pub struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    readable: bool,
    writable: bool,
    /// The peer closed or reset: no more readiness events will come.
    hung_up: bool,
}

impl Conn {
    /// Wraps a freshly accepted socket: writable (a new socket has buffer
    /// space), not known to be readable yet.
    pub fn new(stream: TcpStream, peer: SocketAddr) -> Conn {
        Conn { stream, peer, readable: false, writable: true, hung_up: false }
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The socket, for (de)registering with the poller.
    pub fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Records what a readiness event said.
    pub fn ready(&mut self, readable: bool, writable: bool, hung_up: bool) {
        self.readable |= readable || hung_up;
        self.writable |= writable;
        self.hung_up |= hung_up;
    }
}

/// `WouldBlock` as embedded-io spells "not ready after all".
fn not_ready() -> io::Error {
    io::Error::from(io::ErrorKind::Interrupted)
}

impl embedded_io::ErrorType for Conn {
    type Error = io::Error;
}

impl embedded_io::Read for Conn {
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
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return Err(not_ready());
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl embedded_io::ReadReady for Conn {
    fn read_ready(&mut self) -> io::Result<bool> {
        Ok(self.readable)
    }
}

impl embedded_io::Write for Conn {
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
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.writable = false;
                    return Err(not_ready());
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl embedded_io::WriteReady for Conn {
    fn write_ready(&mut self) -> io::Result<bool> {
        Ok(self.writable)
    }
}
