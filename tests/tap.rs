//! End-to-end tests of `tap-server`: the chat room on smoltcp, over a TAP
//! device, with the tutorial's Python client and raw line clients.
//!
//! Each test makes its own network namespace (see `tests/support/netns.rs`)
//! and runs the server and every client inside it: the traffic never leaves
//! the namespace. They need root, `ip`, `/dev/net/tun` and python3, so
//! they are `#[ignore]`d: `cargo test -- --include-ignored` runs them (as
//! tests/run.sh does), and there a missing prerequisite fails them.
//!
//! Every step waits for what it expects before the next one, and whole
//! transcripts are compared at every step: TCP may coalesce or split
//! writes, but never across a step the test waited for.

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use tests::netns::{
    a_browser_fetches_the_page_and_chats_with_a_line_client, chat_between_two_tutorial_clients_and_a_line_client,
    Clients, Netns, PORT, SERVER_ADDRESS, SERVER_IP, TAP,
};
use tests::{bin, Proc, Transcript};

/// What a client beyond capacity gets, and nothing else.
const ROOM_FULL: &str = "*** the room is full, try again later\n";

/// A line client that registers as argv[3], prints `registered`, and then
/// never reads again: what the room sends it stays unread in its socket,
/// so when it is killed its kernel resets the connection instead of
/// closing it.
const DEAF_CLIENT: &str = r#"
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
got = b""
def until(text):
    global got
    while text not in got:
        data = s.recv(4096)
        if not data:
            sys.exit("closed early after %r" % got)
        got += data
until(b"NICK")
s.sendall(sys.argv[3].encode() + b"\n")
until(b"Connected to server!\n")
print("registered", flush=True)
time.sleep(3600)
"#;

/// argv[3] rounds of: connect, register as `rN`, say a line, `/quit`, and
/// read to the server's close; each round's bytes must be exactly the
/// protocol's. Prints `ok N` when all passed, else the first failure.
const ROUNDS_CLIENT: &str = r#"
import socket, sys
host, port, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(rounds):
    nick = "r%d" % i
    expected = ("NICK%s joined!\nConnected to server!\n%s: round %d\n%s left!\n" % (nick, nick, i, nick)).encode()
    got = b""
    try:
        s = socket.create_connection((host, port), timeout=5)
        def until(text):
            global got
            while text not in got:
                data = s.recv(4096)
                if not data:
                    raise EOFError("closed by the server")
                got += data
        until(b"NICK")
        s.sendall(nick.encode() + b"\n")
        until(b"Connected to server!\n")
        s.sendall(b"round %d\n" % i)
        until(b"%s: round %d\n" % (nick.encode(), i))
        s.sendall(b"/quit\n")
        while True:
            data = s.recv(4096)
            if not data:
                break
            got += data
        s.close()
    except Exception as e:
        print("round %d failed: %r; got %r" % (i, e, got), flush=True)
        sys.exit(1)
    if got != expected:
        print("round %d: got %r, expected %r" % (i, got, expected), flush=True)
        sys.exit(1)
print("ok %d" % rounds, flush=True)
"#;

/// A raw HTTP client, as `curl` without its manners would be: sends
/// argv[3] (`\r\n` written as such) to the web port argv[2], and writes
/// everything the server sends, to its close, to stdout as it came.
const RAW_HTTP: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(sys.argv[3].encode().replace(b"\\r\\n", b"\r\n"))
while True:
    data = s.recv(65536)
    if not data:
        break
    sys.stdout.buffer.write(data)
sys.stdout.buffer.flush()
"#;

/// `tap-server`, built once per test run.
fn tap_server() -> PathBuf {
    bin("embedded", "tap-server")
}

/// A namespace with `tap-server` listening in it. The server is dropped
/// (killed) before the namespace is deleted.
struct Setup {
    server: Proc,
    ns: Netns,
}

impl Clients for Setup {
    fn ns(&self) -> &Netns {
        &self.ns
    }
}

