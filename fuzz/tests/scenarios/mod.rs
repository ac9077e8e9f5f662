//! The seed scenarios of the `room` target, shared by the seed tests
//! (`tests/seeds.rs`) and the tool that writes the seed files
//! (`examples/write_seeds.rs`).

use std::path::PathBuf;

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
