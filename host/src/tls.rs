//! TLS for `chat-server`: the certificate, and a TLS session seen through
//! the same `embedded-io` traits as a plain socket ([`crate::conn`]).
//!
//! A [`TlsConn`] is rustls's `ServerConnection` over a [`Socket`], driven the
//! way rustls's `tlsserver-mio` example drives it, inside the server's one
//! loop: TLS records are read when the socket is readable and the room asks
//! for input, written whenever the socket is writable. The room sees
//! plaintext only, so `Room::pump` and every protocol decision stay as they
//! are. The rules (`crate::conn`'s, for plaintext):
//!
//! - `ReadReady` is true when plaintext is buffered or the peer has closed;
//!   to find out, it reads and decrypts what the socket holds.
//! - `WriteReady` is true when every TLS record made so far is in the
//!   kernel: plaintext is taken only as fast as the socket drains, so a
//!   slow TLS reader falls behind in the room's log and is dropped as too
//!   slow, exactly like a plain one, and rustls's buffers stay small.
//! - A write is short only when the socket is full, as a plain socket's:
//!   the room then waits for a writable event, and one will come.
//! - A handshake or record error is logged with the peer's address, the
//!   alert goes out, and the connection ends (`InvalidData`).
//!
//! The client holds a room slot from the TCP accept on, so a handshake that
//! never finishes is closed by the room's registration timeout.

use std::fmt::Write as _;
use std::io::{self, Read as _, Write as _};
use std::path::Path;
use std::sync::Arc;

use log::warn;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection};

use crate::conn::{not_ready, Socket};

/// Reads of the socket one `ReadReady` may do looking for plaintext: a
/// handshake takes one or two; a peer that sends only records without
/// application data waits for its next readiness event after this many.
const MAX_FILLS: usize = 16;

/// The crypto provider: *ring*, TLS 1.3 and 1.2 only.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The protocol versions the server and the client accept.
pub(crate) const VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A certificate's SHA-256 fingerprint as `openssl x509 -fingerprint
/// -sha256` prints it: upper-case hex, colon-separated.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut text = String::with_capacity(digest.as_ref().len() * 3);
    for (i, byte) in digest.as_ref().iter().enumerate() {
        if i > 0 {
            text.push(':');
        }
        let _ = write!(text, "{byte:02X}");
    }
    text
}

/// Plaintext a TLS session holds, as a socket read would give it: bytes,
/// or `Ok(0)` once the peer has closed (with `close_notify` or, since the
/// peer is gone all the same, by ending the TCP stream without it); `None`
/// when more records are needed first. Server, client and bench read
/// through it.
pub fn plaintext(mut reader: rustls::Reader<'_>, buf: &mut [u8]) -> Option<io::Result<usize>> {
    match reader.read(buf) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Some(Ok(0)),
        result => Some(result),
    }
}

/// The server's TLS setup: its configuration and its certificate's
/// fingerprint (of the first certificate of the chain).
pub struct Identity {
    /// What every TLS session of the server is made from.
    pub config: Arc<ServerConfig>,
    /// [`fingerprint`] of the server's certificate.
    pub fingerprint: String,
}

/// Why the server's TLS setup failed; each names the file at fault.
#[derive(Debug)]
pub enum SetupError {
    /// A file could not be read.
    Read { what: &'static str, path: String, err: io::Error },
    /// A file holds no PEM item of the kind needed, or a broken one.
    Pem { what: &'static str, path: String, err: rustls::pki_types::pem::Error },
    /// The key is not the certificate's.
    Mismatch { cert: String, key: String },
    /// rustls refused the pair for another reason (an unsupported key type).
    Refused { cert: String, key: String, err: rustls::Error },
    /// Making a self-signed certificate failed.
    Generate(rcgen::Error),
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetupError::Read { what, path, err } => write!(f, "cannot read the TLS {what} {path}: {err}"),
            SetupError::Pem { what, path, err: rustls::pki_types::pem::Error::NoItemsFound } => {
                write!(f, "the TLS {what} file {path} holds no PEM {what}")
            }
            SetupError::Pem { what, path, err } => write!(f, "the TLS {what} file {path} is not valid PEM: {err}"),
            SetupError::Mismatch { cert, key } => {
                write!(f, "the TLS key {key} does not belong to the certificate {cert}")
            }
            SetupError::Refused { cert, key, err } => {
                write!(f, "the TLS certificate {cert} and key {key} cannot be used: {err}")
            }
            SetupError::Generate(err) => write!(f, "cannot make a self-signed certificate: {err}"),
        }
    }
}

impl std::error::Error for SetupError {}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, SetupError> {
    std::fs::read(path).map_err(|err| SetupError::Read { what, path: path.display().to_string(), err })
}

/// PEM certificates from `cert` (the server's first, then its chain) and
/// a PEM private key (PKCS#8, PKCS#1 or SEC1) from `key`.
pub fn load(cert: &Path, key: &Path) -> Result<Identity, SetupError> {
    let pem_error = |what, path: &Path| {
        let path = path.display().to_string();
        move |err| SetupError::Pem { what, path, err }
    };
    let certs = CertificateDer::pem_slice_iter(&read("certificate", cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error("certificate", cert))?;
    if certs.is_empty() {
        return Err(pem_error("certificate", cert)(rustls::pki_types::pem::Error::NoItemsFound));
    }
    let private = PrivateKeyDer::from_pem_slice(&read("key", key)?).map_err(pem_error("key", key))?;
    identity(certs, private).map_err(|err| {
        let (cert, key) = (cert.display().to_string(), key.display().to_string());
        match err {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                SetupError::Mismatch { cert, key }
            }
            err => SetupError::Refused { cert, key, err },
        }
    })
}

