//! TLS for `chat-client`: how the server is trusted, the handshake, and a
//! stream the client's two threads share as they share a `TcpStream`.
//!
//! The server is verified against the system's roots (`--tls`), the CA
//! certificates of a file (`--ca FILE`), or one certificate named by its
//! SHA-256 fingerprint (`--pin`, for `chat-server --tls-self-signed`). The
//! handshake is finished in [`connect`], before anything is shown or sent:
//! a server that fails verification is refused with the reason, and there
//! is never a fallback to plain text.
//!
//! A [`TlsStream`] can be cloned like a `TcpStream` (the network thread
//! reads, the main thread writes): the clones share the rustls session
//! behind a lock held only to move bytes in or out of it, never across a
//! blocking socket call, so a reader waiting for the server does not hold
//! up a writer, nor the other way round.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::tls::{fingerprint, plaintext, provider, VERSIONS};

/// How long the handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the client trusts a TLS server: `chat-client`'s TLS options.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TlsOptions {
    /// Talk TLS to the server (chat-server --tls-listen), verifying its certificate against the
    /// system's trusted roots. Never falls back to plain text.
    #[arg(long)]
    pub tls: bool,

    /// Talk TLS, trusting the CA certificates in FILE (PEM) instead of the system's.
    #[arg(long, value_name = "FILE", conflicts_with = "pin")]
    pub ca: Option<PathBuf>,

    /// Talk TLS, trusting exactly the certificate with this SHA-256 fingerprint (64 hex digits,
    /// colons allowed), as chat-server --tls-self-signed or `openssl x509 -fingerprint -sha256`
    /// print it.
    #[arg(long, value_name = "SHA256", value_parser = Pin::parse)]
    pub pin: Option<Pin>,
}

impl TlsOptions {
    /// Whether the connection is to be TLS.
    pub fn enabled(&self) -> bool {
        self.tls || self.ca.is_some() || self.pin.is_some()
    }
}

/// A certificate's SHA-256 fingerprint, as `--pin` takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin(String);

impl Pin {
    /// Parses 64 hex digits, with or without colons, any case.
    pub fn parse(text: &str) -> Result<Pin, String> {
        let hex: String = text.chars().filter(|&c| c != ':').collect();
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err("a SHA-256 fingerprint is 64 hex digits (colons allowed)".into());
        }
        let bytes: Vec<String> = (0..32).map(|i| hex[2 * i..2 * i + 2].to_ascii_uppercase()).collect();
        Ok(Pin(bytes.join(":")))
    }
}

impl std::fmt::Display for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Trusts one certificate, by its fingerprint; still checks that the server
/// holds its key (the handshake's signature).
#[derive(Debug)]
struct PinVerifier {
    pin: Pin,
    provider: Arc<CryptoProvider>,
}

/// Why a pinned certificate was refused.
#[derive(Debug)]
struct PinMismatch {
    got: String,
}

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the server's certificate has the SHA-256 fingerprint {}, not the pinned one", self.got)
    }
}

impl std::error::Error for PinMismatch {}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = fingerprint(end_entity.as_ref());
        if got == self.pin.0 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(CertificateError::Other(rustls::OtherError(Arc::new(PinMismatch { got }))).into())
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The roots to verify the server against: `ca`'s certificates, or the system's.
fn roots(ca: Option<&Path>) -> io::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let certs = match ca {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot read the CA file {}: {e}", path.display())))?;
            CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| io::Error::other(format!("the CA file {} is not valid PEM: {e}", path.display())))?
        }
        None => rustls_native_certs::load_native_certs().certs,
    };
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(io::Error::other(match ca {
            Some(path) => format!("the CA file {} holds no usable certificate", path.display()),
            None => "the system has no trusted root certificates (give the server's CA with --ca FILE)".into(),
        }));
    }
    Ok(roots)
}

/// The client's TLS configuration for `options` (its errors name the file
/// at fault).
pub fn config(options: &TlsOptions) -> io::Result<ClientConfig> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(VERSIONS)
        .map_err(io::Error::other)?;
    let config = match &options.pin {
        Some(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinVerifier { pin: pin.clone(), provider }))
            .with_no_client_auth(),
        None => builder.with_root_certificates(roots(options.ca.as_deref())?).with_no_client_auth(),
    };
    Ok(config)
}

