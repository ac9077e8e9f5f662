//! `chat-server`'s TLS listener: TLS clients (`chat-client --tls`, `openssl
//! s_client`) and plain ones in one room, refused certificates, clients on
//! the wrong port, a stalled handshake, and bad certificate files. The slow
//! TLS reader and the other hostile peers are `tests/adversarial.rs`'s
//! `tls::` cases. Certificates are made here, at test time, with rcgen.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;

use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair};
use tests::{bin, ChatServer, Proc, Raw, Transcript, WAIT};

/// A CA, a server certificate it signed for localhost and 127.0.0.1, and
/// another CA, as PEM files in a directory of their own (removed on drop).
struct Pki {
    dir: PathBuf,
    /// The SHA-256 fingerprint of the other CA's certificate.
    other_fingerprint: String,
}

fn make_ca(name: &str) -> (Certificate, KeyPair) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("CA certificate");
    (cert, key)
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("chat-tls-test-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for the certificates");
        let (ca, ca_key) = make_ca("chat test CA");
        let params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).expect("server parameters");
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &ca, &ca_key).expect("server certificate");
        let (other, _) = make_ca("some other CA");
        let other_key = KeyPair::generate().expect("another key");
        for (name, pem) in [
            ("ca.pem", ca.pem()),
            ("cert.pem", cert.pem()),
            ("key.pem", key.serialize_pem()),
            ("other-ca.pem", other.pem()),
            ("other-key.pem", other_key.serialize_pem()),
        ] {
            std::fs::write(dir.join(name), pem).expect("write a PEM file");
        }
        Pki { dir, other_fingerprint: host::tls::fingerprint(other.der()) }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// A server with this CA's certificate on its TLS listener.
    fn server(&self, args: &[&str]) -> ChatServer {
        let (cert, key) = (self.path("cert.pem"), self.path("key.pem"));
        ChatServer::start_tls(&[&["--tls-cert", cert.as_str(), "--tls-key", key.as_str()], args].concat())
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A registered line client on `raw`.
fn join(mut raw: Raw, nick: &str) -> Raw {
    raw.expect("NICK");
    raw.send(format!("{nick}\n").as_bytes());
    raw.expect(&format!("{nick} joined!\nConnected to server!\n"));
    raw
}

/// `chat-client ARGS` with piped standard input.
fn chat_client(args: &[&str]) -> Proc {
    Proc::spawn(Command::new(bin("host", "chat-client")).args(args))
}

/// `openssl s_client` as a line client, verifying the server against `ca`.
fn s_client(addr: &str, ca: &str) -> Proc {
    Proc::spawn(Command::new("openssl").args([
        "s_client",
        "-quiet",
        "-verify_return_error",
        "-CAfile",
        ca,
        "-verify_ip",
        "127.0.0.1",
        "-connect",
        addr,
    ]))
}

#[test]
fn chat_client_and_openssl_over_tls_chat_with_a_plain_client_in_one_room() {
    let pki = Pki::new("room");
    let server = pki.server(&[]);
    let tls_addr = server.tls_addr().to_string();
    let mut carol = join(Raw::connect(&server.addr), "carol");

    let mut alice = chat_client(&[&tls_addr, "--ca", &pki.path("ca.pem")]);
    let mut alice_sees = Transcript::new("alice (chat-client --tls --ca)", &alice.stdout);
    alice.type_in("alice\n");
    alice_sees.see("alice joined!\nConnected to server!\n");
    carol.expect("alice joined!\n");

    let mut bob = s_client(&tls_addr, &pki.path("ca.pem"));
    let mut bob_sees = Transcript::new("bob (openssl s_client)", &bob.stdout);
    bob.type_in("bob\n");
    bob_sees.see("NICKbob joined!\nConnected to server!\n");
    alice_sees.see("bob joined!\n");
    carol.expect("bob joined!\n");

    carol.send(b"hi from a plain socket\n");
    carol.expect("carol: hi from a plain socket\n");
    alice_sees.see("carol: hi from a plain socket\n");
    bob_sees.see("carol: hi from a plain socket\n");

    alice.type_in("hi from chat-client\n");
    alice_sees.see("alice: hi from chat-client\n");
    bob_sees.see("alice: hi from chat-client\n");
    carol.expect("alice: hi from chat-client\n");

    bob.type_in("hi from openssl \u{e9}\n");
    bob_sees.see("bob: hi from openssl \u{e9}\n");
    alice_sees.see("bob: hi from openssl \u{e9}\n");
    carol.expect("bob: hi from openssl \u{e9}\n");

    bob.type_in("/quit bye\n");
    bob_sees.see("bob left! (bye)\n");
    bob.wait();
    bob_sees.done();
    alice_sees.see("bob left! (bye)\n");
    carol.expect("bob left! (bye)\n");

    alice.close_stdin();
    alice_sees.see("alice left!\n");
    assert!(alice.wait().success(), "chat-client: {}", alice.stderr.text());
    alice_sees.done();
    carol.expect("alice left!\n");
}

#[test]
fn a_wrong_ca_or_a_wrong_pin_is_refused_with_the_reason() {
    let pki = Pki::new("refused");
    let server = pki.server(&[]);
    let addr = server.tls_addr().to_string();
    let other_ca = pki.path("other-ca.pem");

    let mut wrong_ca = chat_client(&[&addr, "--ca", &other_ca, "--nick", "eve"]);
    assert_eq!(wrong_ca.wait().code(), Some(1));
    assert_eq!(
        wrong_ca.stderr.text(),
        format!(
            "chat-client: cannot connect to {addr}: the TLS handshake failed: the server was not verified: \
             invalid peer certificate: UnknownIssuer (its certificate is not signed by a CA in {other_ca})\n"
        )
    );
    assert_eq!(wrong_ca.stdout.text(), "");
    server.proc.stderr.wait_for("TLS handshake failed: received fatal alert: UnknownCA");

    // The fingerprint of another certificate.
    let mut wrong_pin = chat_client(&[&addr, "--pin", &pki.other_fingerprint, "--nick", "eve"]);
    assert_eq!(wrong_pin.wait().code(), Some(1));
    assert_eq!(
        wrong_pin.stderr.text(),
        format!(
            "chat-client: cannot connect to {addr}: the TLS handshake failed: the server was not verified: \
             the server's certificate has the SHA-256 fingerprint {}, not the pinned one\n",
            server.fingerprint()
        )
    );

    // The system's roots do not know this CA either (or the system has none).
    let mut system = chat_client(&[&addr, "--tls", "--nick", "eve"]);
    assert_eq!(system.wait().code(), Some(1));
    let said = system.stderr.text();
    assert!(
        said == format!(
            "chat-client: cannot connect to {addr}: the TLS handshake failed: the server was not verified: \
             invalid peer certificate: UnknownIssuer (its certificate is not signed by a CA the system trusts: \
             try --ca FILE or --pin)\n"
        ) || said
            == format!(
                "chat-client: cannot connect to {addr}: the system has no trusted root certificates \
                 (give the server's CA with --ca FILE)\n"
            ),
        "{said}"
    );

    // The right pin is let in.
    let mut pinned = chat_client(&[&addr, "--pin", &server.fingerprint().to_lowercase().replace(':', "")]);
    pinned.type_in("mallory\n");
    Transcript::new("pinned", &pinned.stdout).see("mallory joined!\nConnected to server!\n");
}

/// The alert record rustls sends for bytes that are not TLS: fatal (2),
/// decode_error (50), in the clear.
const DECODE_ERROR: &[u8] = &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32];

