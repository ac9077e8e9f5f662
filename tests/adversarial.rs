//! Hostile peers against `chat-server`. Each case asserts what the
//! well-behaved clients in the room saw: nothing a peer sends may crash the
//! server, stall the others, or make a connected client silently miss a line.
//!
//! The cases that do not depend on the transport run twice ([`both!`]): in
//! `plain::`, every client on the plain listener; in `tls::`, every client on
//! the TLS listener (`--tls-self-signed`, clients pinning its fingerprint).

use std::thread;
use std::time::{Duration, Instant};

use socket2::SockRef;
use tests::{ChatServer, Raw, WAIT};

/// Which listener a case's clients use.
#[derive(Clone, Copy, Debug)]
enum Via {
    Plain,
    Tls,
}

/// The server for a case: `chat-server ARGS`, with a TLS listener if the
/// case runs over TLS.
fn start(via: Via, args: &[&str]) -> ChatServer {
    match via {
        Via::Plain => ChatServer::start(args),
        Via::Tls => ChatServer::start_tls(&[args, &["--tls-self-signed"]].concat()),
    }
}

/// A new connection to the listener the server's clients use.
fn connect(server: &ChatServer) -> Raw {
    match server.tls {
        None => Raw::connect(&server.addr),
        Some((ref addr, ref fingerprint)) => Raw::connect_tls(addr, fingerprint),
    }
}

