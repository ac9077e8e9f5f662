//! Replays fuzzer inputs (files) through the harness outside libFuzzer:
//! `CHAT_FUZZ_TRACE=1 cargo run --example replay -- FILE...` prints every
//! operation and every line each client received.

fn main() {
    for path in std::env::args().skip(1) {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let input = chat_core_fuzz::Input::decode(&data);
        eprintln!("== {path}: {} operations", input.ops.len());
        chat_core_fuzz::run(&input);
    }
}
