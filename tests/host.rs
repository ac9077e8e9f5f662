//! `chat-server` and `chat-client` end to end, on ephemeral loopback ports,
//! with the tutorial's own Python programs in the room.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tests::{bin, chat_client, listening_addr, root, seed_client, web_addr, ChatServer, Proc, Raw, WAIT};

/// `chat-client ADDR --nick alice` run to its end, as it ends when it cannot
/// join: its exit code and what it said on stderr.
fn chat_client_ends(addr: &str) -> (Option<i32>, String) {
    let mut client = chat_client(addr, &["--nick", "alice"]);
    let code = client.wait().code();
    (code, client.stderr.text())
}

#[test]
fn tutorial_clients_and_chat_client_share_a_room() {
    let server = ChatServer::start(&[]);
    let port = server.port();
    let mut neural = seed_client("127.0.0.1", port, "Neural");
    neural.stdout.wait_for("Connected to server!\n");
    let mut nine = seed_client("127.0.0.1", port, "Nine");
    nine.stdout.wait_for("Connected to server!\n");
    neural.stdout.wait_for("Nine joined!\n");
    let mut alice = chat_client(&server.addr, &[]);
    alice.type_in("alice\n");
    alice.stdout.wait_for("Connected to server!\n");
    neural.stdout.wait_for("alice joined!\n");
    nine.stdout.wait_for("alice joined!\n");

    // Each wait includes the line's end: the tutorial's client prints the
    // text and the newline in two writes, and exits at once when its stdin
    // closes.
    let everyone = |line: &str, procs: [&Proc; 3]| {
        for proc in procs {
            proc.stdout.wait_for(line);
        }
    };
    neural.type_in("Hello\n");
    everyone("Neural: Hello\n", [&neural, &nine, &alice]);
    nine.type_in("What's up?\n");
    everyone("Nine: What's up?\n", [&neural, &nine, &alice]);
    alice.type_in("Not much! How about you?\n");
    everyone("alice: Not much! How about you?\n", [&neural, &nine, &alice]);

    nine.close_stdin();
    assert!(nine.wait().success());
    neural.stdout.wait_for("Nine left!\n");
    alice.stdout.wait_for("Nine left!\n");
    alice.close_stdin();
    assert!(alice.wait().success(), "chat-client exits 0 after /quit: {}", alice.stderr.text());
    neural.stdout.wait_for("alice left!\n");

    assert_eq!(
        neural.stdout.text(),
        "Choose your nickname: Neural joined!\nConnected to server!\nNine joined!\nalice joined!\n\
         Neural: Hello\nNine: What's up?\nalice: Not much! How about you?\nNine left!\nalice left!\n"
    );
    assert_eq!(
        nine.stdout.text(),
        "Choose your nickname: Nine joined!\nConnected to server!\nalice joined!\n\
         Neural: Hello\nNine: What's up?\nalice: Not much! How about you?\n"
    );
    assert_eq!(
        alice.stdout.text(),
        "alice joined!\nConnected to server!\nNeural: Hello\nNine: What's up?\n\
         alice: Not much! How about you?\nNine left!\nalice left!\n"
    );
    let log = server.proc.stderr.text();
    assert!(log.contains("Nickname is Neural") && log.contains("Connected with 127.0.0.1:"), "{log}");
}

#[test]
fn raw_line_client_gets_the_promised_bytes() {
    let server = ChatServer::start(&[]);
    let mut bob = Raw::connect(&server.addr);
    bob.expect("NICK");
    bob.send(b"bob\r\n");
    bob.expect("bob joined!\nConnected to server!\n");
    let mut carol = Raw::connect(&server.addr);
    carol.expect("NICK");
    carol.send(b"BOB\n");
    carol.expect("*** nickname \"BOB\" refused: it is taken\nNICK\n");
    carol.send(b"carol\n");
    carol.expect("carol joined!\nConnected to server!\n");
    bob.expect("carol joined!\n");
    bob.send("héllo \x1b[31mworld\x07\n".as_bytes());
    bob.expect("bob: héllo world\n");
    carol.expect("bob: héllo world\n");
    bob.send(format!("{}\n/who\n", "x".repeat(600)).as_bytes());
    bob.expect("*** line too long (over 512 bytes), not sent\n*** 2 in the room: bob carol\n");
    bob.send(b"/quit bye\n");
    bob.expect("bob left! (bye)\n");
    assert_eq!(bob.rest(), "", "the server closes after /quit");
    carol.expect("bob left! (bye)\n");
}