impl Setup {
    /// Starts `tap-server ARGS` in a new namespace and waits until it
    /// listens.
    fn start(test: &str, args: &[&str]) -> Setup {
        let ns = Netns::for_test(test);
        let mut command = ns.command(tap_server());
        command.args(["--tap", TAP, "--address", SERVER_ADDRESS, "--port", PORT]).args(args);
        // History on join is off unless a test asks for it: the transcripts
        // stay what they test.
        if !args.contains(&"--history") {
            command.args(["--history", "0"]);
        }
        // The tests read the server's log: at its default level, whatever
        // the environment says.
        command.env("RUST_LOG", "info");
        let server = Proc::spawn(&mut command);
        server.stdout.wait_for(&format!("listening on {SERVER_IP}:{PORT}\n"));
        Setup { server, ns }
    }

    /// The server's log so far.
    fn log(&self) -> String {
        self.server.stderr.text()
    }
}

#[test]
#[ignore = "needs root and /dev/net/tun"]
fn seed_and_line_clients_chat_through_smoltcp() {
    let setup = Setup::start("chat", &[]);
    let started = Instant::now();

    chat_between_two_tutorial_clients_and_a_line_client(&setup);

    let log = setup.log();
    for line in ["Connected with 192.168.69.100:", "Nickname is alice", "Nickname is bob", "Nickname is carol"] {
        assert!(log.contains(line), "the server's log lacks {line:?}:\n{log}");
    }
    eprintln!("chat: {:?}", started.elapsed());
}

#[test]
#[ignore = "needs root and /dev/net/tun"]
fn one_client_beyond_capacity_is_told_the_room_is_full() {
    let setup = Setup::start("capacity", &["--capacity", "3"]);
    let started = Instant::now();

    let mut clients: Vec<(Proc, Transcript)> = Vec::new();
    for nick in ["c1", "c2", "c3"] {
        let joined = setup.joined_line_client(nick);
        for (_, seen) in &mut clients {
            seen.see(&format!("{nick} joined!\n"));
        }
        clients.push(joined);
    }

    // The fourth connection gets through (the spare socket), is told, and
    // is closed: its client exits on the server's close.
    let mut extra = setup.line_client();
    extra.stdout.wait_for(ROOM_FULL);
    assert!(extra.wait().success(), "the extra client's connection was not closed");
    assert_eq!(extra.stdout.text(), ROOM_FULL, "what the extra client got");

    // The others are undisturbed.
    clients[0].0.type_in("still here\n");
    for (_, seen) in &mut clients {
        seen.see("c1: still here\n");
    }

    // A slot freed is a slot taken: c3 leaves, c4 gets in (its socket is
    // the spare, or c3's recycled).
    clients[2].0.type_in("/quit\n");
    for (_, seen) in &mut clients {
        seen.see("c3 left!\n");
    }
    assert!(clients[2].0.wait().success(), "c3's connection was not closed");
    clients.pop();
    let joined = setup.joined_line_client("c4");
    for (_, seen) in &mut clients {
        seen.see("c4 joined!\n");
    }
    clients.push(joined);
    clients[1].0.type_in("welcome c4\n");
    for (_, seen) in &mut clients {
        seen.see("c2: welcome c4\n");
    }
    for (_, seen) in &clients {
        seen.done();
    }
    let log = setup.log();
    assert!(log.contains("the room is full"), "the server's log does not mention the refusal:\n{log}");
    eprintln!("capacity: {:?}", started.elapsed());
}