/// Runs each named case (`fn case(via: Via)`) as `plain::case` and `tls::case`.
macro_rules! both {
    ($($case:ident),* $(,)?) => {
        mod plain {
            $(#[test] fn $case() { super::$case(super::Via::Plain) })*
        }
        mod tls {
            $(#[test] fn $case() { super::$case(super::Via::Tls) })*
        }
    };
}

both!(
    slowloris_connections_are_closed_at_the_registration_timeout_and_never_block_joins,
    flooder_is_throttled_and_nothing_it_says_is_lost,
    slow_reader_is_told_why_and_nobody_else_loses_a_line,
    hostile_bytes_are_cleaned_or_refused,
    nobody_can_speak_as_someone_else,
    reset_mid_line_and_half_close,
);

/// A registered line client on the listener the case's clients use.
fn join(server: &ChatServer, nick: &str) -> Raw {
    connect(server).register(nick)
}

/// Reads lines until one equals `line` (with its `\n`); returns those before.
fn until(raw: &mut Raw, line: &str) -> Vec<String> {
    let mut before = Vec::new();
    loop {
        let got = raw.line();
        assert!(!got.is_empty(), "connection closed while waiting for {line:?}; got {before:?}");
        if got == line {
            return before;
        }
        before.push(got);
    }
}

fn server_rss_kib(server: &ChatServer) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.proc.child.id())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn slowloris_connections_are_closed_at_the_registration_timeout_and_never_block_joins(via: Via) {
    let server = start(via, &["--registration-timeout", "2", "--capacity", "60"]);
    let mut lurkers: Vec<Raw> = (0..50).map(|_| connect(&server)).collect();
    let mut alice = join(&server, "alice");
    for lurker in &mut lurkers {
        lurker.expect("NICK");
        assert_eq!(lurker.rest(), "*** no nickname after 2 s, closing\n");
    }
    alice.send(b"hello\n");
    alice.expect("alice: hello\n");
}

fn flooder_is_throttled_and_nothing_it_says_is_lost(via: Via) {
    // Flood control tuned so 10,000 lines take about 5 s instead of 80 min.
    let server = start(via, &["--burst", "20", "--rate", "1000"]);
    let mut watcher = join(&server, "watcher");
    let mut alice = join(&server, "alice");
    let mut flood = join(&server, "flood");
    watcher.expect("alice joined!\nflood joined!\n");
    alice.expect("flood joined!\n");
    let sender = std::thread::spawn(move || {
        let text: String = (0..10_000).map(|i| format!("flood line {i}\n")).collect();
        flood.send(text.as_bytes());
        flood
    });
    // Once the flood has started, alice speaks: her line gets through long
    // before the flood is over.
    let first = watcher.line();
    alice.send(b"can anyone hear me?\n");
    let before = until(&mut watcher, "alice: can anyone hear me?\n");
    assert!(before.len() < 5_000, "alice waited behind {} flood lines", before.len());
    let after = until(&mut watcher, "flood: flood line 9999\n");
    let heard: Vec<String> = std::iter::once(first).chain(before).chain(after).collect();
    let expected: Vec<String> = (0..9_999).map(|i| format!("flood: flood line {i}\n")).collect();
    assert_eq!(heard, expected, "every flood line but the last (matched above), in order");
    drop(sender.join());
}

fn slow_reader_is_told_why_and_nobody_else_loses_a_line(via: Via) {
    let server = start(via, &["--no-throttle", "--ring", "65536"]);
    let mut slow = connect(&server);
    SockRef::from(slow.stream()).set_recv_buffer_size(4096).expect("small receive buffer");
    slow.expect("NICK");
    slow.send(b"slow\n");
    let mut alice = join(&server, "alice");
    let mut bob = join(&server, "bob");
    alice.expect("bob joined!\n");
    // The slow reader reads nothing until the room has dropped it, then
    // everything, as fast as it can: what it gets is what the server had
    // for it when it was dropped, and the reason, within the room's drain
    // timeout.
    let wake_slow = |slow: Raw| {
        let mut slow = slow;
        thread::spawn(move || slow.rest())
    };
    let mut slow = Some(slow);
    let mut reading = None;
    let line = format!("{}\n", "b".repeat(400));
    let count = 20_000;
    let mut heard = 0;
    for i in 0..count {
        bob.send(format!("{i:05} {line}").as_bytes());
        // alice reads as fast as bob talks.
        loop {
            let got = alice.line();
            if got == "slow left!\n" {
                reading = slow.take().map(wake_slow);
                continue;
            }
            assert_eq!(got, format!("bob: {i:05} {line}"), "alice missed a line");
            heard += 1;
            break;
        }
    }
    assert_eq!(heard, count);
    if let Some(slow) = slow.take() {
        assert!(until(&mut alice, "slow left!\n").is_empty());
        reading = Some(wake_slow(slow));
    }
    // The slow reader finds its lines cut off by the server...
    let text = reading.expect("the slow reader is reading").join().expect("the slow reader's thread");
    assert!(
        text.starts_with("slow joined!\nConnected to server!\nalice joined!\n"),
        "{}",
        &text[..200.min(text.len())]
    );
    assert!(text.lines().count() < count, "the slow reader was disconnected before the end");
    // ...and is told why, in its last line (the line it was cut off in is
    // ended first).
    assert!(
        text.ends_with("\n*** disconnected: you read more slowly than the room talks and missed lines\n"),
        "the slow reader's last lines: {:?}; the server's log:\n{}",
        text.lines().rev().take(2).map(|l| &l[..l.len().min(40)]).collect::<Vec<_>>(),
        server.proc.stderr.text()
    );
}

fn hostile_bytes_are_cleaned_or_refused(via: Via) {
    let server = start(via, &["--no-throttle"]);
    let mut alice = join(&server, "alice");
    let mut bob = join(&server, "bob");
    alice.expect("bob joined!\n");
    // A megabyte without a newline: one notice, the connection stays.
    let mut evil = connect(&server);
    evil.expect("NICK");
    evil.send(b"evil\n");
    evil.expect("evil joined!\nConnected to server!\n");
    alice.expect("evil joined!\n");
    bob.expect("evil joined!\n");
    evil.send(&vec![b'A'; 1 << 20]);
    evil.send(b"\n");
    evil.expect("*** line too long (over 512 bytes), not sent\n");
    let cases: [(&[u8], &str); 6] = [
        (b"\xff\xfeinvalid \xc3\x28 utf8\n", "evil: \u{fffd}\u{fffd}invalid \u{fffd}( utf8\n"),
        (b"\x1b]52;c;cm0gLXJmIH4K\x07clipboard\n", "evil: clipboard\n"),
        (b"\x1b[2J\x1b[Hclear screen\n", "evil: clear screen\n"),
        (b"\x1b]0;owned title\x1b\\title\n", "evil: title\n"),
        ("\u{202e}txt.exe\u{202c} bidi\n".as_bytes(), "evil: txt.exe bidi\n"),
        (b"I owe you 100\rbob: I owe you 0\n", "evil: I owe you 100bob: I owe you 0\n"),
    ];
    for (sent, seen) in cases {
        evil.send(sent);
        alice.expect(seen);
        bob.expect(seen);
    }
}

fn nobody_can_speak_as_someone_else(via: Via) {
    let server = start(via, &[]);
    let mut alice = join(&server, "alice");
    let mut bob = join(&server, "bob");
    alice.expect("bob joined!\n");
    let mut mallory = join(&server, "mallory");
    alice.expect("mallory joined!\n");
    bob.expect("mallory joined!\n");
    mallory.send(b"bob: hi\n\rbob: hi\n");
    for raw in [&mut alice, &mut bob] {
        raw.expect("mallory: bob: hi\nmallory: bob: hi\n");
    }
    // Nor as the server.
    mallory.send(b"*** the server is shutting down\n/nick ***\n");
    alice.expect("mallory: *** the server is shutting down\n");
    mallory.expect("mallory: bob: hi\nmallory: bob: hi\nmallory: *** the server is shutting down\n");
    mallory.expect("*** nickname \"***\" refused: it starts with '/', '*', '!' or '#'\n");
}

fn reset_mid_line_and_half_close(via: Via) {
    let server = start(via, &[]);
    let mut alice = join(&server, "alice");
    // A peer that resets in the middle of a line.
    let rst = join(&server, "rst");
    alice.expect("rst joined!\n");
    let mut rst = rst;
    rst.send(b"half a li");
    SockRef::from(rst.stream()).set_linger(Some(Duration::ZERO)).expect("linger 0");
    drop(rst);
    alice.expect("rst left!\n");
    // A peer that half-closes: its last line (even unterminated) is said,
    // it still receives its echo and `left!`, then the server closes.
    let mut half = join(&server, "half");
    alice.expect("half joined!\n");
    half.send(b"bye now\nlast words");
    half.shutdown_write();
    assert_eq!(half.rest(), "half: bye now\nhalf: last words\nhalf left!\n");
    alice.expect("half: bye now\nhalf: last words\nhalf left!\n");
}

#[test]
fn ten_thousand_cycles_leave_no_descriptor_or_memory_behind() {
    cycles_leave_no_descriptor_or_memory_behind(Via::Plain, 10_000);
}

/// The same over TLS, a full handshake each time (fewer cycles: a handshake
/// in a debug build costs milliseconds).
#[test]
fn two_thousand_tls_sessions_leave_no_descriptor_or_memory_behind() {
    cycles_leave_no_descriptor_or_memory_behind(Via::Tls, 2_000);
}

fn cycles_leave_no_descriptor_or_memory_behind(via: Via, cycles: usize) {
    // A small log, so it has wrapped (all its pages touched) long before
    // memory is first measured.
    let server = start(via, &["--capacity", "64", "--ring", "16384"]);
    let mut alice = join(&server, "alice");
    let watcher = std::thread::spawn(move || {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2 * cycles {
            assert!(seen.insert(alice.line()), "a line twice");
        }
        (seen, alice)
    });
    let fds = server.open_fds();
    let mut rss_after_warmup = 0;
    for i in 0..cycles {
        drop(join(&server, &format!("c{i}")));
        if i == cycles / 10 {
            rss_after_warmup = server_rss_kib(&server);
        }
    }
    // alice saw every one come and go.
    let (seen, _alice) = watcher.join().expect("alice's reader");
    for i in 0..cycles {
        assert!(seen.contains(&format!("c{i} joined!\n")) && seen.contains(&format!("c{i} left!\n")), "cycle {i}");
    }
    let deadline = Instant::now() + WAIT;
    while server.open_fds() != fds {
        assert!(Instant::now() < deadline, "descriptors: {fds} before, {} after", server.open_fds());
        std::thread::sleep(Duration::from_millis(20));
    }
    let rss = server_rss_kib(&server);
    eprintln!("{via:?}: server RSS after {} cycles: {rss_after_warmup} KiB; after {cycles}: {rss} KiB", cycles / 10);
    assert!(rss <= rss_after_warmup + 256, "memory grew: {rss_after_warmup} KiB -> {rss} KiB");
}

#[test]
fn a_full_room_refuses_politely_again_and_again() {
    let server = ChatServer::start(&["--capacity", "3"]);
    let mut alice = Raw::join(&server.addr, "alice");
    let mut bob = Raw::join(&server.addr, "bob");
    let _carol = Raw::join(&server.addr, "carol");
    alice.expect("bob joined!\ncarol joined!\n");
    for _ in 0..20 {
        let mut extra = Raw::connect(&server.addr);
        assert_eq!(extra.rest(), "*** the room is full, try again later\n");
    }
    bob.send(b"unaffected\n");
    bob.expect("carol joined!\nbob: unaffected\n");
    alice.expect("bob: unaffected\n");
}