#[test]
fn chat_client_seed_dialect_on_the_tutorial_server() {
    let server = Proc::spawn(Command::new("python3").arg(root().join("tests/seed/server.py")).args(["127.0.0.1", "0"]));
    let addr = listening_addr(&server);
    let port = addr.rsplit(':').next().expect("port").to_string();
    let mut neural = seed_client("127.0.0.1", &port, "Neural");
    neural.stdout.wait_for("Connected to server!");
    let mut bob = chat_client(&addr, &["--dialect", "seed", "--nick", "bob"]);
    bob.stdout.wait_for("Connected to server!");
    neural.stdout.wait_for("bob joined!");
    bob.type_in("hi there\n");
    neural.stdout.wait_for("bob: hi there");
    bob.stdout.wait_for("bob: hi there");
    neural.type_in("Hello\n");
    bob.stdout.wait_for("Neural: Hello");
    neural.close_stdin();
    bob.stdout.wait_for("Neural left!");
    server.signal(15);
}

#[test]
fn sigterm_tells_clients_and_exits_zero() {
    let mut server = ChatServer::start(&[]);
    let mut alice = Raw::connect(&server.addr);
    alice.expect("NICK");
    alice.send(b"alice\n");
    alice.expect("alice joined!\nConnected to server!\n");
    let mut waiting = Raw::connect(&server.addr);
    waiting.expect("NICK");
    server.proc.signal(15);
    assert_eq!(alice.rest(), "*** the server is shutting down\n");
    assert_eq!(waiting.rest(), "*** the server is shutting down\n");
    let status = server.proc.wait();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn bind_failure_names_the_address_and_exits_nonzero() {
    let first = ChatServer::start(&[]);
    let mut second = Proc::spawn(Command::new(bin("host", "chat-server")).args(["--listen", &first.addr]));
    let status = second.wait();
    assert_eq!(status.code(), Some(1));
    assert_eq!(second.stderr.text(), format!("chat-server: address {} already in use\n", first.addr));
    assert_eq!(second.stdout.text(), "");
}

#[test]
fn the_web_listener_takes_browsers_and_tells_them_in_http_when_the_room_is_full() {
    let server = ChatServer::start(&["--capacity", "1", "--web", "127.0.0.1:0"]);
    let web = web_addr(&server.proc);
    assert!(web.starts_with("127.0.0.1:") && !web.ends_with(":0") && web != server.addr, "{web}");
    assert_eq!(server.proc.stdout.text(), format!("listening on {}\nweb on {web}\n", server.addr));

    // A browser takes the room's one slot: it is sent nothing until it asks.
    let browser = Raw::connect(&web);
    let log = server.proc.stderr.wait_for(" (web)\n");
    assert!(log.contains("Connected with 127.0.0.1:"), "{log}");
    // The room is full: another browser is told so in HTTP, a line client
    // as ever.
    let mut full = Raw::connect(&web);
    full.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        full.rest(),
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 38\r\n\
         Retry-After: 10\r\nConnection: close\r\n\r\n*** the room is full, try again later\n"
    );
    assert_eq!(Raw::connect(&server.addr).rest(), "*** the room is full, try again later\n");
    let log = server.proc.stderr.wait_for(": the room is full\n");
    assert!(log.contains(" (web): the room is full\n"), "{log}");
    // Its hang-up frees the slot for a line client.
    drop(browser);
    server.proc.stderr.wait_for(" disconnected: ");
    let mut alice = Raw::connect(&server.addr);
    alice.expect("NICK");
}

#[test]
fn a_web_bind_failure_names_the_address_and_exits_1() {
    let first = ChatServer::start(&[]);
    let mut second =
        Proc::spawn(Command::new(bin("host", "chat-server")).args(["--listen", "127.0.0.1:0", "--web", &first.addr]));
    let status = second.wait();
    assert_eq!(status.code(), Some(1));
    assert_eq!(second.stderr.text(), format!("chat-server: address {} already in use\n", first.addr));
    assert_eq!(second.stdout.text(), "");
}