/// `host` of `HOST:PORT` (brackets of an IPv6 address removed), as the name
/// the certificate must hold.
pub fn server_name(addr: &str) -> io::Result<ServerName<'static>> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _port)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{host:?} is not a valid server name for TLS"))
    })
}

/// A handshake failure as a sentence, with what to do about the common ones.
fn explain(err: &rustls::Error, options: &TlsOptions) -> String {
    let hint = match err {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => match &options.ca {
            Some(ca) => format!(" (its certificate is not signed by a CA in {})", ca.display()),
            None => " (its certificate is not signed by a CA the system trusts: try --ca FILE or --pin)".into(),
        },
        rustls::Error::InvalidCertificate(CertificateError::NotValidForName) => {
            " (its certificate is for another name)".into()
        }
        _ => String::new(),
    };
    let why = match err {
        // Ours (a pin that does not match): its own words, not its Debug.
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => other.0.to_string(),
        err => err.to_string(),
    };
    format!("the TLS handshake failed: the server was not verified: {why}{hint}")
}

/// Wraps a connected socket: as it is without TLS options, else through a
/// TLS session whose handshake is done here. `addr` is `HOST:PORT` as the
/// user gave it; `HOST` is the name the server's certificate must hold.
pub fn connect(stream: TcpStream, addr: &str, options: &TlsOptions) -> io::Result<Stream> {
    if !options.enabled() {
        return Ok(Stream::Plain(stream));
    }
    let mut tls = ClientConnection::new(Arc::new(config(options)?), server_name(addr)?).map_err(io::Error::other)?;
    let mut socket = &stream;
    // The caller's timeouts, if it set any, are back after the handshake.
    let timeouts = (stream.read_timeout()?, stream.write_timeout()?);
    stream.set_read_timeout(Some(timeouts.0.unwrap_or(HANDSHAKE_TIMEOUT).min(HANDSHAKE_TIMEOUT)))?;
    stream.set_write_timeout(Some(timeouts.1.unwrap_or(HANDSHAKE_TIMEOUT).min(HANDSHAKE_TIMEOUT)))?;
    while tls.is_handshaking() {
        if let Err(e) = tls.complete_io(&mut socket) {
            let inner = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
            return Err(match inner {
                Some(
                    err @ (rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::UnsupportedNameType),
                ) => io::Error::new(io::ErrorKind::InvalidData, explain(err, options)),
                // What a plain chat server's `NICK` looks like to TLS.
                Some(err @ rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)) => {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the TLS handshake failed: {err} (the server does not speak TLS on this port)"),
                    )
                }
                Some(err) => io::Error::new(io::ErrorKind::InvalidData, format!("the TLS handshake failed: {err}")),
                None if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    io::Error::new(io::ErrorKind::TimedOut, "the TLS handshake timed out")
                }
                None => io::Error::new(e.kind(), format!("the TLS handshake failed: {e}")),
            });
        }
    }
    stream.set_read_timeout(timeouts.0)?;
    stream.set_write_timeout(timeouts.1)?;
    Ok(Stream::Tls(TlsStream {
        tcp: stream,
        shared: Arc::new(Shared { session: Mutex::new(Session { tls, unread: Vec::new() }), writing: Mutex::new(()) }),
    }))
}

/// A connection to the server, plain or TLS; `Read` and `Write` as a
/// `TcpStream`'s, cloned and shut down as one.
#[derive(Debug)]
pub enum Stream {
    /// Plain text.
    Plain(TcpStream),
    /// TLS, its handshake done.
    Tls(TlsStream),
}

