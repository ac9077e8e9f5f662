//! The `web` fuzz target: browsers on the web listener (HTTP requests, then
//! WebSocket frames) and line clients in one room, driven by an arbitrary
//! sequence of operations, the invariants checked after every step. The
//! harness is in `src/web.rs`; see `README.md`.
#![no_main]

use chat_core_fuzz::web::WebInput;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: WebInput| {
    chat_core_fuzz::run_web(&input);
});
