//! The seed scenarios of the `room`, `web` and `member` targets, shared by the seed tests
//! (`tests/seeds.rs`) and the tool that writes the seed files
//! (`examples/write_seeds.rs`).

use std::path::PathBuf;

use chat_core_fuzz::member::{MemberInput, MemberOp};
use chat_core_fuzz::web::{web_tokens, WebInput, WebOp};
use chat_core_fuzz::{Input, Op, ThrottleMode, TOKENS};

fn tok(t: &[u8]) -> u8 {
    TOKENS.iter().position(|x| *x == t).unwrap_or_else(|| panic!("no token {:?}", String::from_utf8_lossy(t))) as u8
}

fn say(conn: u8, parts: &[&[u8]]) -> Op {
    Op::Say { conn, tokens: parts.iter().map(|p| tok(p)).collect() }
}

fn send(conn: u8, data: &[u8]) -> Op {
    Op::Send { conn, data: data.to_vec() }
}

fn drain(conn: u8) -> Op {
    Op::Drain { conn, cap: 4095 }
}

const fn tick(ms: u16) -> Op {
    Op::Tick { ms }
}

fn line_clients(nicks: &[&[u8]]) -> Vec<Op> {
    let mut ops = Vec::new();
    for (i, nick) in nicks.iter().enumerate() {
        ops.extend([Op::Connect, drain(i as u8), say(i as u8, &[nick])]);
        for j in 0..=i {
            ops.push(drain(j as u8));
        }
    }
    ops
}