#[test]
#[ignore = "needs root and /dev/net/tun"]
fn a_killed_client_leaves_the_room() {
    let setup = Setup::start("vanish", &[]);
    let started = Instant::now();

    let mut alice = setup.seed_client("alice");
    let mut a = Transcript::new("alice", &alice.stdout);
    a.see("Choose your nickname: alice joined!\nConnected to server!\n");

    let (mut kate, _) = setup.joined_line_client("kate");
    a.see("kate joined!\n");
    let mut rita = Proc::spawn(setup.ns.command("python3").args(["-c", DEAF_CLIENT, SERVER_IP, PORT, "rita"]));
    rita.stdout.wait_for("registered\n");
    a.see("rita joined!\n");

    // kate read everything: her kernel closes the connection with a FIN.
    let killed = Instant::now();
    kate.child.kill().expect("kill kate's client");
    let _ = kate.child.wait();
    a.see("kate left!\n");
    let kate_gone = killed.elapsed();

    // rita has a line unread: her kernel resets the connection.
    alice.type_in("anyone there?\n");
    a.see("alice: anyone there?\n");
    thread::sleep(Duration::from_millis(300));
    let killed = Instant::now();
    rita.child.kill().expect("kill rita's client");
    let _ = rita.child.wait();
    a.see("rita left!\n");
    let rita_gone = killed.elapsed();

    alice.close_stdin();
    assert!(alice.wait().success(), "alice's client failed");
    a.done();
    // Both ways a connection ends were taken: kate's FIN (end of file),
    // rita's RST (a failed send once the read found the peer gone).
    let log = setup.log();
    assert!(log.contains("closed: closed by the peer"), "no FIN in the server's log:\n{log}");
    assert!(log.contains("closed: I/O error: ConnectionReset"), "no RST in the server's log:\n{log}");
    // Both were noticed at once, not by a keep-alive timeout.
    assert!(kate_gone < Duration::from_secs(3), "kate's departure took {kate_gone:?}");
    assert!(rita_gone < Duration::from_secs(3), "rita's departure took {rita_gone:?}");
    eprintln!("vanish: {:?} (FIN noticed in {kate_gone:?}, RST in {rita_gone:?})", started.elapsed());
}

#[test]
#[ignore = "needs root and /dev/net/tun"]
fn two_hundred_sequential_sessions_recycle_the_sockets() {
    // Two clients, three sockets: without recycling, the fourth round
    // would find no socket listening.
    let setup = Setup::start("rounds", &["--capacity", "2"]);
    let started = Instant::now();
    let mut rounds = Proc::spawn(setup.ns.command("python3").args(["-c", ROUNDS_CLIENT, SERVER_IP, PORT, "200"]));
    let status = rounds.wait_for_exit(Duration::from_secs(120));
    let out = rounds.stdout.text();
    assert!(
        status.is_some_and(|s| s.success()) && out == "ok 200\n",
        "rounds: {status:?}: {out}{}\nserver log tail:\n{}\n{}",
        rounds.stderr.text(),
        tail(&setup.log(), 20),
        setup.ns.describe()
    );
    eprintln!("rounds: 200 sessions in {:?}", started.elapsed());
}

#[test]
#[ignore = "needs root and /dev/net/tun"]
fn sigint_tells_everyone_and_exits_zero() {
    let mut setup = Setup::start("shutdown", &[]);
    let (mut dave, mut d) = setup.joined_line_client("dave");
    let (mut erin, mut e) = setup.joined_line_client("erin");
    d.see("erin joined!\n");

    setup.server.signal(2);
    for (proc, seen) in [(&mut dave, &mut d), (&mut erin, &mut e)] {
        seen.see("*** the server is shutting down\n");
        assert!(proc.wait().success(), "{}'s connection was not closed", seen.who);
        seen.done();
    }
    let status = setup.server.wait();
    assert!(status.success(), "tap-server exited with {status}:\n{}", setup.log());
}

#[test]
#[ignore = "needs root and /dev/net/tun"]
fn an_idle_server_sleeps_even_after_flood_control() {
    let setup = Setup::start("idle", &[]);
    let (mut flo, mut f) = setup.joined_line_client("flo");
    // Seven lines at once: a burst of five goes out at once, the other two
    // as flood control's tokens come back (one per 500 ms).
    flo.type_in("1\n2\n3\n4\n5\n6\n7\n");
    // It is told once that the last two are held.
    f.see("flo: 1\nflo: 2\nflo: 3\nflo: 4\nflo: 5\n*** slow down: you are sending faster than the room allows; your lines are held, not lost\n");
    f.see("flo: 6\n");
    f.see("flo: 7\n");
    // Now nothing happens: the server must sleep, not poll.
    let pid = setup.server.child.id();
    let before = cpu_ticks(pid);
    thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(pid) - before;
    assert!(used <= 10, "an idle tap-server used {used} CPU ticks in 1 s");
    f.done();
}

/// User and system CPU time a process has used, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the command name (in parentheses): state is the 3rd
    // field, utime and stime the 14th and 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Waiting for a process with a deadline of the test's choosing.
