//! The `room` fuzz target: a whole room driven by an arbitrary sequence of
//! operations, its invariants checked after every step. The harness is in
//! `src/lib.rs`; see `README.md`.
#![no_main]

use chat_core_fuzz::Input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: Input| {
    chat_core_fuzz::run(&input);
});