#[test]
fn chat_client_names_the_address_it_cannot_reach() {
    // A port that was just free: bind, read it, release it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let addr = format!("127.0.0.1:{port}");
    let (code, err) = chat_client_ends(&addr);
    assert_eq!(code, Some(1));
    assert!(err.contains(&addr) && err.to_lowercase().contains("refused"), "{err}");
}

/// A terminal for `chat-client`: a tmux server of the test's own (its own
/// socket), killed and its socket removed when the test is done.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// Runs `chat-client ARGS` in a detached `width`×`height` window. A
    /// machine without tmux fails the test rather than pass it unrun
    /// (tests/run.sh installs tmux).
    fn client(args: &[&str], width: u16, height: u16) -> Tmux {
        assert!(Command::new("tmux").arg("-V").output().is_ok(), "tmux is missing (tests/run.sh installs it)");
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("chat-test-tmux-{}-{}", std::process::id(), COUNT.fetch_add(1, Ordering::Relaxed));
        let socket = std::env::temp_dir().join(name);
        let tmux = Tmux { socket };
        let mut command = vec![bin("host", "chat-client").display().to_string()];
        command.extend(args.iter().map(|a| a.to_string()));
        let (width, height) = (width.to_string(), height.to_string());
        let mut new = vec!["new-session", "-d", "-s", "chat", "-x", &width, "-y", &height];
        new.extend(command.iter().map(String::as_str));
        tmux.run(&new);
        // The pane stays when the client exits, so its last words can be read.
        tmux.run(&["set-option", "-t", "chat", "remain-on-exit", "on"]);
        tmux
    }

    /// Runs a tmux command on this server; its stdout.
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").arg("-S").arg(&self.socket).args(args).output().expect("run tmux");
        assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Presses keys (tmux key names: `Enter`, `C-c`; other words are typed).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "chat"];
        args.extend(keys);
        self.run(&args);
    }

    /// Types `text` as it is.
    fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "chat", "-l", text]);
    }

    /// Pastes `text` as a terminal does (newlines become Enter); `bracketed`:
    /// inside bracketed-paste marks, as the client asks for.
    fn paste(&self, text: &str, bracketed: bool) {
        self.run(&["set-buffer", "-b", "paste", text]);
        let mut args = vec!["paste-buffer", "-d", "-b", "paste", "-t", "chat"];
        if bracketed {
            args.push("-p");
        }
        self.run(&args);
    }

    /// The screen.
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "chat"])
    }

    /// The scrollback and the screen, wrapped rows joined (a terminal
    /// re-wraps what it shows when it is resized).
    fn history(&self) -> String {
        self.run(&["capture-pane", "-p", "-J", "-S", "-", "-t", "chat"])
    }

    /// Waits until the screen shows `needle`; the screen then.
    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return screen;
            }
            assert!(Instant::now() < deadline, "the screen never showed {needle:?}:\n{screen}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the client has exited.
    fn exited(&self) -> bool {
        self.run(&["list-panes", "-t", "chat", "-F", "#{pane_dead}"]).trim() == "1"
    }

    /// Waits until the client has exited. (tmux does not always learn its
    /// exit status: what it printed tells how it ended.)
    fn wait_exit(&self) {
        let deadline = Instant::now() + WAIT;
        while !self.exited() {
            assert!(Instant::now() < deadline, "chat-client did not exit:\n{}", self.screen());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").arg("-S").arg(&self.socket).arg("kill-server").output();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// bob, a raw line client, in the room; then alice's `chat-client --nick
/// alice ARGS` on a `width`×`height` terminal, in the room too.
fn bob_then_alice(server: &ChatServer, args: &[&str], width: u16, height: u16) -> (Raw, Tmux) {
    let mut bob = Raw::join(&server.addr, "bob");
    let mut command = vec![server.addr.as_str(), "--nick", "alice"];
    command.extend_from_slice(args);
    let tmux = Tmux::client(&command, width, height);
    bob.expect("alice joined!\n");
    tmux.wait_for("Connected to server!");
    (bob, tmux)
}

/// Reads lines until `count` of them start with `prefix`; returns those.
fn lines_from(raw: &mut Raw, prefix: &str, count: usize) -> Vec<String> {
    let mut lines = Vec::new();
    while lines.len() < count {
        let line = raw.line();
        assert!(!line.is_empty(), "the server closed; got {lines:?}");
        if let Some(text) = line.strip_prefix(prefix) {
            lines.push(text.trim_end_matches('\n').to_owned());
        }
    }
    lines
}

#[test]
fn chat_client_on_a_terminal_keeps_the_typed_line_intact() {
    let server = ChatServer::start(&[]);
    let tmux = Tmux::client(&[&server.addr, "--nick", "alice"], 100, 20);
    tmux.wait_for("Connected to server!");
    tmux.type_text("half typed");
    tmux.wait_for("half typed");
    let mut bob = Raw::connect(&server.addr);
    bob.expect("NICK");
    bob.send(b"bob\nhello from bob\n");
    let screen = tmux.wait_for("bob: hello from bob");
    let lines: Vec<&str> = screen.lines().filter(|l| !l.trim().is_empty()).collect();
    let typed = lines.iter().position(|l| l.contains("half typed")).expect("typed text on screen");
    let arrived = lines.iter().position(|l| l.contains("bob: hello from bob")).expect("message on screen");
    assert!(arrived < typed, "the message appears above the input line:\n{screen}");
    assert_eq!(lines.last().map(|l| l.trim_end()), Some(lines[typed].trim_end()), "{screen}");
    assert!(lines[typed].trim_end().ends_with("> half typed"), "{screen}");
    tmux.keys(&[" now", "Enter"]);
    bob.expect("bob joined!\nConnected to server!\nbob: hello from bob\nalice: half typed now\n");
}

#[test]
fn chat_client_sends_lines_typed_ahead_in_order() {
    let server = ChatServer::start(&[]);
    let mut bob = Raw::join(&server.addr, "bob");
    let tmux = Tmux::client(&[&server.addr, "--nick", "alice"], 80, 20);
    // Typed at once, before the client is even in the room.
    tmux.keys(&["one", "Enter", "two", "Enter", "three", "Enter"]);
    bob.expect("alice joined!\nalice: one\nalice: two\nalice: three\n");
    tmux.wait_for("alice: three");
    // And fast, in the room.
    tmux.keys(&["four", "Enter", "five", "Enter", "six", "Enter"]);
    bob.expect("alice: four\nalice: five\nalice: six\n");
}

#[test]
fn chat_client_sends_a_50_line_paste_whole_and_in_order_while_lines_arrive() {
    let server = ChatServer::start(&["--no-throttle"]);
    let (mut bob, tmux) = bob_then_alice(&server, &[], 80, 20);
    // Lines arrive while the paste is typed in.
    let chatter: String = (0..200).map(|i| format!("chatter {i}\n")).collect();
    bob.send(chatter.as_bytes());
    let pasted: Vec<String> = (1..=50).map(|i| format!("pasted line {i} of 50")).collect();
    tmux.paste(&format!("{}\n", pasted.join("\n")), false);
    assert_eq!(lines_from(&mut bob, "alice: ", 50), pasted);
    tmux.wait_for("alice: pasted line 50 of 50");
    let history = tmux.history();
    let shown: Vec<&str> =
        history.lines().filter_map(|l| l.split_once("bob: chatter ").map(|(_, n)| n.trim_end())).collect();
    let expected: Vec<String> = (0..200).map(|i| i.to_string()).collect();
    assert_eq!(shown, expected, "every line that arrived is on screen, in order:\n{history}");
}

#[test]
fn chat_client_sends_a_bracketed_paste_line_by_line_on_enter() {
    let server = ChatServer::start(&[]);
    let (mut bob, tmux) = bob_then_alice(&server, &[], 80, 20);
    tmux.paste("first\nsecond\nthird", true);
    tmux.wait_for("third");
    tmux.keys(&["Enter"]);
    bob.expect("alice: first\nalice: second\nalice: third\n");
}

#[test]
fn chat_client_ctrl_c_clears_the_line_and_ctrl_d_quits() {
    let server = ChatServer::start(&[]);
    let (mut bob, tmux) = bob_then_alice(&server, &[], 80, 20);
    tmux.type_text("never sent");
    tmux.wait_for("never sent");
    tmux.keys(&["C-c"]);
    // A person types on after a moment, not within the same millisecond.
    std::thread::sleep(Duration::from_millis(300));
    tmux.type_text("sent");
    tmux.keys(&["Enter"]);
    bob.expect("alice: sent\n");
    assert!(!tmux.exited(), "Ctrl-C does not quit:\n{}", tmux.screen());
    // Ctrl-D on a line with text deletes; on an empty line it leaves the room.
    tmux.type_text("x");
    tmux.keys(&["C-a", "C-d", "C-d"]);
    bob.expect("alice left!\n");
    tmux.wait_exit();
    let log = server.proc.stderr.wait_for("disconnected: quit");
    assert!(log.contains("disconnected: quit"), "{log}");
}

#[test]
fn chat_client_keeps_every_received_line_across_resizes_with_a_long_typed_line() {
    let server = ChatServer::start(&["--no-throttle"]);
    let (mut bob, tmux) = bob_then_alice(&server, &["--no-timestamps"], 60, 10);
    let typed: String = (0..15).map(|i| format!("word{i:02} ")).collect();
    tmux.type_text(&typed);
    tmux.wait_for("word14");
    let mut sent = 0;
    for (width, height) in [("40", "8"), ("25", "12"), ("70", "6"), ("60", "10")] {
        for _ in 0..10 {
            bob.send(format!("message {sent}\n").as_bytes());
            sent += 1;
        }
        tmux.wait_for(&format!("bob: message {}", sent - 1));
        tmux.run(&["resize-window", "-t", "chat", "-x", width, "-y", height]);
        std::thread::sleep(Duration::from_millis(300));
    }
    bob.send(b"last\n");
    tmux.wait_for("bob: last");
    let history = tmux.history();
    assert_eq!(history.matches("bob: message ").count(), sent, "each received line shown once:\n{history}");
    let mut at = 0;
    for i in 0..sent {
        let needle = format!("bob: message {i}");
        let found = history[at..]
            .match_indices(&needle)
            .find(|(start, _)| !history[at + start + needle.len()..].starts_with(|c: char| c.is_ascii_digit()));
        let Some((start, _)) = found else { panic!("{needle:?} is not on screen after the one before:\n{history}") };
        at += start + needle.len();
    }
    assert!(history.contains("Connected to server!"), "nothing was erased:\n{history}");
    tmux.keys(&["Enter"]);
    assert_eq!(lines_from(&mut bob, "alice: ", 1), [typed]);
}

#[test]
fn chat_client_sends_a_long_line_as_several_whole_lines() {
    let server = ChatServer::start(&[]);
    let mut bob = Raw::join(&server.addr, "bob");
    let mut alice = chat_client(&server.addr, &["--nick", "alice"]);
    bob.expect("alice joined!\n");
    // 1,300 bytes, two-byte characters among one-byte ones: no cut may split one.
    let line: String = "aé".repeat(433) + "a";
    assert_eq!(line.len(), 1300);
    alice.type_in(&format!("{line}\n"));
    let got = lines_from(&mut bob, "alice: ", 3);
    assert!(got.iter().all(|piece| piece.len() <= 512), "{got:?}");
    assert_eq!(got.concat(), line);
    alice.close_stdin();
    assert!(alice.wait().success());
}

#[test]
fn a_thousand_clients_each_say_a_line_and_everyone_hears_every_line() {
    const N: usize = 1000;
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let server = ChatServer::start(&["--capacity", "1024"]);
    let fds_before = server.open_fds();
    let mut clients: Vec<TcpStream> = Vec::with_capacity(N);
    for i in 0..N {
        let mut stream = TcpStream::connect(&server.addr).expect("connect");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut nick = [0; 4];
        stream.read_exact(&mut nick).expect("read NICK");
        assert_eq!(&nick, b"NICK");
        stream.write_all(format!("u{i}\n").as_bytes()).expect("send nick");
        clients.push(stream);
    }
    for (i, stream) in clients.iter_mut().enumerate() {
        stream.write_all(format!("line from u{i}\n").as_bytes()).expect("say");
        stream.set_nonblocking(true).expect("nonblocking");
    }
    let mut heard: Vec<Vec<u8>> = vec![Vec::new(); N];
    let mut done = vec![false; N];
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut buf = vec![0; 65536];
    while done.iter().any(|d| !d) {
        assert!(Instant::now() < deadline, "{} clients still missing lines", done.iter().filter(|d| !**d).count());
        let mut idle = true;
        for (i, stream) in clients.iter_mut().enumerate() {
            if done[i] {
                continue;
            }
            match stream.read(&mut buf) {
                Ok(0) => panic!("server closed client {i}"),
                Ok(n) => {
                    idle = false;
                    heard[i].extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&heard[i]);
                    done[i] = text.matches(": line from u").count() >= N;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("client {i}: {e}"),
            }
        }
        if idle {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    for (i, bytes) in heard.iter().enumerate() {
        let text = String::from_utf8_lossy(bytes);
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(": line from u")).collect();
        let unique: HashSet<&str> = lines.iter().copied().collect();
        assert_eq!((lines.len(), unique.len()), (N, N), "client {i} heard duplicates or gaps");
        assert!(lines
            .iter()
            .all(|l| l.split_once(": ").is_some_and(|(nick, rest)| rest == format!("line from {nick}"))));
    }
    drop(clients);
    let deadline = Instant::now() + WAIT;
    while server.open_fds() != fds_before {
        assert!(Instant::now() < deadline, "descriptors: {} before, {} after", fds_before, server.open_fds());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `line` starts with a local time stamp, `HH:MM `.
fn stamped(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 6
        && b[..2].iter().all(u8::is_ascii_digit)
        && b[2] == b':'
        && b[3..5].iter().all(u8::is_ascii_digit)
        && b[5] == b' '
}

#[test]
fn chat_client_stamps_lines_with_the_time_on_a_terminal_only_unless_asked() {
    let server = ChatServer::start(&[]);
    let stamped_tmux = Tmux::client(&[&server.addr, "--nick", "alice"], 80, 10);
    let screen = stamped_tmux.wait_for("Connected to server!");
    let line = screen.lines().find(|l| l.contains("Connected to server!")).unwrap_or_default();
    assert!(stamped(line) && line.ends_with(" Connected to server!"), "{screen}");
    let plain_tmux = Tmux::client(&[&server.addr, "--nick", "bob", "--no-timestamps"], 80, 10);
    let screen = plain_tmux.wait_for("Connected to server!");
    assert!(screen.lines().any(|l| l == "Connected to server!"), "{screen}");

    // Piped: none, unless --timestamps.
    let mut piped = chat_client(&server.addr, &["--nick", "carol"]);
    piped.stdout.wait_for("Connected to server!\n");
    let mut asked = chat_client(&server.addr, &["--nick", "dave", "--timestamps"]);
    let out = asked.stdout.wait_for("Connected to server!\n");
    assert!(out.lines().all(stamped), "{out}");
    piped.close_stdin();
    assert!(piped.wait().success());
    assert_eq!(piped.stdout.text(), "carol joined!\nConnected to server!\ndave joined!\ncarol left!\n");
    asked.close_stdin();
    assert!(asked.wait().success());
    let out = asked.stdout.text();
    assert!(out.lines().all(stamped) && out.contains(" carol left!\n") && out.ends_with(" dave left!\n"), "{out}");
}

#[test]
fn chat_client_highlights_its_nickname_with_a_bell_and_completes_nicknames() {
    let server = ChatServer::start(&[]);
    let (mut bob, tmux) = bob_then_alice(&server, &[], 80, 10);
    let bell = || tmux.run(&["display-message", "-p", "-t", "chat", "#{window_bell_flag}"]).trim().to_owned();
    assert_eq!(bell(), "0");
    bob.send(b"hi Alice, and hi malice\n");
    tmux.wait_for("malice");
    let styled = tmux.run(&["capture-pane", "-p", "-e", "-t", "chat"]);
    // tmux writes its own codes to end the reverse video.
    assert!(styled.contains("hi \x1b[7mAlice\x1b["), "{styled:?}");
    assert!(styled.contains("and hi malice") && !styled.contains("\x1b[7mmalice"), "{styled:?}");
    assert_eq!(bell(), "1", "the bell rang");
    // Tab: bob is in the room (he joined after alice and spoke).
    tmux.type_text("hey b");
    tmux.keys(&["Tab"]);
    tmux.type_text("how are you");
    tmux.keys(&["Enter"]);
    assert_eq!(lines_from(&mut bob, "alice: ", 1), ["hey bob how are you"]);

    let quiet = Tmux::client(&[&server.addr, "--nick", "carol", "--no-bell"], 80, 10);
    quiet.wait_for("Connected to server!");
    bob.send(b"carol?\n");
    quiet.wait_for("bob: carol?");
    let styled = quiet.run(&["capture-pane", "-p", "-e", "-t", "chat"]);
    assert!(styled.contains("bob: \x1b[7mcarol\x1b["), "{styled:?}");
    assert_eq!(quiet.run(&["display-message", "-p", "-t", "chat", "#{window_bell_flag}"]).trim(), "0");
}

#[test]
fn chat_client_reports_a_refused_nickname_and_a_shutdown_once() {
    let server = ChatServer::start(&[]);
    let _bob = Raw::join(&server.addr, "bob");
    let mut refused = chat_client(&server.addr, &["--nick", "BOB"]);
    assert_eq!(refused.wait().code(), Some(1));
    assert_eq!(refused.stdout.text(), "");
    assert_eq!(refused.stderr.text(), "chat-client: nickname \"BOB\" refused: it is taken\n");

    let mut alice = chat_client(&server.addr, &["--nick", "alice"]);
    alice.stdout.wait_for("Connected to server!\n");
    server.proc.signal(15);
    assert_eq!(alice.wait().code(), Some(1));
    assert_eq!(alice.stdout.text(), "alice joined!\nConnected to server!\n*** the server is shutting down\n");
    assert_eq!(alice.stderr.text(), format!("chat-client: connection to {} closed by the server\n", server.addr));
}

#[test]
fn chat_client_rejects_a_bad_port_like_any_bad_command_line() {
    let (code, err) = chat_client_ends("127.0.0.1:99999");
    assert_eq!(code, Some(2));
    assert!(err.contains("\"99999\" is not a port"), "{err}");
}

#[test]
fn chat_client_reconnects_as_the_same_nickname() {
    let mut first = ChatServer::start(&[]);
    let addr = first.addr.clone();
    let mut alice = chat_client(&addr, &["--nick", "alice", "--reconnect"]);
    alice.stdout.wait_for("Connected to server!\n");
    first.proc.signal(15);
    assert!(first.proc.wait().success());
    let log = first.proc.stderr.text();
    assert!(log.contains("shutting down: telling 1 client\n"), "{log}");
    alice.stdout.wait_for(&format!("*** connection to {addr} closed by the server; reconnecting\n"));
    // The same address again.
    let second = Proc::spawn(Command::new(bin("host", "chat-server")).args(["--listen", &addr]));
    assert_eq!(listening_addr(&second), addr);
    let out = alice.stdout.wait_for_n("Connected to server!\n", 2);
    assert!(out.contains(&format!("*** reconnected to {addr}\nalice joined!\nConnected to server!\n")), "{out}");
    let second = ChatServer { proc: second, addr: addr.clone(), tls: None };
    let mut bob = Raw::join(&second.addr, "bob");
    alice.type_in("back again\n");
    assert_eq!(lines_from(&mut bob, "alice: ", 1), ["back again"]);
    alice.close_stdin();
    assert!(alice.wait().success(), "{}", alice.stderr.text());
}

#[test]
fn chat_client_on_a_terminal_reports_a_shutdown_once_below_the_input_line() {
    let server = ChatServer::start(&[]);
    let (_bob, tmux) = bob_then_alice(&server, &["--no-timestamps"], 80, 10);
    tmux.type_text("half typed");
    tmux.wait_for("half typed");
    server.proc.signal(15);
    tmux.wait_exit();
    let screen = tmux.screen();
    // tmux's own last line aside.
    let lines: Vec<&str> =
        screen.lines().map(str::trim_end).filter(|l| !l.is_empty() && !l.starts_with("Pane is dead")).collect();
    let end = [
        "*** the server is shutting down",
        "> half typed",
        &format!("chat-client: connection to {} closed by the server", server.addr),
    ];
    assert!(lines.ends_with(&end), "{screen}");
}

#[test]
fn chat_client_gives_a_bare_ipv6_address_the_default_port() {
    // Nothing listens there (or IPv6 is off): the error names the address tried.
    let (code, err) = chat_client_ends("::1");
    assert_eq!(code, Some(1));
    assert!(err.starts_with("chat-client: cannot connect to [::1]:55555: "), "{err}");
}

#[test]
fn chat_client_sends_the_room_password_after_the_nickname() {
    let file = std::env::temp_dir().join(format!("chat-test-password-{}", std::process::id()));
    std::fs::write(&file, "sesame\n").expect("write the password file");
    let server = ChatServer::start(&["--password-file", &file.display().to_string()]);
    let _ = std::fs::remove_file(&file);
    let mut bob = Raw::connect(&server.addr);
    bob.expect("NICK");
    bob.send(b"bob\n");
    bob.expect("*** this room has a password: send it as your next line\n");
    bob.send(b"sesame\n");
    bob.expect("bob joined!\nConnected to server!\n");

    // Piped: the line after the nickname.
    let mut alice = chat_client(&server.addr, &[]);
    alice.type_in("alice\nsesame\nhi from a script\n");
    assert_eq!(lines_from(&mut bob, "alice: ", 1), ["hi from a script"]);
    alice.close_stdin();
    assert!(alice.wait().success(), "{}", alice.stderr.text());

    // A wrong one: a script has no other.
    let mut mallory = chat_client(&server.addr, &["--nick", "mallory"]);
    mallory.type_in("guess\nnever sent\n");
    assert_eq!(mallory.wait().code(), Some(1));
    assert_eq!(mallory.stderr.text(), "chat-client: the room's password (the line after the nickname) was refused\n");

    // Typed at its prompt, again after a wrong one.
    let tmux = Tmux::client(&[&server.addr, "--nick", "carol"], 80, 10);
    tmux.wait_for("\nPassword:");
    tmux.keys(&["wrong", "Enter"]);
    tmux.wait_for("wrong password, 2 tries left");
    tmux.keys(&["sesame", "Enter"]);
    tmux.wait_for("Connected to server!");
    tmux.keys(&["hi from a terminal", "Enter"]);
    assert_eq!(lines_from(&mut bob, "carol: ", 1), ["hi from a terminal"]);
}

/// A browser's WebSocket upgrade from the page at `origin`: what the
/// server answers, up to the end of its head.
fn upgrade_from(web: &str, origin: &str) -> String {
    let mut browser = Raw::connect(web);
    browser.send(
        format!(
            "GET /ws HTTP/1.1\r\nHost: {web}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n"
        )
        .as_bytes(),
    );
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        head += &browser.line();
    }
    head
}

#[test]
fn the_web_origin_list_decides_which_pages_may_open_the_websocket() {
    let own = ChatServer::start(&["--web", "127.0.0.1:0"]);
    let web = web_addr(&own.proc);
    assert!(upgrade_from(&web, &format!("http://{web}")).starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
    assert!(upgrade_from(&web, "http://evil.example").starts_with("HTTP/1.1 403 Forbidden\r\n"));

    let listed = ChatServer::start(&["--web", "127.0.0.1:0", "--web-origin", "https://chat.example.org"]);
    let web = web_addr(&listed.proc);
    assert!(upgrade_from(&web, "https://chat.example.org").starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
    assert!(
        upgrade_from(&web, &format!("http://{web}")).starts_with("HTTP/1.1 403 Forbidden\r\n"),
        "with a list, only the list"
    );
}