/// Every seed scenario, by the name of its file in `seeds/room/`.
pub fn scenarios() -> Vec<(&'static str, Input)> {
    let mut all = Vec::new();

    let mut ops = line_clients(&[b"alice\n", b"bob\n"]);
    ops.extend([
        say(0, &[b"hello\n"]),
        say(1, &[b"/me waves\n"]),
        say(0, &[b"/msg bob hi\n"]),
        say(1, &[b"/who\n"]),
        say(0, &[b"/NICK Carol\n"]),
        drain(0),
        drain(1),
        say(1, &[b"/help\n", b"//not a command\n", b"/bogus\n"]),
        say(0, &[b"/nick ", b"\n", b"/me\n"]),
        say(0, &[b"/msg ", b"\n"]),
        Op::Transmit { conn: 0, cap: 7 },
        Op::Transmit { conn: 1, cap: 100 },
        drain(0),
        drain(1),
        say(1, &[b"/quit bye: now\n"]),
        Op::Close { conn: 1, cap: 20 },
        drain(0),
    ]);
    all.push(("line_chat", Input { throttle: ThrottleMode::Off, ops }));

    let ops = vec![
        Op::Connect,
        Op::Transmit { conn: 0, cap: 4 },
        send(0, b"Neural"),
        tick(300),
        drain(0),
        Op::Connect,
        drain(1),
        send(1, b"Nine"),
        tick(300),
        drain(0),
        drain(1),
        send(0, b"Neural: Hello"),
        drain(0),
        drain(1),
        send(1, b"Nine: What's up?"),
        drain(0),
        drain(1),
        send(0, b"Neural: Not much!Neural: How about you?"),
        Op::Frontend { write_cap: 1024 },
        send(1, b"Nine: Same! Gotta Go! Bye!"),
        Op::PeerClose { conn: 1 },
        Op::Close { conn: 1, cap: 2000 },
        drain(0),
    ];
    all.push(("seed_tutorial", Input { throttle: ThrottleMode::Default, ops }));

    let mut ops = line_clients(&[b"alice\n"]);
    ops.extend([
        Op::Connect,
        drain(1),
        say(1, &[b"alice"]),
        tick(250),
        drain(0),
        drain(1),
        Op::Connect,
        drain(2),
        say(2, &[b"Alice\n"]),
        drain(2),
        say(2, &[b"carol\n"]),
        drain(0),
        drain(1),
        drain(2),
        say(1, &[b"alice", b": ", "\u{e9}".as_bytes(), b"\x1b[31m"]),
        say(2, &[b"\xff", "\u{202e}".as_bytes(), b"\t", b"hello\n"]),
        drain(0),
        drain(1),
        drain(2),
        Op::Connect,
        drain(3),
        say(3, &[b"NeuralNeural: Hello"]),
        tick(260),
        drain(0),
        drain(3),
        Op::Frontend { write_cap: 3 },
        Op::Frontend { write_cap: 5000 },
    ]);
    all.push(("mixed_dialects", Input { throttle: ThrottleMode::Default, ops }));

    let mut ops = line_clients(&[b"alice\n", b"bob\n"]);
    for _ in 0..3 {
        ops.push(send(1, &b"x\n".repeat(100)));
        ops.push(drain(1));
    }
    ops.extend([Op::Close { conn: 0, cap: 2000 }, drain(1), Op::Connect, Op::Connect]);
    all.push(("slow_reader", Input { throttle: ThrottleMode::Off, ops }));

    let ops = vec![
        Op::Connect,
        Op::Connect,
        Op::Connect,
        Op::Connect,
        Op::Connect,
        Op::Close { conn: 2, cap: 1 },
        Op::Connect,
        Op::Disconnect { conn: 0 },
        Op::Connect,
        tick(30_000),
        Op::Frontend { write_cap: 1000 },
        Op::Wake,
        Op::Frontend { write_cap: 1000 },
    ];
    all.push(("room_full_and_timeouts", Input { throttle: ThrottleMode::Default, ops }));

    let mut ops = line_clients(&[b"alice\n", b"bob\n"]);
    ops.extend([
        say(0, &[b"x\n", b"x\n", b"x\n", b"x\n"]),
        say(0, &[b"x\n", b"x\n", b"hello\n", b"hello\n"]),
        Op::Frontend { write_cap: 2048 },
        tick(600),
        Op::Frontend { write_cap: 2048 },
        Op::Feed { conn: 0, max: 3 },
        Op::Wake,
        Op::Pump { conn: 0, write_cap: 10, read_chunk: 2, fault: 0 },
        Op::Fin { conn: 0 },
        Op::Pump { conn: 0, write_cap: 4000, read_chunk: 1023, fault: 0 },
        Op::Pump { conn: 1, write_cap: 4000, read_chunk: 1023, fault: 4 },
        Op::Frontend { write_cap: 4000 },
    ]);
    all.push(("flood_and_pump", Input { throttle: ThrottleMode::Tight, ops }));

    let mut ops = line_clients(&[b"alice\n", b"bob\n"]);
    ops.extend([
        say(0, &[&[b'x'; 510], b"\n"]),
        say(0, &[&[b'y'; 600], b"\n", b"hello\n"]),
        drain(0),
        drain(1),
        Op::Connect,
        send(2, b"Neural"),
        tick(300),
        send(2, &[b'z'; 255]),
        send(2, &[b'z'; 255]),
        send(2, &[b'z'; 255]),
        drain(2),
        drain(0),
        Op::Shutdown,
        Op::Transmit { conn: 1, cap: 3 },
        Op::Connect,
        tick(2000),
        Op::PollClose { conn: 0 },
        Op::PollClose { conn: 1 },
    ]);
    all.push(("long_lines_and_shutdown", Input { throttle: ThrottleMode::Off, ops }));

    all
}

/// Where the seed files are: `seeds/room/{name}`.
pub fn seed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds").join("room")
}

// ----- the `web` target -----------------------------------------------------------

fn wtok(t: &[u8]) -> u8 {
    web_tokens().iter().position(|x| x == t).unwrap_or_else(|| panic!("no web token {:?}", String::from_utf8_lossy(t)))
        as u8
}

/// The browser `web` sends these web tokens (whole requests or frames).
fn wsay(web: u8, parts: &[&[u8]]) -> WebOp {
    WebOp::Say { web, tokens: parts.iter().map(|p| wtok(p)).collect() }
}

