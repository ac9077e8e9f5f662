//! Network namespaces with a TAP device, for the end-to-end tests of
//! `tap-server` (smoltcp over TAP).
//!
//! Every test makes its own namespace, puts a TAP device in it with the
//! host side's address ([`HOST_ADDRESS`]), and runs the server and the
//! clients inside it (`ip netns exec`), so no frame leaves the namespace and
//! nothing is created in the machine's own. Dropping the [`Netns`] kills
//! every process still in the namespace, by PID, and deletes it (with its
//! device), also when the test fails.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::{root, Proc, Transcript};

/// The TAP device's name inside each namespace.
pub const TAP: &str = "tap0";
/// The server's address: smoltcp's end of the TAP link.
pub const SERVER_IP: &str = "192.168.69.1";
/// The server's address with its prefix, as `tap-server --address` takes it.
pub const SERVER_ADDRESS: &str = "192.168.69.1/24";
/// The kernel's end of the TAP link, where the clients connect from.
pub const HOST_ADDRESS: &str = "192.168.69.100/24";
/// The chat port the servers in the namespaces listen on.
pub const PORT: &str = "55555";
/// Their web port: the chat page, and its WebSocket into the room.
pub const WEB_PORT: &str = "80";

/// Why namespaces with TAP devices cannot be made here, if they cannot:
/// they need root, `ip` (iproute2), `/dev/net/tun` and python3 (the
/// clients).
pub fn unavailable() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if uid.as_deref() != Some("0") {
        return Some(format!(
            "not root (uid {}): network namespaces and TAP devices need root",
            uid.unwrap_or_default()
        ));
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("no `ip` command (apt-get install iproute2)".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun: this kernel or container has no TUN/TAP".into());
    }
    if Command::new("python3").arg("--version").output().is_err() {
        return Some("no python3 (the clients are Python)".into());
    }
    None
}

/// The reason these tests are `#[ignore]`d: `cargo test` alone does not run
/// them, `cargo test -- --include-ignored` (tests/run.sh) does, and there
/// they fail when the machine lacks what they need.
pub const NEEDS_ROOT: &str = "needs root and /dev/net/tun";

/// A network namespace of this test's, with [`TAP`] in it at
/// [`HOST_ADDRESS`], and `lo` up. Deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// A namespace for `test`; fails the test, saying why, where
    /// namespaces with a TAP device cannot be made.
    pub fn for_test(test: &str) -> Netns {
        if let Some(why) = unavailable() {
            panic!("{test}: cannot run ({NEEDS_ROOT}): {why}");
        }
        Netns::new().unwrap_or_else(|why| panic!("{test}: no network namespace with a TAP device: {why}"))
    }

    /// Makes a namespace and its TAP device, or says why it cannot.
    pub fn new() -> Result<Netns, String> {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("chat-tap-{}-{}", std::process::id(), COUNT.fetch_add(1, Ordering::Relaxed));
        run(Command::new("ip").args(["netns", "add", &name]))?;
        // From here on, dropping `netns` removes whatever was made.
        let netns = Netns { name };
        netns.ip(&["link", "set", "lo", "up"])?;
        netns.ip(&["tuntap", "add", "name", TAP, "mode", "tap"])?;
        netns.ip(&["addr", "add", HOST_ADDRESS, "dev", TAP])?;
        netns.ip(&["link", "set", TAP, "up"])?;
        Ok(netns)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside the namespace. `ip netns exec`
    /// execs it, so the spawned child's PID is the program's own.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Runs `ip ARGS` inside the namespace.
    fn ip(&self, args: &[&str]) -> Result<(), String> {
        run(self.command("ip").args(args))
    }

    /// The PIDs of the processes in the namespace.
    fn pids(&self) -> Vec<String> {
        Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().map(String::from).collect())
            .unwrap_or_default()
    }

    /// What `ip` and `ss` say about the namespace, for a failure message.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        for args in [&["addr"][..], &["neigh"][..]] {
            if let Ok(o) = self.command("ip").args(args).output() {
                let _ = write!(text, "ip {}:\n{}", args.join(" "), String::from_utf8_lossy(&o.stdout));
            }
        }
        if let Ok(o) = self.command("ss").arg("-tan").output() {
            let _ = write!(text, "ss -tan:\n{}", String::from_utf8_lossy(&o.stdout));
        }
        text
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill by PID whatever still runs in the namespace (the server, the
        // clients, anything they started), and wait until it is gone: a
        // namespace outlives its name while a process is in it.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids = self.pids();
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            let _ = Command::new("kill").arg("-KILL").args(&pids).output();
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.command("ip").args(["link", "del", TAP]).output();
        if let Err(e) = run(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!("cannot delete network namespace {}: {e}", self.name);
        }
    }
}

/// Runs a command to completion; its stderr is the error.
fn run(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{command:?}: {}: {}", output.status, String::from_utf8_lossy(&output.stderr).trim()))
    }
}