/// A new self-signed certificate for `localhost` and `127.0.0.1`, for a
/// first run without a CA: clients trust it by its fingerprint.
pub fn self_signed() -> Result<Identity, SetupError> {
    let made = rcgen::generate_simple_self_signed(["localhost".to_owned(), "127.0.0.1".to_owned()])
        .map_err(SetupError::Generate)?;
    let key = PrivatePkcs8KeyDer::from(made.key_pair.serialize_der());
    identity(vec![made.cert.der().clone()], key.into()).map_err(|err| SetupError::Refused {
        cert: "(self-signed)".into(),
        key: "(self-signed)".into(),
        err,
    })
}

fn identity(certs: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<Identity, rustls::Error> {
    let fingerprint = certs.first().map(|cert| fingerprint(cert.as_ref())).unwrap_or_default();
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Identity { config: Arc::new(config), fingerprint })
}

/// A TLS session over a client's socket, as `crate::conn::Conn::Tls` pumps it.
pub struct TlsConn {
    socket: Socket,
    tls: ServerConnection,
    /// Plaintext bytes rustls holds for us.
    plaintext: usize,
    /// The peer closed: `close_notify`, or the end of the TCP stream.
    closed: bool,
}

impl TlsConn {
    /// A server-side session on a freshly accepted socket.
    pub fn new(socket: Socket, config: Arc<ServerConfig>) -> Result<TlsConn, rustls::Error> {
        let tls = ServerConnection::new(config)?;
        Ok(TlsConn { socket, tls, plaintext: 0, closed: false })
    }

    pub(crate) fn socket(&self) -> &Socket {
        &self.socket
    }

    pub(crate) fn socket_mut(&mut self) -> &mut Socket {
        &mut self.socket
    }

    /// Writes pending TLS records while the socket takes them.
    fn flush(&mut self) -> io::Result<()> {
        while self.tls.wants_write() && self.socket.is_writable() {
            match self.tls.write_tls(&mut self.socket) {
                Ok(0) => break,
                Ok(_) => {}
                // The socket noted it is full.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads what the socket holds (one read) and decrypts it; answers the
    /// handshake.
    fn fill(&mut self) -> io::Result<()> {
        match self.tls.read_tls(&mut self.socket) {
            Ok(0) => self.closed = true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        match self.tls.process_new_packets() {
            Ok(state) => {
                self.plaintext = state.plaintext_bytes_to_read();
                self.closed |= state.peer_has_closed();
            }
            Err(err) => {
                let during = if self.tls.is_handshaking() { "handshake" } else { "session" };
                warn!("{}: TLS {during} failed: {err}", self.socket.peer());
                // The alert rustls queued tells the peer why, if it can.
                let _ = self.flush();
                return Err(io::Error::new(io::ErrorKind::InvalidData, err));
            }
        }
        self.flush()
    }

    /// Whether a read returns plaintext or the end without blocking.
    pub fn read_ready(&mut self) -> io::Result<bool> {
        self.flush()?;
        for _ in 0..MAX_FILLS {
            if self.plaintext > 0 || self.closed || !self.socket.is_readable() {
                break;
            }
            self.fill()?;
        }
        Ok(self.plaintext > 0 || self.closed)
    }

    /// Reads plaintext; `Ok(0)` once the peer has closed.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.read_ready()? {
            return Err(not_ready());
        }
        match plaintext(self.tls.reader(), buf) {
            Some(Ok(n)) => {
                self.plaintext = self.plaintext.saturating_sub(n);
                Ok(n)
            }
            Some(Err(e)) => Err(e),
            None => {
                self.plaintext = 0;
                Err(not_ready())
            }
        }
    }

    /// Whether plaintext may be written: the last records are all out.
    pub fn write_ready(&mut self) -> io::Result<bool> {
        self.flush()?;
        Ok(!self.tls.wants_write())
    }

    /// Encrypts `buf` and sends it as far as the socket allows. The room
    /// takes a short write to mean the socket is full (an event will say
    /// when it is not), so this one is short only then: rustls takes at most
    /// its buffer's worth at a time, and the rest goes on as the socket
    /// drains. Before the handshake is over, rustls keeps the plaintext for
    /// then (the greeting is written at once).
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut taken = 0;
        while taken < buf.len() && self.write_ready()? {
            let n = self.tls.writer().write(&buf[taken..])?;
            if n == 0 {
                break;
            }
            taken += n;
        }
        self.flush()?;
        if taken == 0 {
            return Err(not_ready());
        }
        Ok(taken)
    }

    /// Says `close_notify`, as far as the socket takes it.
    pub(crate) fn close_notify(&mut self) {
        self.tls.send_close_notify();
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_fingerprint_reads_as_openssl_prints_it() {
        // SHA-256 of nothing.
        assert_eq!(
            super::fingerprint(b""),
            "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55"
        );
    }
}