/// A warning (1) close_notify (0), in the clear: a session closed before its
/// handshake.
const CLOSE_NOTIFY: &[u8] = &[0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 0x00];

#[test]
fn wrong_protocol_on_either_port_fails_cleanly_and_the_room_goes_on() {
    let server = ChatServer::start_tls(&["--tls-self-signed"]);
    let mut alice = join(Raw::connect(&server.addr), "alice");
    let mut bob = join(Raw::connect_tls(server.tls_addr(), server.fingerprint()), "bob");
    alice.expect("bob joined!\n");

    // Plain text on the TLS port: a TLS alert, then the end.
    let mut plain = TcpStream::connect(server.tls_addr()).expect("connect");
    plain.set_read_timeout(Some(WAIT)).expect("timeout");
    plain.write_all(b"mallory\nhello\n").expect("send");
    let mut got = Vec::new();
    plain.read_to_end(&mut got).expect("the server closes the connection");
    assert_eq!(got, DECODE_ERROR, "one TLS alert, then the end");
    server.proc.stderr.wait_for("TLS handshake failed: received corrupt message of type InvalidContentType");

    // TLS on the plain port: openssl gives up on `NICK`, which is no TLS record.
    let mut openssl = Proc::spawn(Command::new("openssl").args(["s_client", "-connect", &server.addr]));
    openssl.close_stdin();
    let status = openssl.wait();
    assert!(!status.success(), "openssl s_client succeeded on the plain port");
    assert!(openssl.stderr.text().contains("wrong version number"), "{}", openssl.stderr.text());
    // chat-client refuses, and does not fall back to plain text.
    let mut client = chat_client(&[&server.addr, "--pin", server.fingerprint(), "--nick", "eve"]);
    assert_eq!(client.wait().code(), Some(1));
    assert_eq!(
        client.stderr.text(),
        format!(
            "chat-client: cannot connect to {}: the TLS handshake failed: received corrupt message of type \
             InvalidContentType (the server does not speak TLS on this port)\n",
            server.addr
        )
    );
    // All three connections are over.
    server.proc.stderr.wait_for_n(" disconnected: ", 3);

    // The room saw none of them: the ClientHello was told this port is
    // plain text, and never joined.
    alice.send(b"still here\n");
    alice.expect("alice: still here\n");
    bob.expect("alice: still here\n");
    bob.send(b"and me\n");
    bob.expect("bob: and me\n");
    alice.expect("bob: and me\n");
}

