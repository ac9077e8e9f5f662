//! `chat-client`: chat in a chat room from a terminal or a script.
//!
//! Everything is in [`host::client`]; `chat-client --help` says how to use it.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    env_logger::init();
    host::client::run(host::client::Options::parse())
}
