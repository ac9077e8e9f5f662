//! The seed corpora of the `room`, `web` and `member` targets, written as scenarios
//! (`tests/scenarios/mod.rs`): each is run through its harness (so the
//! invariants hold on them), and its encoding must match
//! `seeds/room/{name}`, `seeds/web/{name}` or `seeds/member/{name}`. After changing a scenario or the input format,
//! rewrite the files with
//!
//! ```sh
//! cargo run --example write_seeds
//! ```

mod scenarios;

use chat_core_fuzz::member::MemberInput;
use chat_core_fuzz::web::WebInput;
use chat_core_fuzz::{run, run_member, run_web, Input};
use scenarios::{member_scenarios, member_seed_dir, scenarios, seed_dir, web_scenarios, web_seed_dir};

#[test]
fn encoding_round_trips() {
    for (name, input) in scenarios() {
        assert_eq!(Input::decode(&input.encode()), input, "{name}");
    }
    for (name, input) in web_scenarios() {
        assert_eq!(WebInput::decode(&input.encode()), input, "web/{name}");
    }
    for (name, input) in member_scenarios() {
        assert_eq!(MemberInput::decode(&input.encode()), input, "member/{name}");
    }
}

#[test]
fn seed_corpus_is_up_to_date() {
    for (name, input) in scenarios() {
        let path = seed_dir().join(name);
        let stored = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            stored == input.encode(),
            "{name}: seed file out of date; rewrite with `cargo run --example write_seeds`"
        );
    }
    for (name, input) in web_scenarios() {
        let path = web_seed_dir().join(name);
        let stored = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            stored == input.encode(),
            "web/{name}: seed file out of date; rewrite with `cargo run --example write_seeds`"
        );
    }
    for (name, input) in member_scenarios() {
        let path = member_seed_dir().join(name);
        let stored = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            stored == input.encode(),
            "member/{name}: seed file out of date; rewrite with `cargo run --example write_seeds`"
        );
    }
}

#[test]
fn scenarios_keep_the_invariants() {
    // The harness lets CHAT_FUZZ_IGNORE silence invariants (for fuzzing past
    // a known bug); here no environment may weaken a check.
    assert!(
        std::env::var_os("CHAT_FUZZ_IGNORE").is_none(),
        "CHAT_FUZZ_IGNORE is set: the seed scenarios are checked with every invariant; unset it"
    );
    for (name, input) in scenarios() {
        eprintln!("scenario {name}");
        run(&input);
    }
}

#[test]
fn web_scenarios_keep_the_invariants() {
    assert!(
        std::env::var_os("CHAT_FUZZ_IGNORE").is_none(),
        "CHAT_FUZZ_IGNORE is set: the seed scenarios are checked with every invariant; unset it"
    );
    for (name, input) in web_scenarios() {
        eprintln!("web scenario {name}");
        run_web(&input);
    }
}

#[test]
fn member_scenarios_keep_the_invariants() {
    assert!(
        std::env::var_os("CHAT_FUZZ_IGNORE").is_none(),
        "CHAT_FUZZ_IGNORE is set: the seed scenarios are checked with every invariant; unset it"
    );
    for (name, input) in member_scenarios() {
        eprintln!("member scenario {name}");
        run_member(&input);
    }
}
