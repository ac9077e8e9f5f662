//! Writes the seed corpora of the `room`, `web` and `member` targets
//! (`seeds/room/{name}`, `seeds/web/{name}`, `seeds/member/{name}`) from
//! the scenarios in `tests/scenarios/mod.rs`, after a scenario or the input
//! format changed: `cargo run --example write_seeds`. `cargo test` then
//! checks the files against the scenarios (`tests/seeds.rs`).

#[path = "../tests/scenarios/mod.rs"]
mod scenarios;

fn main() {
    let dir = scenarios::seed_dir();
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for (name, input) in scenarios::scenarios() {
        let path = dir.join(name);
        std::fs::write(&path, input.encode()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        println!("{}", path.display());
    }
    let dir = scenarios::web_seed_dir();
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for (name, input) in scenarios::web_scenarios() {
        let path = dir.join(name);
        std::fs::write(&path, input.encode()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        println!("{}", path.display());
    }
    let dir = scenarios::member_seed_dir();
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for (name, input) in scenarios::member_scenarios() {
        let path = dir.join(name);
        std::fs::write(&path, input.encode()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        println!("{}", path.display());
    }
}