/// A masked frame of the text `payload` as the token the harness has for it.
fn text(payload: &str) -> Vec<u8> {
    chat_core_fuzz::web::frame(0x81, Some([0x11, 0x22, 0x33, 0x44]), payload.as_bytes())
}

fn control(first: u8, payload: &[u8]) -> Vec<u8> {
    chat_core_fuzz::web::frame(first, Some([0x11, 0x22, 0x33, 0x44]), payload)
}

const FRONTEND: WebOp = WebOp::Line(Op::Frontend { write_cap: 4096 });

fn wclose(web: u8) -> WebOp {
    WebOp::Close { web, cap: 4095 }
}

/// A browser in slot order `web` upgrades and registers as `nick`.
fn browser(web: u8, nick: &str) -> Vec<WebOp> {
    let upgrade = chat_core_fuzz::web::upgrade_request().into_bytes();
    vec![WebOp::Connect, FRONTEND, wsay(web, &[&upgrade]), FRONTEND, wsay(web, &[&text(nick)]), FRONTEND]
}

/// A browser connects and asks for an upgrade, in three writes, from the
/// page of `http://evil.example`.
fn upgrade_from_elsewhere(host: &[u8], connection: &[u8], key: &[u8]) -> Vec<WebOp> {
    vec![
        WebOp::Connect,
        wsay(0, &[b"GET /ws HTTP/1.1\r\n", host, b"Upgrade: websocket\r\n", connection]),
        wsay(0, &[key, b"Sec-WebSocket-Version: 13\r\n"]),
        wsay(0, &[b"Origin: http://evil.example\r\n", b"\r\n"]),
    ]
}

fn line(ops: Vec<Op>) -> Vec<WebOp> {
    ops.into_iter().map(WebOp::Line).collect()
}

