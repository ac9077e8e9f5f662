//! A smoltcp TCP socket as an `embedded_io` connection, so that
//! [`chat_core::Room::pump`] drives it exactly as it drives a std socket.
//!
//! smoltcp never blocks: data moves between the socket's buffers and the
//! wire when the interface is polled. So "ready" means "the buffers allow
//! it now", and a call that finds nothing to do says
//! [`ErrorKind::Interrupted`], which the room reads as "not ready after all".

use embedded_io::{ErrorKind, ErrorType, Read, ReadReady, Write, WriteReady};
use smoltcp::socket::tcp::{RecvError, Socket, State};

/// A borrowed TCP socket, seen through `embedded_io`'s traits.
///
/// - [`ReadReady`]: there are received bytes, or the peer is gone (its FIN
///   or RST came and every byte before it has been read); then
///   [`Read::read`] returns `Ok(0)`, end of file.
/// - [`WriteReady`]: the send buffer has room, or sending has become
///   impossible (reset, or our side closed); then [`Write::write`] fails
///   with [`ErrorKind::ConnectionReset`] or [`ErrorKind::BrokenPipe`], as a
///   std socket would, so the room ends the connection instead of waiting
///   for a send that can never happen.
///
/// A socket that is still listening or connecting is neither: nothing has
/// happened on it yet.
pub struct TcpConn<'s, 'a> {
    socket: &'s mut Socket<'a>,
}

impl<'s, 'a> TcpConn<'s, 'a> {
    /// Wraps `socket` for the duration of one pump.
    pub fn new(socket: &'s mut Socket<'a>) -> Self {
        TcpConn { socket }
    }

    /// No connection has been established on the socket yet: its "cannot
    /// receive" means "not yet", not "never again".
    fn connecting(&self) -> bool {
        matches!(self.socket.state(), State::Listen | State::SynSent | State::SynReceived)
    }
}

impl ErrorType for TcpConn<'_, '_> {
    type Error = ErrorKind;
}

impl ReadReady for TcpConn<'_, '_> {
    fn read_ready(&mut self) -> Result<bool, ErrorKind> {
        // `may_recv` stays true while received bytes are buffered, so a
        // peer's last line is read before its end of file is reported.
        Ok(self.socket.can_recv() || (!self.socket.may_recv() && !self.connecting()))
    }
}

impl Read for TcpConn<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.socket.recv_slice(buf) {
            Ok(0) => Err(ErrorKind::Interrupted),
            Ok(n) => Ok(n),
            // The peer's FIN, after every byte it sent.
            Err(RecvError::Finished) => Ok(0),
            Err(RecvError::InvalidState) if self.connecting() => Err(ErrorKind::Interrupted),
            // Reset by the peer, or timed out: the peer is gone all the same.
            // End of file lets the room treat it as any departure (a last
            // unterminated line still counts, the room sees `left!`).
            Err(RecvError::InvalidState) => Ok(0),
        }
    }
}

impl WriteReady for TcpConn<'_, '_> {
    fn write_ready(&mut self) -> Result<bool, ErrorKind> {
        Ok(self.socket.can_send() || (!self.socket.may_send() && !self.connecting()))
    }
}

impl Write for TcpConn<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.socket.send_slice(buf) {
            // The send buffer is full: the interface drains it as the peer
            // acknowledges.
            Ok(0) => Err(ErrorKind::Interrupted),
            Ok(n) => Ok(n),
            Err(_) if self.connecting() => Err(ErrorKind::Interrupted),
            Err(_) if self.socket.state() == State::Closed => Err(ErrorKind::ConnectionReset),
            Err(_) => Err(ErrorKind::BrokenPipe),
        }
    }

    fn flush(&mut self) -> Result<(), ErrorKind> {
        // Queued bytes leave on the interface's next poll; there is nothing
        // to wait for here.
        Ok(())
    }
}
