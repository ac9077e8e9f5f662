//! Writes the seed corpus of the `room` target (`seeds/room/{name}`) from
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
}
