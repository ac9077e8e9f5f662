//! The bench's clients over TLS: a rustls client session over a
//! non-blocking mio socket, read and written like the socket itself
//! (`std::io`, `WouldBlock` when nothing can move).
//!
//! Two differences from a plain socket matter to the run loop: a short read
//! does not mean the socket is drained (rustls hands out plaintext a record
//! at a time), so a TLS client is read until `WouldBlock`; and records can
//! be due with nothing new to write (the handshake, the rest of a record the
//! kernel took part of), so [`Stream::flush_records`] goes on every event.

use std::io::{self, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

/// A client's connection to the server.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

/// A TLS session over a non-blocking socket.
pub struct TlsStream {
    tcp: TcpStream,
    tls: ClientConnection,
}

/// What TLS clients are made with: the configuration and the servers'
/// names, one per address of the plan (in its order), each checked against
/// its own certificate.
#[derive(Clone, Debug)]
pub struct Tls {
    pub config: Arc<ClientConfig>,
    pub names: Vec<ServerName<'static>>,
}

impl Stream {
    /// `tcp` to the plan's address `server`, through a new TLS session if
    /// `tls` says so.
    pub(crate) fn new(tcp: TcpStream, tls: Option<&Tls>, server: usize) -> io::Result<Stream> {
        Ok(match tls {
            None => Stream::Plain(tcp),
            Some(tls) => {
                let name = tls.names.get(server).ok_or_else(|| io::Error::other("no TLS name for this server"))?;
                let session = ClientConnection::new(tls.config.clone(), name.clone()).map_err(io::Error::other)?;
                Stream::Tls(Box::new(TlsStream { tcp, tls: session }))
            }
        })
    }

    /// The socket, for the poller.
    pub(crate) fn tcp_mut(&mut self) -> &mut TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => &mut tls.tcp,
        }
    }

    /// Whether a short read may leave bytes in the socket.
    pub(crate) fn reads_by_record(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Sends the TLS records that are due, as far as the socket takes them.
    pub(crate) fn flush_records(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(tls) => tls.flush_records().map(drop),
        }
    }
}

impl TlsStream {
    /// Sends due records until none is left or the socket is full; returns
    /// whether some are left (a writable event will come).
    fn flush_records(&mut self) -> io::Result<bool> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.tcp) {
                Ok(0) => return Ok(true),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let tls = match self {
            Stream::Plain(tcp) => return tcp.read(buf),
            Stream::Tls(tls) => tls,
        };
        loop {
            if let Some(read) = host::tls::plaintext(tls.tls.reader(), buf) {
                return read;
            }
            // No plaintext: decrypt what the socket holds (`WouldBlock` when
            // it is drained; `Ok(0)` tells rustls the stream ended).
            tls.tls.read_tls(&mut tls.tcp)?;
            tls.tls.process_new_packets().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            tls.flush_records()?;
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let tls = match self {
            Stream::Plain(tcp) => return tcp.write(buf),
            Stream::Tls(tls) => tls,
        };
        // Short only when the socket is full: the caller waits for it to
        // be writable, which an event will say.
        let mut taken = 0;
        while taken < buf.len() && !tls.flush_records()? {
            let n = tls.tls.writer().write(&buf[taken..])?;
            if n == 0 {
                break;
            }
            taken += n;
        }
        tls.flush_records()?;
        if taken == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
