//! What the `room` target found in the core, as scenarios replayed through
//! the harness with every invariant: regression tests since the core's fix
//! (e08fc92; the core's own test is in `core/src/tests.rs`). A new find goes
//! here `#[ignore = "core bug: …"]` until fixed.

use chat_core_fuzz::{run, Input, Op, ThrottleMode};

/// alice and bob (line clients) in a room whose log keeps 64 lines,
/// everything read; bob says `lines` lines and reads none of them back;
/// then his connection fails (`Room::disconnect`).
fn disconnect_while_slowest(lines: usize) -> Input {
    let mut ops = vec![
        Op::Connect,
        Op::Drain { conn: 0, cap: 4095 },
        Op::Send { conn: 0, data: b"alice\n".to_vec() },
        Op::Drain { conn: 0, cap: 4095 },
        Op::Connect,
        Op::Drain { conn: 1, cap: 4095 },
        Op::Send { conn: 1, data: b"bob\n".to_vec() },
        Op::Drain { conn: 1, cap: 4095 },
        Op::Drain { conn: 0, cap: 4095 },
    ];
    let mut left = lines;
    while left > 0 {
        let n = left.min(127);
        ops.push(Op::Send { conn: 1, data: b"x\n".repeat(n) });
        ops.push(Op::Drain { conn: 0, cap: 4095 });
        left -= n;
    }
    ops.extend([Op::Disconnect { conn: 1 }, Op::Drain { conn: 0, cap: 4095 }]);
    Input { throttle: ThrottleMode::Off, ops }
}

/// With 64 lines, bob's cursor is on the oldest line of the log when his
/// connection fails: `Room::disconnect` calls `announce_left`, whose
/// `bob left!` line overwrites that oldest line. Before e08fc92,
/// `catch_laggards` then dropped bob as too slow (`announce`,
/// `unannounced += 1`) before `release` freed his slot, and the pending
/// announcement said `bob left!` a second time (tag `left-twice`); the same
/// through `Room::pump` on a write or read error (the fuzzer's input), and
/// to a browser through `close_socket` (`web_findings.rs`).
#[test]
fn a_client_disconnected_while_slowest_leaves_once() {
    run(&disconnect_while_slowest(64));
}

/// One line fewer or more, the same scenario keeps every invariant.
#[test]
fn the_neighbouring_cases_keep_the_invariants() {
    assert!(std::env::var_os("CHAT_FUZZ_IGNORE").is_none(), "unset CHAT_FUZZ_IGNORE");
    for lines in [0, 63, 65] {
        run(&disconnect_while_slowest(lines));
    }
}
