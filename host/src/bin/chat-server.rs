//! The chat server on a laptop (not yet: see issue "Host").
fn main() {
    eprintln!("chat-server: not yet; the core engine is in `core` (cargo test -p core)");
    std::process::exit(2);
}
