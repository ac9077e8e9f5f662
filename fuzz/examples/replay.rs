//! Replays fuzzer inputs (files) through the harness outside libFuzzer:
//! `CHAT_FUZZ_TRACE=1 cargo run --example replay -- FILE...` prints every
//! operation and every line each client received. Files are inputs of the
//! `room` target, or of the `web` target after `--web` (or when their path
//! has a `web` directory: `seeds/web/`, `artifacts/web/`, `corpus/web/`), or
//! of the `member` target after `--member` (or under a `member` directory).

fn main() {
    let mut web = false;
    let mut member = false;
    for arg in std::env::args().skip(1) {
        if arg == "--web" {
            web = true;
            continue;
        }
        if arg == "--member" {
            member = true;
            continue;
        }
        let data = std::fs::read(&arg).unwrap_or_else(|e| panic!("{arg}: {e}"));
        if member || std::path::Path::new(&arg).components().any(|c| c.as_os_str() == "member") {
            let input = chat_core_fuzz::member::MemberInput::decode(&data);
            eprintln!("== {arg} (member): {} operations", input.ops.len());
            chat_core_fuzz::run_member(&input);
        } else if web || std::path::Path::new(&arg).components().any(|c| c.as_os_str() == "web") {
            let input = chat_core_fuzz::web::WebInput::decode(&data);
            eprintln!("== {arg} (web): {} operations", input.ops.len());
            chat_core_fuzz::run_web(&input);
        } else {
            let input = chat_core_fuzz::Input::decode(&data);
            eprintln!("== {arg}: {} operations", input.ops.len());
            chat_core_fuzz::run(&input);
        }
    }
}