/// A line client, as `nc` would be: stdin lines go to the server as they
/// come, whatever the server sends goes to stdout as it comes. It exits 0
/// when the server closes the connection; stdin's end half-closes it.
pub const LINE_CLIENT: &str = r#"
import os, socket, sys, threading
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.settimeout(None)
def receive():
    while True:
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if not data:
            os._exit(0)
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
threading.Thread(target=receive, daemon=True).start()
while True:
    line = sys.stdin.buffer.readline()
    if not line:
        break
    s.sendall(line)
s.shutdown(socket.SHUT_WR)
threading.Event().wait()
"#;

/// A browser, as far as the server can tell: fetches `GET /` from the web
/// port argv[2] and prints what it needs to be checked, the status line, a
/// few headers, whether `Content-Length` is the body's, and whether the
/// body gunzips to argv[3] (the page's source).
pub const PAGE_CLIENT: &str = r#"
import gzip, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port), timeout=10)
s.sendall(b"GET / HTTP/1.1\r\nHost: %s:%d\r\nAccept-Encoding: gzip\r\n\r\n" % (host.encode(), port))
data = b""
while True:
    got = s.recv(65536)
    if not got:
        break
    data += got
head, _, body = data.partition(b"\r\n\r\n")
lines = head.decode().split("\r\n")
print(lines[0])
headers = dict(line.split(": ", 1) for line in lines[1:])
for name in ("Content-Type", "Content-Encoding", "Connection"):
    print("%s: %s" % (name, headers.get(name)))
print("length %s" % ("right" if headers.get("Content-Length") == str(len(body)) else "wrong: %r" % headers))
print("body %s" % ("is the page" if gzip.decompress(body) == open(sys.argv[3], "rb").read() else "is not the page"))
"#;

/// What [`PAGE_CLIENT`] prints for the page.
pub const PAGE_FETCHED: &str = "HTTP/1.1 200 OK\nContent-Type: text/html; charset=utf-8\nContent-Encoding: gzip\n\
                                Connection: close\nlength right\nbody is the page\n";

/// A browser's WebSocket, as the page opens it: the upgrade to argv[1]'s
/// web port argv[2] (its `Sec-WebSocket-Accept` checked), then each stdin
/// line goes out as one masked text frame, and each text frame received is
/// printed as a line; a close frame prints `[close CODE]` and is answered.
/// Stdin's end sends a close (1000). It exits 0 when the server closes the
/// connection.
pub const WEB_CLIENT: &str = r#"
import base64, hashlib, os, socket, sys, threading
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port), timeout=10)
key = base64.b64encode(os.urandom(16))
s.sendall(b"GET /ws HTTP/1.1\r\nHost: %s:%d\r\nOrigin: http://%s:%d\r\nUpgrade: websocket\r\n"
          b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
          % (host.encode(), port, host.encode(), port, key))
buf = b""
while b"\r\n\r\n" not in buf:
    got = s.recv(4096)
    if not got:
        sys.exit("closed during the upgrade: %r" % buf)
    buf += got
head, buf = buf.split(b"\r\n\r\n", 1)
accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
if not head.startswith(b"HTTP/1.1 101 ") or b"\r\nSec-WebSocket-Accept: " + accept not in head:
    sys.exit("upgrade refused: %r" % head)