/// Every seed scenario of the `web` target, by the name of its file in
/// `seeds/web/`.
pub fn web_scenarios() -> Vec<(&'static str, WebInput)> {
    let mut all = Vec::new();
    let plain = |ops| WebInput { throttle: ThrottleMode::Default, other_origin: false, ops };

    let mut ops = vec![
        WebOp::Connect,
        FRONTEND,
        wsay(0, &[b"GET / HTTP/1.1\r\nHost: 192.168.69.1\r\n\r\n"]),
        WebOp::Pump { web: 0, write_cap: 700, read_chunk: 1023, fault: 0 },
        WebOp::Transmit { web: 0, cap: 100 },
        FRONTEND,
        wclose(0),
    ];
    ops.extend([WebOp::Connect, wsay(0, &[b"GET /index.html HTTP/1.1\r\n", b"Accept: text/html\r\n", b"\r\n"])]);
    ops.extend([FRONTEND, wclose(0)]);
    all.push(("page", plain(ops)));

    let mut ops = line(line_clients(&[b"alice\n"]));
    ops.extend(browser(0, "bob"));
    ops.extend([
        WebOp::Line(drain(0)),
        wsay(0, &[&text("hello")]),
        WebOp::Line(say(0, &[b"hello\n"])),
        FRONTEND,
        wsay(0, &[&text("/who"), &text("/me waves"), &text("/msg bob hi")]),
        FRONTEND,
        // A ping between two fragments, answered at once.
        wsay(0, &[&control(0x01, b"hel"), &control(0x89, b"are you there"), &control(0x00, b"l")]),
        FRONTEND,
        wsay(0, &[&control(0x80, b"o")]),
        FRONTEND,
        WebOp::Frame { web: 0, kind: 0, mask: 7, tokens: vec![tok(b"hello"), tok(b": "), tok("\u{e9}".as_bytes())] },
        WebOp::Pump { web: 0, write_cap: 3, read_chunk: 2, fault: 0 },
        FRONTEND,
        WebOp::Line(tick(3000)),
        FRONTEND,
        wsay(0, &[&text("/nick carol")]),
        FRONTEND,
        wsay(0, &[&control(0x88, &1001u16.to_be_bytes())]),
        FRONTEND,
        WebOp::Line(drain(0)),
    ]);
    all.push(("chat", plain(ops)));

    let mut ops = Vec::new();
    for request in [
        &[&b"GET /favicon.ico HTTP/1.1\r\n"[..], b"\r\n"][..],
        &[b"POST / HTTP/1.1\r\n", b"\r\n"],
        &[b"GET /ws HTTP/1.1\r\n", b"Host: chat.example\r\n", b"\r\n"],
        &[b"bad header\r\n", b"\r\n"],
        &[b"GET / HTTP/1.0\r\n", b"\r\n"],
        &[b"GET /ws HTTP/1.1\r\n", b"Sec-WebSocket-Key: short\r\n", b"\r\n"],
    ] {
        ops.extend([WebOp::Connect, wsay(0, request), FRONTEND, wclose(0)]);
    }
    ops.extend(upgrade_from_elsewhere(
        b"Host: 127.0.0.1:8080\r\n",
        b"Connection: Upgrade\r\n",
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    ));
    ops.extend([FRONTEND, wclose(0)]);
    let filler = format!("X-Filler: {}\r\n", "f".repeat(480)).into_bytes();
    ops.extend([WebOp::Connect, wsay(0, &[b"GET / HTTP/1.1\r\n"])]);
    for _ in 0..5 {
        ops.push(wsay(0, &[&filler, &filler, &filler, &filler]));
    }
    ops.extend([FRONTEND, wclose(0)]);
    ops.extend([WebOp::Connect, wsay(0, &[&[b'h'; 600]]), FRONTEND, wclose(0)]);
    ops.extend([WebOp::Connect, WebOp::Send { web: 0, data: b"GET / HT".to_vec() }, WebOp::Line(tick(30_000))]);
    ops.extend([FRONTEND, wclose(0), WebOp::Connect, WebOp::Connect, WebOp::Connect, WebOp::Connect, WebOp::Connect]);
    all.push(("refusals", plain(ops)));

    let mut ops = line(line_clients(&[b"alice\n"]));
    let broken: [Vec<u8>; 8] = [
        control(0x82, b"\x00\x01"),
        control(0x81, b"bad \xff"),
        control(0x81, &[b'z'; 513]),
        chat_core_fuzz::web::frame(0x81, None, b"hi"),
        control(0x80, &[b'y'; 200]),
        control(0x83, b"reserved"),
        control(0x89, &[b'p'; 126]),
        vec![0x81, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4],
    ];
    for bytes in &broken {
        ops.extend(browser(0, "bob"));
        ops.extend([wsay(0, &[bytes]), FRONTEND, wclose(0), WebOp::Line(drain(0))]);
    }
    ops.extend(browser(0, "bob"));
    ops.extend([wsay(0, &[&control(0x01, &[b'x'; 300]), &control(0x80, &[b'y'; 213])]), FRONTEND, wclose(0)]);
    all.push(("broken_frames", WebInput { throttle: ThrottleMode::Off, other_origin: false, ops }));

    let mut ops = line(line_clients(&[b"alice\n"]));
    ops.extend(browser(0, "bob"));
    for _ in 0..3 {
        ops.push(WebOp::Line(send(0, &b"x\n".repeat(100))));
        ops.push(WebOp::Line(drain(0)));
    }
    ops.extend([wclose(0), WebOp::Line(drain(0))]);
    all.push(("slow_browser", WebInput { throttle: ThrottleMode::Off, other_origin: false, ops }));

    let mut ops = upgrade_from_elsewhere(
        b"Host: chat.example\r\n",
        b"Connection: keep-alive, Upgrade\r\n",
        b"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n",
    );
    ops.extend([
        FRONTEND,
        wsay(0, &[&text("dave")]),
        FRONTEND,
        wsay(0, &[&text("alice: forged"), &text("one\nbob: forged")]),
        FRONTEND,
    ]);
    // The page's own origin is not on the list: 403.
    ops.extend(browser(1, "carol"));
    ops.extend(line(line_clients(&[b"alice\n"])));
    ops.extend([
        WebOp::Line(Op::Shutdown),
        WebOp::Transmit { web: 1, cap: 5 },
        WebOp::Line(tick(1000)),
        FRONTEND,
        WebOp::Line(tick(5000)),
        FRONTEND,
    ]);
    all.push(("other_origin_and_shutdown", WebInput { throttle: ThrottleMode::Tight, other_origin: true, ops }));

    all
}

