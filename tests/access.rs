//! Who may come in and who may throw out, through `chat-server`: a room
//! password, operators, `/kick`, `/ban` and `/unban`. Peers come from other
//! loopback addresses (127.0.0.2, …) so a ban has an address of its own.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use tests::{seed_client, ChatServer, Raw};

/// A password file made for this test, removed when dropped.
struct SecretFile(PathBuf);

impl SecretFile {
    fn new(name: &str, content: &str) -> SecretFile {
        let path = std::env::temp_dir().join(format!("chat-{}-{name}", std::process::id()));
        std::fs::write(&path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        SecretFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn loopback(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, n)
}

/// A line client from `from` that registers `nick` in an open room.
fn joined(server: &ChatServer, from: u8, nick: &str) -> Raw {
    Raw::connect_from(&server.addr, loopback(from)).register(nick)
}

/// A line client that gave `nick` in a room with a password, and was asked
/// for it.
fn asked_for_password(server: &ChatServer, nick: &str) -> Raw {
    let mut raw = Raw::connect(&server.addr);
    raw.expect("NICK");
    raw.send(format!("{nick}\n").as_bytes());
    raw.expect("*** this room has a password: send it as your next line\n");
    raw
}

#[test]
fn the_room_s_password_is_asked_checked_and_never_shown() {
    let file = SecretFile::new("password", "open sesame\n");
    let server = ChatServer::start(&["--password-file", file.path()]);

    let mut alice = asked_for_password(&server, "alice");
    alice.send(b"open says me\n");
    alice.expect("*** wrong password, 2 tries left\n");
    alice.send(b"open sesame\n");
    alice.expect("alice joined!\nConnected to server!\n");

    let mut mallory = asked_for_password(&server, "mallory");
    mallory.send(b"a\nb\nc\n");
    assert_eq!(
        mallory.rest(),
        "*** wrong password, 2 tries left\n*** wrong password, 1 try left\n*** wrong password, closing\n",
        "three wrong passwords and the server closes"
    );

    // The tutorial's client cannot answer a second prompt: it is told why.
    let neural = seed_client("127.0.0.1", server.port(), "Neural");
    neural.stdout.wait_for("closing");
    alice.send(b"still alone\n");
    alice.expect("alice: still alone\n");
    assert!(
        neural.stdout.text().contains("*** this room has a password, which this client cannot send; closing"),
        "{}",
        neural.stdout.text()
    );
    let log = server.proc.stderr.text();
    assert!(!log.contains("sesame") && !log.contains("open says me"), "a password reached the log:\n{log}");
}

#[test]
fn an_operator_kicks_and_bans_and_the_banned_address_is_refused_until_unbanned() {
    let file = SecretFile::new("op", "root-pw\n");
    let server = ChatServer::start(&["--op-password-file", file.path(), "--burst", "20"]);
    let mut op = joined(&server, 2, "op");
    let mut alice = joined(&server, 3, "alice");
    let mut troll = joined(&server, 4, "troll");
    op.expect("alice joined!\ntroll joined!\n");
    alice.expect("troll joined!\n");

    troll.send(b"/kick op\n");
    troll.expect("*** /kick is for operators\n");
    op.send(b"/op wrong\n");
    op.expect("*** wrong operator password, 2 tries left\n");
    op.send(b"/op root-pw\n/who\n");
    op.expect("*** you are an operator now\n*** 3 in the room: @op alice troll\n");

    op.send(b"/kick alice take a break\n");
    for raw in [&mut op, &mut troll] {
        raw.expect("alice left! (kicked by op: take a break)\n");
    }
    assert_eq!(alice.rest(), "alice left! (kicked by op: take a break)\n", "alice is told why, then closed");

    op.send(b"/ban troll\n");
    op.expect("*** banned 127.0.0.4\ntroll left! (banned by op)\n");
    assert_eq!(troll.rest(), "troll left! (banned by op)\n");
    let mut again = Raw::connect_from(&server.addr, loopback(4));
    assert_eq!(again.rest(), "*** you are banned from this room\n", "refused at accept");
    let log = server.proc.stderr.text();
    assert!(log.contains("wrong /op password from op (127.0.0.2)"), "{log}");

    op.send(b"/unban 127.0.0.4\n");
    op.expect("*** unbanned 127.0.0.4\n");
    joined(&server, 4, "troll");
    op.expect("troll joined!\n");
}

#[test]
fn a_password_file_that_cannot_be_read_is_named_and_the_server_exits_1() {
    let out = std::process::Command::new(tests::bin("host", "chat-server"))
        .args(["--listen", "127.0.0.1:0", "--password-file", "/nonexistent/chat-password"])
        .output()
        .expect("run chat-server");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("chat-server: cannot read the password file /nonexistent/chat-password: "), "{stderr}");
}
