//! The `member` fuzz target: two or three member rooms (`Room::join_cluster`)
//! with their clients and a simulated broker between them, driven by an
//! arbitrary sequence of operations, the invariants checked after every
//! step. The harness is in `src/member.rs`; see `README.md`.
#![no_main]

use chat_core_fuzz::member::MemberInput;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: MemberInput| {
    chat_core_fuzz::run_member(&input);
});
