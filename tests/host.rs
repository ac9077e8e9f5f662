//! `chat-server` and `chat-client` end to end, on ephemeral loopback ports,
//! with the tutorial's own Python programs in the room.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use tests::{bin, in_ci, listening_addr, root, seed_client, web_addr, ChatServer, Proc, Raw, WAIT};

/// `chat-client` in pipe mode (stdin not a terminal).
fn chat_client(addr: &str, args: &[&str]) -> Proc {
    Proc::spawn(Command::new(bin("host", "chat-client")).arg(addr).args(args))
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
    let mut client = chat_client(&addr, &["--nick", "alice"]);
    let status = client.wait();
    assert!(!status.success());
    let err = client.stderr.text();
    assert!(err.contains(&addr) && err.to_lowercase().contains("refused"), "{err}");
}

#[test]
fn chat_client_on_a_terminal_keeps_the_typed_line_intact() {
    if Command::new("tmux").arg("-V").output().is_err() {
        assert!(!in_ci(), "tmux is missing (tests/run.sh installs it)");
        eprintln!("skipped: tmux is not installed");
        return;
    }
    let server = ChatServer::start(&[]);
    let session = format!("chat-test-{}", std::process::id());
    let tmux = |args: &[&str]| {
        let out = Command::new("tmux").args(args).output().expect("run tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    struct Session(String);
    impl Drop for Session {
        fn drop(&mut self) {
            let _ = Command::new("tmux").args(["kill-session", "-t", &self.0]).status();
        }
    }
    let client = format!("{} {} --nick alice", bin("host", "chat-client").display(), server.addr);
    tmux(&["new-session", "-d", "-s", &session, "-x", "100", "-y", "20", &client]);
    let _guard = Session(session.clone());
    let pane = || tmux(&["capture-pane", "-p", "-t", &session]);
    let wait_pane = |needle: &str| {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = pane();
            if screen.contains(needle) {
                return screen;
            }
            assert!(Instant::now() < deadline, "pane never showed {needle:?}:\n{screen}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_pane("Connected to server!");
    tmux(&["send-keys", "-t", &session, "-l", "half typed"]);
    wait_pane("half typed");
    let mut bob = Raw::connect(&server.addr);
    bob.expect("NICK");
    bob.send(b"bob\nhello from bob\n");
    let screen = wait_pane("bob: hello from bob");
    let lines: Vec<&str> = screen.lines().filter(|l| !l.trim().is_empty()).collect();
    let typed = lines.iter().position(|l| l.contains("half typed")).expect("typed text on screen");
    let arrived = lines.iter().position(|l| l.contains("bob: hello from bob")).expect("message on screen");
    assert!(arrived < typed, "the message appears above the input line:\n{screen}");
    assert_eq!(lines.last().map(|l| l.trim_end()), Some(lines[typed].trim_end()), "{screen}");
    assert!(lines[typed].ends_with("half typed") || lines[typed].trim_end().ends_with("half typed"), "{screen}");
    tmux(&["send-keys", "-t", &session, " now", "Enter"]);
    bob.expect("bob joined!\nConnected to server!\nbob: hello from bob\nalice: half typed now\n");
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
