//! The binaries' command lines: each names itself in `--version`, and the
//! two servers share the room's flags (one vocabulary, from `room-args`).

use std::path::PathBuf;
use std::process::Command;

use tests::bin;

/// The room's flags, the same in `chat-server` and `tap-server`.
const ROOM_FLAGS: [&str; 6] = ["--capacity", "--ring", "--burst", "--rate", "--no-throttle", "--registration-timeout"];

fn tap_server() -> PathBuf {
    bin("embedded", "tap-server")
}

/// What `program ARGS` prints on stdout; it must succeed.
fn stdout(program: &PathBuf, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("run {program:?}: {e}"));
    assert!(output.status.success(), "{program:?} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn version_names_the_binary() {
    let binaries = [
        ("chat-server", bin("host", "chat-server")),
        ("chat-client", bin("host", "chat-client")),
        ("tap-server", tap_server()),
    ];
    for (name, path) in binaries {
        assert_eq!(stdout(&path, &["--version"]), format!("{name} {}\n", env!("CARGO_PKG_VERSION")));
    }
}

#[test]
fn both_servers_take_the_rooms_flags() {
    for path in [bin("host", "chat-server"), tap_server()] {
        let help = stdout(&path, &["--help"]);
        for flag in ROOM_FLAGS {
            assert!(help.contains(flag), "{path:?} --help lacks {flag}:\n{help}");
        }
    }
    // tap-server's own bound on the room's size (its sockets' memory).
    let tap = tap_server();
    let output =
        Command::new(&tap).args(["--capacity", "1025"]).output().unwrap_or_else(|e| panic!("run {tap:?}: {e}"));
    assert!(!output.status.success(), "tap-server took a room over its bound of 1024");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--capacity"), "{output:?}");
}

#[test]
fn both_servers_say_how_to_serve_browsers() {
    let help = stdout(&bin("host", "chat-server"), &["--help"]);
    assert!(help.contains("--web <ADDRESS:PORT>"), "chat-server --help lacks --web:\n{help}");
    let help = stdout(&tap_server(), &["--help"]);
    assert!(help.contains("--web-port <PORT>") && help.contains("[default: 80]"), "tap-server --help:\n{help}");
    let tap = tap_server();
    let output = Command::new(&tap)
        .args(["--port", "8080", "--web-port", "8080"])
        .output()
        .unwrap_or_else(|e| panic!("run {tap:?}: {e}"));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "tap-server: --web-port 8080 is the chat port too\n");
}