s.settimeout(None)
lock = threading.Lock()
def send(opcode, payload):
    mask, n = os.urandom(4), len(payload)
    length = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
    with lock:
        try:
            s.sendall(bytes([0x80 | opcode]) + length + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        except OSError:
            pass
def frame():
    global buf
    if len(buf) < 2:
        return None
    n, at = buf[1] & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, at = int.from_bytes(buf[2:4], "big"), 4
    if len(buf) < at + n:
        return None
    opcode, payload, buf = buf[0] & 0x0F, buf[at:at + n], buf[at + n:]
    return opcode, payload
def receive():
    global buf
    while True:
        while True:
            got = frame()
            if got is None:
                break
            opcode, payload = got
            if opcode == 1:
                sys.stdout.buffer.write(payload + b"\n")
            elif opcode == 8:
                sys.stdout.buffer.write(b"[close %d]\n" % int.from_bytes(payload[:2], "big"))
                send(8, payload[:2])
            elif opcode == 9:
                send(10, payload)
            sys.stdout.buffer.flush()
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if not data:
            os._exit(0)
        buf += data
threading.Thread(target=receive, daemon=True).start()
while True:
    line = sys.stdin.buffer.readline()
    if not line:
        break
    send(1, line.rstrip(b"\n"))
send(8, (1000).to_bytes(2, "big"))
threading.Event().wait()
"#;

/// Clients run inside a namespace, talking to the server at
/// [`SERVER_IP`]:[`PORT`] in it: `tap-server`, or the firmware in QEMU.
pub trait Clients {
    /// The namespace the server runs in.
    fn ns(&self) -> &Netns;

    /// Whether the server replays history to a line client that joins a
    /// room that has had lines.
    fn replays_history(&self) -> bool {
        false
    }

    /// The tutorial's client (`tests/seed/client.py`), its nickname typed in.
    fn seed_client(&self, nick: &str) -> Proc {
        let script = root().join("tests/seed/client.py");
        let mut proc = Proc::spawn(self.ns().command("python3").arg(script).args([SERVER_IP, PORT]));
        proc.type_in(&format!("{nick}\n"));
        proc
    }

    /// A raw line client ([`LINE_CLIENT`]).
    fn line_client(&self) -> Proc {
        Proc::spawn(self.ns().command("python3").args(["-c", LINE_CLIENT, SERVER_IP, PORT]))
    }

    /// A browser's WebSocket ([`WEB_CLIENT`]) on the web port.
    fn web_client(&self) -> Proc {
        Proc::spawn(self.ns().command("python3").args(["-c", WEB_CLIENT, SERVER_IP, WEB_PORT]))
    }

    /// What fetching the page from the web port printed ([`PAGE_CLIENT`]).
    fn fetch_page(&self) -> String {
        let page = root().join("core/web/chat.html");
        let mut fetch =
            Proc::spawn(self.ns().command("python3").args(["-c", PAGE_CLIENT, SERVER_IP, WEB_PORT]).arg(page));
        let status = fetch.wait();
        assert!(status.success(), "fetching the page: {status}: {}", fetch.stderr.text());
        fetch.stdout.text()
    }

    /// A line client registered as `nick`, with its transcript so far.
    fn joined_line_client(&self, nick: &str) -> (Proc, Transcript) {
        let mut proc = self.line_client();
        let mut seen = Transcript::new(nick, &proc.stdout);
        seen.see("NICK");
        proc.type_in(&format!("{nick}\n"));
        if self.replays_history() {
            seen.see_joined_with_history(nick);
        } else {
            seen.see(&format!("{nick} joined!\nConnected to server!\n"));
        }
        (proc, seen)
    }
}

/// A browser fetches the page, opens its WebSocket and chats with a line
/// client; every transcript is compared whole at every step.
pub fn a_browser_fetches_the_page_and_chats_with_a_line_client(clients: &impl Clients) {
    assert_eq!(clients.fetch_page(), PAGE_FETCHED);

    let mut wendy = clients.web_client();
    let mut w = Transcript::new("wendy", &wendy.stdout);
    w.see("NICK\n");
    wendy.type_in("wendy\n");
    if clients.replays_history() {
        w.see_joined_with_history("wendy");
    } else {
        w.see("wendy joined!\nConnected to server!\n");
    }
    let (mut lou, mut l) = clients.joined_line_client("lou");
    w.see("lou joined!\n");

    wendy.type_in("hello from a browser\n");
    for t in [&mut w, &mut l] {
        t.see("wendy: hello from a browser\n");
    }
    lou.type_in("/me waves\n");
    for t in [&mut w, &mut l] {
        t.see("* lou waves\n");
    }
    lou.type_in("/quit\n");
    l.see("lou left!\n");
    assert!(lou.wait().success(), "lou's connection was not closed by the server");
    w.see("lou left!\n");
    l.done();

    // The browser leaves with a close frame: it sees its own `left!`, and
    // the server's answering close, then the server closes the connection.
    wendy.close_stdin();
    w.see("wendy left!\n[close 1000]\n");
    assert!(wendy.wait().success(), "wendy's client failed: {}", wendy.stderr.text());
    w.done();
}

/// Two tutorial clients and a line client chat; every transcript is
/// compared whole at every step (the same conversation on every frontend).
pub fn chat_between_two_tutorial_clients_and_a_line_client(clients: &impl Clients) {
    let mut alice = clients.seed_client("alice");
    let mut a = Transcript::new("alice", &alice.stdout);
    a.see("Choose your nickname: alice joined!\nConnected to server!\n");

    let mut bob = clients.seed_client("bob");
    let mut b = Transcript::new("bob", &bob.stdout);
    b.see("Choose your nickname: bob joined!\nConnected to server!\n");
    a.see("bob joined!\n");

    let (mut carol, mut c) = clients.joined_line_client("carol");
    a.see("carol joined!\n");
    b.see("carol joined!\n");

    // The seed client sends `alice: hello…`; everyone, alice included, sees
    // the server's attribution of it.
    alice.type_in("hello from alice\n");
    for t in [&mut a, &mut b, &mut c] {
        t.see("alice: hello from alice\n");
    }
    carol.type_in("hi, I am carol\n");
    for t in [&mut a, &mut b, &mut c] {
        t.see("carol: hi, I am carol\n");
    }
    bob.type_in("bye\n");
    for t in [&mut a, &mut b, &mut c] {
        t.see("bob: bye\n");
    }

    // The tutorial's client closes its socket when its stdin ends.
    bob.close_stdin();
    assert!(bob.wait().success(), "bob's client failed");
    a.see("bob left!\n");
    c.see("bob left!\n");
    b.done();

    // `/quit`: carol sees her own `left!`, then the server closes.
    carol.type_in("/quit\n");
    c.see("carol left!\n");
    assert!(carol.wait().success(), "carol's connection was not closed by the server");
    a.see("carol left!\n");
    c.done();

    alice.close_stdin();
    assert!(alice.wait().success(), "alice's client failed");
    a.done();
}
