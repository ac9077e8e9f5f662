//! TCP keepalive: `chat-server` notices a client that vanished without a
//! word, and `chat-client` a server that did, within about a minute (here,
//! with `--keepalive 1`, within seconds).
//!
//! Each test makes two network namespaces joined by a veth pair, runs the
//! server in one and the client in the other, then takes the client's end of
//! the link down: from then on every packet between them is lost, and no
//! FIN or reset can tell either side. Dropping the namespaces kills what
//! runs in them, by PID, and deletes them. Needs root: the tests are
//! `#[ignore]`d, `--include-ignored` runs them (tests/run.sh does), and they
//! fail where namespaces cannot be made.

use std::thread;
use std::time::{Duration, Instant};

use tests::netns::{Netns, LINE_CLIENT};
use tests::{bin, Proc};

/// The server's side of the link, and the client's.
const SERVER_IP: &str = "192.168.71.1";
const CLIENT_IP: &str = "192.168.71.2";
const PORT: &str = "55555";

/// Two namespaces, a veth pair between them: `server` and `client`.
struct Link {
    server: Netns,
    client: Netns,
}

impl Link {
    /// The link for `test`; fails the test, saying why, where namespaces
    /// cannot be made.
    fn for_test(test: &str) -> Link {
        let server = Netns::for_test(test);
        let client = Netns::for_test(test);
        let link = Link { server, client };
        let steps: [(&Netns, &[&str]); 5] = [
            (
                &link.server,
                &["link", "add", "veth-s", "type", "veth", "peer", "name", "veth-c", "netns", link.client.name()],
            ),
            (&link.server, &["addr", "add", &format!("{SERVER_IP}/24"), "dev", "veth-s"]),
            (&link.server, &["link", "set", "veth-s", "up"]),
            (&link.client, &["addr", "add", &format!("{CLIENT_IP}/24"), "dev", "veth-c"]),
            (&link.client, &["link", "set", "veth-c", "up"]),
        ];
        for (ns, args) in steps {
            ip(ns, args);
        }
        link
    }

    /// Loses every packet from now on: the client's end of the link goes down.
    fn cut(&self) {
        ip(&self.client, &["link", "set", "veth-c", "down"]);
    }
}

/// Runs `ip ARGS` in `ns`; the test fails if it fails.
fn ip(ns: &Netns, args: &[&str]) {
    let out = ns.command("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {args:?} in {}: {}", ns.name(), String::from_utf8_lossy(&out.stderr));
}

/// `chat-server` in the server's namespace, probing after `keepalive` seconds.
fn server(link: &Link, keepalive: &str) -> Proc {
    let listen = format!("{SERVER_IP}:{PORT}");
    let mut command = link.server.command(bin("host", "chat-server"));
    command.args(["--listen", &listen, "--keepalive", keepalive]);
    let server = Proc::spawn(&mut command);
    server.stdout.wait_for(&format!("listening on {listen}\n"));
    server
}

#[test]
#[ignore = "needs root and network namespaces"]
fn chat_server_notices_a_client_that_vanished() {
    let link = Link::for_test("chat_server_notices_a_client_that_vanished");
    let server = server(&link, "1");
    let mut client = Proc::spawn(link.client.command("python3").args(["-c", LINE_CLIENT, SERVER_IP, PORT]));
    client.stdout.wait_for("NICK");
    client.type_in("alice\n");
    client.stdout.wait_for("Connected to server!\n");
    // Idle for longer than the probes take to give up: the client answers
    // them, so it stays.
    thread::sleep(Duration::from_secs(7));
    assert!(!server.stderr.text().contains("disconnected"), "{}", server.stderr.text());
    client.type_in("still here\n");
    client.stdout.wait_for("alice: still here\n");

    link.cut();
    let cut = Instant::now();
    let log = server.stderr.wait_for(" disconnected: ");
    let gone = log.lines().find(|l| l.contains(" disconnected: ")).unwrap_or_default().to_owned();
    assert!(gone.contains(&format!("{CLIENT_IP}:")), "the server names the vanished client: {log}");
    server.stderr.wait_for("alice left");
    eprintln!("the server gave the client up {:?} after the link went down: {gone}", cut.elapsed());
}

#[test]
#[ignore = "needs root and network namespaces"]
fn chat_client_notices_a_server_that_vanished() {
    let link = Link::for_test("chat_client_notices_a_server_that_vanished");
    // The server would wait far longer than this test.
    let _server = server(&link, "3600");
    let addr = format!("{SERVER_IP}:{PORT}");
    let mut client = Proc::spawn(link.client.command(bin("host", "chat-client")).args([
        addr.as_str(),
        "--nick",
        "alice",
        "--keepalive",
        "1",
    ]));
    client.stdout.wait_for("Connected to server!\n");
    thread::sleep(Duration::from_secs(7));
    assert!(client.child.try_wait().expect("try_wait").is_none(), "idle is not gone: {}", client.stderr.text());

    link.cut();
    let cut = Instant::now();
    // `wait` fails the test after `tests::WAIT` (the bound): the probes give up
    // after 5 s.
    let status = client.wait();
    assert_eq!(status.code(), Some(1));
    assert_eq!(client.stderr.text(), format!("chat-client: connection to {addr} lost: connection timed out\n"));
    eprintln!("chat-client gave the server up {:?} after the link went down", cut.elapsed());
}