trait WaitForExit {
    fn wait_for_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus>;
}

impl WaitForExit for Proc {
    fn wait_for_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

#[test]
#[ignore = "needs root and /dev/net/tun"]
fn hostile_bytes_and_impersonation_are_defused_through_smoltcp() {
    let setup = Setup::start("hostile", &[]);
    let (_alice, mut alice_seen) = setup.joined_line_client("alice");
    let (mut mallory, mut mallory_seen) = setup.joined_line_client("mallory");
    alice_seen.see("mallory joined!\n");
    // Five lines: within the flood-control burst, so they come at once.
    mallory.type_in(&format!("{}\n", "x".repeat(600)));
    mallory_seen.see("*** line too long (over 512 bytes), not sent\n");
    mallory.type_in("\u{1b}]52;c;cm0gLXJmIH4K\u{7}\u{1b}[2Jclean\n");
    mallory.type_in("\u{202e}gnp.exe bidi\n");
    mallory.type_in("bob: I am bob\n");
    mallory.type_in("\rbob: me too\n");
    let said = "mallory: clean\nmallory: gnp.exe bidi\nmallory: bob: I am bob\nmallory: bob: me too\n";
    alice_seen.see(said);
    mallory_seen.see(said);
    alice_seen.done();
}

#[test]
#[ignore = "needs root and /dev/net/tun"]
fn a_server_off_the_tap_devices_network_says_how_to_fix_it() {
    let ns = Netns::for_test("off-network");
    let mut command = ns.command(tap_server());
    command.args(["--tap", TAP, "--address", "10.9.8.7/24", "--port", PORT]).env("RUST_LOG", "info");
    let server = Proc::spawn(&mut command);
    server.stdout.wait_for("listening on 10.9.8.7:55555\n");
    let log = server.stderr.wait_for("add one (as root)");
    assert!(
        log.contains("none on the server's network 10.9.8.0/24")
            && log.contains(&format!("ip addr add 10.9.8.100/24 dev {TAP}")),
        "the warning:\n{log}"
    );
}

#[test]
#[ignore = "needs root and /dev/net/tun"]
fn a_browser_gets_the_page_and_chats_through_smoltcp() {
    let setup = Setup::start("web", &[]);
    let started = Instant::now();
    a_browser_fetches_the_page_and_chats_with_a_line_client(&setup);
    let log = setup.log();
    assert!(log.contains("Connected with 192.168.69.100:") && log.contains(" (web)\n"), "the server's log:\n{log}");
    assert!(log.contains("Nickname is wendy"), "the server's log:\n{log}");
    eprintln!("web: {:?}", started.elapsed());
}

#[test]
#[ignore = "needs root and /dev/net/tun"]
fn the_web_port_answers_in_http_when_the_room_is_full() {
    let setup = Setup::start("web-full", &["--capacity", "1", "--web-port", "8080"]);
    assert_eq!(
        setup.server.stdout.wait_for_n("\n", 2),
        format!("listening on {SERVER_IP}:{PORT}\nweb on {SERVER_IP}:8080\n")
    );
    let (mut alice, mut a) = setup.joined_line_client("alice");
    let mut browser = Proc::spawn(setup.ns.command("python3").args([
        "-c",
        RAW_HTTP,
        SERVER_IP,
        "8080",
        "GET / HTTP/1.1\\r\\nHost: 192.168.69.1:8080\\r\\n\\r\\n",
    ]));
    assert!(browser.wait().success(), "the browser's client failed: {}", browser.stderr.text());
    assert_eq!(
        browser.stdout.text(),
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 38\r\n\
         Retry-After: 10\r\nConnection: close\r\n\r\n*** the room is full, try again later\n"
    );
    // On the chat port, the one too many is told as ever.
    let mut extra = setup.line_client();
    assert!(extra.wait().success(), "the extra client's connection was not closed");
    assert_eq!(extra.stdout.text(), ROOM_FULL);
    alice.type_in("still here\n");
    a.see("alice: still here\n");
    a.done();
    let log = setup.log();
    assert!(log.contains(" (web)\n") && log.contains("the room is full, closing"), "the server's log:\n{log}");
}