impl Stream {
    /// Another handle on the same connection (for another thread).
    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Plain(tcp) => Stream::Plain(tcp.try_clone()?),
            Stream::Tls(tls) => Stream::Tls(TlsStream { tcp: tls.tcp.try_clone()?, shared: tls.shared.clone() }),
        })
    }

    /// The socket underneath, for socket options.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => &tls.tcp,
        }
    }

    /// Shuts down the socket; a TLS stream says `close_notify` before it
    /// stops writing.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        if let (Stream::Tls(tls), Shutdown::Write | Shutdown::Both) = (self, how) {
            let _writing = tls.shared.writing();
            tls.shared.session().tls.send_close_notify();
            tls.flush_records()?;
        }
        self.tcp().shutdown(how)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The session the clones of a [`TlsStream`] share.
#[derive(Debug)]
struct Shared {
    session: Mutex<Session>,
    /// Held while records go out, so they reach the socket in order.
    writing: Mutex<()>,
}

/// rustls's session, and records read from the socket it has not taken yet.
#[derive(Debug)]
struct Session {
    tls: ClientConnection,
    unread: Vec<u8>,
}

impl Session {
    /// Hands rustls the records read so far, until plaintext comes of them.
    fn feed(&mut self) -> io::Result<()> {
        while !self.unread.is_empty() {
            let mut rest = &self.unread[..];
            let taken = self.tls.read_tls(&mut rest)?;
            if taken == 0 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "the server's TLS records are not taken"));
            }
            self.unread.drain(..taken);
            let state = self.tls.process_new_packets().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if state.plaintext_bytes_to_read() > 0 {
                break;
            }
        }
        Ok(())
    }
}

impl Shared {
    fn session(&self) -> MutexGuard<'_, Session> {
        // A thread that panicked holding the lock left the session whole.
        self.session.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn writing(&self) -> MutexGuard<'_, ()> {
        self.writing.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A TLS session over a blocking socket, shared by its clones.
#[derive(Debug)]
pub struct TlsStream {
    tcp: TcpStream,
    shared: Arc<Shared>,
}

impl TlsStream {
    /// Sends the records the session has made; the caller holds `writing`.
    fn flush_records(&self) -> io::Result<()> {
        let mut records = Vec::new();
        {
            let mut session = self.shared.session();
            while session.tls.wants_write() {
                session.tls.write_tls(&mut records)?;
            }
        }
        (&self.tcp).write_all(&records)
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut records = [0; 16 * 1024];
        loop {
            {
                let mut session = self.shared.session();
                loop {
                    if let Some(read) = plaintext(session.tls.reader(), buf) {
                        return read;
                    }
                    if session.unread.is_empty() {
                        break;
                    }
                    session.feed()?;
                }
            }
            // Wait for records without the lock.
            let n = (&self.tcp).read(&mut records)?;
            let mut session = self.shared.session();
            if n == 0 {
                // An empty read tells rustls the stream ended.
                session.tls.read_tls(&mut &[][..])?;
                session.tls.process_new_packets().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            } else {
                session.unread.extend_from_slice(&records[..n]);
            }
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _writing = self.shared.writing();
        let n = self.shared.session().tls.writer().write(buf)?;
        self.flush_records()?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_is_64_hex_digits_with_or_without_colons() {
        let upper = "5F:13:1D:17:CA:B9:C9:21:FB:34:D0:55:7E:C7:63:DB:D8:35:4E:83:29:24:54:B6:67:D6:50:5D:B4:BE:D7:1A";
        let bare = upper.replace(':', "").to_lowercase();
        assert_eq!(Pin::parse(&bare).map(|pin| pin.to_string()), Ok(upper.to_string()));
        assert_eq!(Pin::parse(upper).map(|pin| pin.to_string()), Ok(upper.to_string()));
        for bad in [&bare[1..], &format!("{bare}0"), &bare.replace('f', "g"), ""] {
            assert!(Pin::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_server_name_is_the_host_of_the_address() {
        assert_eq!(server_name("127.0.0.1:55443").ok(), ServerName::try_from("127.0.0.1").ok());
        assert_eq!(server_name("[::1]:55443").ok(), ServerName::try_from("::1").ok());
        assert_eq!(server_name("chat.example.org:55443").ok(), ServerName::try_from("chat.example.org").ok());
        assert!(server_name("bad name:1").is_err());
    }
}