#[test]
fn a_stalled_handshake_holds_a_slot_until_the_registration_timeout() {
    let server = ChatServer::start_tls(&["--tls-self-signed", "--registration-timeout", "1", "--capacity", "1"]);
    // Connects and sends nothing.
    let mut staller = TcpStream::connect(server.tls_addr()).expect("connect");
    staller.set_read_timeout(Some(WAIT)).expect("timeout");
    server.proc.stderr.wait_for("(TLS)");
    // It has the room's only slot.
    let mut late = Raw::connect(&server.addr);
    assert_eq!(late.rest(), "*** the room is full, try again later\n");
    // The server closes it at the registration timeout, saying close_notify
    // in the clear (no keys were agreed); the room's notice stays unsent.
    let mut got = Vec::new();
    staller.read_to_end(&mut got).expect("the server closes the connection");
    assert_eq!(got, CLOSE_NOTIFY);
    server.proc.stderr.wait_for(" disconnected: no nickname");
    // The slot is free again.
    let mut alice = join(Raw::connect(&server.addr), "alice");
    alice.send(b"in\n");
    alice.expect("alice: in\n");
}

#[test]
fn bad_certificate_files_are_named_and_the_server_exits_1() {
    let pki = Pki::new("files");
    let (cert, key, other_key) = (pki.path("cert.pem"), pki.path("key.pem"), pki.path("other-key.pem"));
    let missing = pki.path("missing.pem");
    let cases = [
        (
            [&missing, &key],
            format!("chat-server: cannot read the TLS certificate {missing}: No such file or directory (os error 2)\n"),
        ),
        (
            [&cert, &missing],
            format!("chat-server: cannot read the TLS key {missing}: No such file or directory (os error 2)\n"),
        ),
        ([&key, &key], format!("chat-server: the TLS certificate file {key} holds no PEM certificate\n")),
        ([&cert, &cert], format!("chat-server: the TLS key file {cert} holds no PEM key\n")),
        (
            [&cert, &other_key],
            format!("chat-server: the TLS key {other_key} does not belong to the certificate {cert}\n"),
        ),
    ];
    for ([cert, key], expected) in cases {
        let mut server = Proc::spawn(Command::new(bin("host", "chat-server")).args([
            "--listen",
            "127.0.0.1:0",
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ]));
        assert_eq!(server.wait().code(), Some(1), "{cert} {key}");
        assert_eq!(server.stderr.text(), expected);
        assert_eq!(server.stdout.text(), "", "nothing listens");
    }
}

#[test]
fn the_web_listener_serves_the_page_and_its_websocket_over_tls() {
    let server = ChatServer::start(&["--web", "127.0.0.1:0", "--web-tls", "--tls-self-signed"]);
    let web = tests::web_addr(&server.proc);
    let https = || Proc::spawn(Command::new("openssl").args(["s_client", "-quiet", "-connect", &web]));

    let mut page = https();
    page.type_in("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let head = page.stdout.wait_for("\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.contains("Content-Encoding: gzip\r\n"), "{head}");

    let mut socket = https();
    socket.type_in(&format!(
        "GET /ws HTTP/1.1\r\nHost: {web}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: https://{web}\r\n\r\n"
    ));
    // The 101, then the server's first text frame: `NICK`.
    let got = socket.stdout.wait_for("NICK");
    assert!(
        got.starts_with(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        ),
        "{got:?}"
    );

    // Plain HTTP on the HTTPS port is a TLS alert, nothing else.
    let mut plain = TcpStream::connect(&web).expect("connect");
    plain.set_read_timeout(Some(WAIT)).expect("timeout");
    plain.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
    let mut reply = Vec::new();
    plain.read_to_end(&mut reply).expect("the server closes the connection");
    assert_eq!(reply, DECODE_ERROR, "one TLS alert, then the end");
}