/// Where the `web` target's seed files are: `seeds/web/{name}`.
pub fn web_seed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds").join("web")
}

// ----- the `member` target --------------------------------------------------------

fn m(room: u8, op: Op) -> MemberOp {
    MemberOp::Room { room, op }
}

/// A line client connects to `room` (as its `conn`) and asks for `nick`:
/// its claim and `joined` wait for the broker.
fn member_client(room: u8, conn: u8, nick: &[u8]) -> Vec<MemberOp> {
    vec![m(room, Op::Connect), m(room, drain(conn)), m(room, say(conn, &[nick]))]
}

const SETTLE: MemberOp = MemberOp::Settle;

fn chat(room: u8, conn: u8) -> MemberOp {
    MemberOp::Chat { room, conn }
}

pub fn member_scenarios() -> Vec<(&'static str, MemberInput)> {
    let mut all = Vec::new();

    // Two rooms, one client each: chat, /me, /nick, /who, /msg, /quit, all
    // through the broker.
    let mut ops = member_client(0, 0, b"alice\n");
    ops.extend(member_client(1, 0, b"bob\n"));
    ops.extend([
        SETTLE,
        chat(0, 0),
        chat(1, 0),
        chat(0, 0),
        SETTLE,
        m(1, say(0, &[b"/me waves\n"])),
        m(0, say(0, &[b"/NICK Carol\n"])),
        SETTLE,
        m(0, say(0, &[b"/who\n", b"/msg bob hi\n"])),
        chat(0, 0),
        SETTLE,
        m(1, say(0, &[b"/quit bye: now\n"])),
        SETTLE,
    ]);
    all.push(("two_rooms_chat", MemberInput { throttle: ThrottleMode::Off, rooms: 2, ops }));

    // Both rooms claim alice before either is answered; the broker answers
    // the later claim first, events reach the rooms one by one.
    let mut ops = member_client(0, 0, b"alice\n");
    ops.extend(member_client(1, 0, b"Alice\n"));
    ops.extend([
        MemberOp::Forward { room: 0, n: 0 },
        MemberOp::Forward { room: 1, n: 0 },
        MemberOp::Answer { pick: 1, verdict: 0 },
        MemberOp::Answer { pick: 0, verdict: 0 },
        MemberOp::Forward { room: 1, n: 1 },
        MemberOp::Deliver { room: 0, n: 1 },
        MemberOp::Deliver { room: 1, n: 1 },
        m(1, drain(0)),
        m(0, say(0, &[b"bob\n"])),
        MemberOp::Forward { room: 0, n: 0 },
        MemberOp::Answer { pick: 0, verdict: 3 },
        m(0, say(0, &[b"carol\n"])),
        chat(1, 0),
        SETTLE,
        chat(0, 0),
        chat(1, 0),
        MemberOp::Forward { room: 0, n: 0 },
        MemberOp::Deliver { room: 1, n: 0 },
        SETTLE,
    ]);
    all.push(("claims_late_and_refused", MemberInput { throttle: ThrottleMode::Default, rooms: 2, ops }));

    // Room 0 loses the broker while its client types; its lines wait.
    let mut ops = member_client(0, 0, b"alice\n");
    ops.extend(member_client(1, 0, b"bob\n"));
    ops.extend([
        SETTLE,
        MemberOp::Pause { room: 0 },
        MemberOp::Pause { room: 0 },
        chat(0, 0),
        chat(0, 0),
        m(0, say(0, &[b"hello", b"\n"])),
        chat(1, 0),
        MemberOp::Forward { room: 1, n: 0 },
        MemberOp::Deliver { room: 1, n: 0 },
        MemberOp::Frontend { write_cap: 4096 },
        MemberOp::Resume { room: 0 },
        MemberOp::Frontend { write_cap: 4096 },
        SETTLE,
        m(0, Op::Disconnect { conn: 0 }),
        SETTLE,
    ]);
    all.push(("pause_and_resume", MemberInput { throttle: ThrottleMode::Off, rooms: 2, ops }));

    // Three rooms, tight flood control: a burst of lines through the
    // outbox, a newcomer with history, renames across rooms.
    let mut ops = member_client(0, 0, b"alice\n");
    ops.extend(member_client(1, 0, b"bob\n"));
    ops.extend(member_client(2, 0, b"carol\n"));
    ops.extend([
        SETTLE,
        m(0, send(0, &b"x\n".repeat(40))),
        chat(0, 0),
        chat(2, 0),
        MemberOp::Forward { room: 0, n: 3 },
        MemberOp::Deliver { room: 2, n: 2 },
        MemberOp::Tick { ms: 500 },
        SETTLE,
        m(1, say(0, &[b"/nick alice\n"])),
        m(1, say(0, &[b"/nick ", b"Neural", b"\n"])),
        SETTLE,
    ]);
    ops.extend(member_client(2, 1, b"guest"));
    ops.extend([m(2, say(1, &[b"\n"])), SETTLE, chat(2, 1), SETTLE]);
    all.push(("three_rooms_throttled", MemberInput { throttle: ThrottleMode::Tight, rooms: 3, ops }));

    // A hostile peer: forged events in and out of order, raw bytes.
    let mut ops = member_client(0, 0, b"alice\n");
    ops.extend(member_client(1, 0, b"bob\n"));
    ops.extend([
        SETTLE,
        MemberOp::Forge { room: 0, recall: 0, event: 2 },
        MemberOp::Forge { room: 0, recall: 0, event: 5 },
        MemberOp::Forge { room: 0, recall: 1, event: 4 },
        MemberOp::Forge { room: 0, recall: 0, event: 7 },
        MemberOp::Forge { room: 0, recall: 0, event: 15 },
        MemberOp::Inject { room: 1, recall: 0, data: b"S alice \x1b[2J\n".to_vec() },
        MemberOp::Inject { room: 1, recall: 1, data: b"X bob".to_vec() },
        MemberOp::Forge { room: 0, recall: 0, event: 11 },
        SETTLE,
        chat(1, 0),
        SETTLE,
    ]);
    all.push(("hostile_peer", MemberInput { throttle: ThrottleMode::Off, rooms: 2, ops }));

    // A client gone while its claim is out, another gone while its join
    // is in the order; a seed client's variant.
    let mut ops = member_client(0, 0, b"alice\n");
    ops.extend([
        MemberOp::Forward { room: 0, n: 0 },
        m(0, Op::PeerClose { conn: 0 }),
        MemberOp::Answer { pick: 0, verdict: 0 },
        SETTLE,
    ]);
    ops.extend(member_client(0, 0, b"alice\n"));
    ops.extend([
        MemberOp::Forward { room: 0, n: 0 },
        MemberOp::Answer { pick: 0, verdict: 0 },
        m(0, Op::Disconnect { conn: 0 }),
        SETTLE,
    ]);
    ops.extend(member_client(1, 0, b"bob\n"));
    ops.extend([
        m(1, say(0, &[b"/nick ", b"Neural", b"\n"])),
        SETTLE,
        m(0, Op::Connect),
        m(0, send(0, b"Neural")),
        MemberOp::Tick { ms: 300 },
        SETTLE,
        MemberOp::Frontend { write_cap: 100 },
        SETTLE,
    ]);
    all.push(("claims_of_clients_gone", MemberInput { throttle: ThrottleMode::Default, rooms: 2, ops }));

    all
}

/// Where the `member` target's seed files are: `seeds/member/{name}`.
pub fn member_seed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds").join("member")
}
