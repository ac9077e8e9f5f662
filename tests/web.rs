//! The chat page (`core/web/chat.html`) in a real browser: Debian's
//! Chromium, headless, driven over WebDriver (`tests/support/webdriver.rs`),
//! in one room with a line client and the tutorial's client, on every
//! frontend: `chat-server --web`, `tap-server --web-port 80` and the
//! firmware in QEMU (port 80).
//!
//! One conversation, the same on each: the page asks for a nickname, shows
//! a refusal and asks again, shows the history block, chats both ways with
//! whole transcripts compared on every side, sends a command as typed,
//! shows hostile HTML as text without making elements of it or running it,
//! reconnects after a server restart (chat-server and tap-server), and
//! leaves with `/quit`. Everything is typed into the element that has the
//! focus: the page is used with the keyboard alone. On chat-server, a room
//! with a password too: the page asks for it, shows why a wrong one was
//! refused, sends it again when it reconnects, and stays out when kicked.
//!
//! Every browser test needs Debian's chromium and chromium-driver, and the
//! namespace tests root and `/dev/net/tun` too (and QEMU): they are
//! `#[ignore]`d, `cargo test -- --include-ignored` runs them (tests/run.sh
//! installs what they need), and there a missing prerequisite fails them.
//! The namespace tests run the browser inside the namespace (chromedriver
//! is started there and reached through a relay on a Unix socket, see
//! `tests::webdriver`).

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use tests::board::{firmware, require_tools, Board};
use tests::netns::{Clients, Netns, LINE_CLIENT, PORT, SERVER_ADDRESS, SERVER_IP, TAP};
use tests::webdriver::{self, Browser, TempDir};
use tests::{bin, root, Proc, Raw, Transcript, WAIT};

/// Enter, as WebDriver types it.
const ENTER: &str = "\u{E007}";

/// The hostile lines another client sends; the page must show them as text.
const HOSTILE: [&str; 2] = [
    r#"<img src=x onerror="document.title='pwned';alert(1)">"#,
    "<script>document.title='pwned';alert(1)</script><b>bold?</b>",
];

/// Where the page and the room are, and how clients reach them.
trait Site {
    /// The page's address, as the browser reaches it.
    fn url(&self) -> String;
    /// The chat port's host and port, as the clients reach it.
    fn chat(&self) -> (String, String);
    /// A command that runs `program` where the clients run.
    fn command(&self, program: &str) -> Command;
    /// Stops the server (SIGTERM) and starts it again on the same
    /// addresses; false where the test does not do that (the board).
    fn restart(&mut self) -> bool;

    /// A line client ([`LINE_CLIENT`]), as `nc` would be.
    fn line_client(&self) -> Proc {
        let (host, port) = self.chat();
        Proc::spawn(self.command("python3").args(["-c", LINE_CLIENT, &host, &port]))
    }

    /// A line client registered as `nick`, with its transcript so far;
    /// `history` tells whether the room has had lines, which it is shown.
    fn joined(&self, nick: &str, history: bool) -> (Proc, Transcript) {
        let mut proc = self.line_client();
        let mut seen = Transcript::new(nick, &proc.stdout);
        seen.see("NICK");
        proc.type_in(&format!("{nick}\n"));
        if history {
            seen.see_joined_with_history(nick);
        } else {
            seen.see(&format!("{nick} joined!\nConnected to server!\n"));
        }
        (proc, seen)
    }

    /// The tutorial's client, its nickname typed in.
    fn seed_client(&self, nick: &str) -> Proc {
        let (host, port) = self.chat();
        let script = root().join("tests/seed/client.py");
        let mut proc = Proc::spawn(self.command("python3").arg(script).args([host, port]));
        proc.type_in(&format!("{nick}\n"));
        proc
    }
}

/// The page in the browser, and every line it must show so far.
struct Page {
    browser: Browser,
    expected: Vec<String>,
}

/// The page's log: each line's classes and text.
const READ_LOG: &str = "return [...document.querySelectorAll('#log li')]\
    .map(li => [li.className, li.querySelector('.text').textContent])";

impl Page {
    /// Opens `url`, retrying while the server is not up yet, until the
    /// page asks for a nickname with the focus in the nickname field.
    fn open(browser: Browser, url: &str) -> Page {
        let deadline = Instant::now() + WAIT;
        loop {
            let loaded = browser.goto(url);
            if loaded.is_ok() && browser.run("return !!document.getElementById('log')", json!([])) == json!(true) {
                break;
            }
            assert!(Instant::now() < deadline, "no page at {url}: {loaded:?} {}", browser.page_text());
            thread::sleep(Duration::from_millis(200));
        }
        let page = Page { browser, expected: Vec::new() };
        page.asked_for_a_nickname("");
        page
    }

    /// Waits until the nickname form is shown, focused, with `why` as the
    /// reason of the last refusal.
    fn asked_for_a_nickname(&self, why: &str) {
        self.asked("Nickname", "text", why);
    }

    /// Waits until the form asks for `label` (its input of `kind`),
    /// focused, with `why` as the reason of the last refusal.
    fn asked(&self, label: &str, kind: &str, why: &str) {
        let script = format!(
            "const $ = id => document.getElementById(id); \
             return !$('nick-form').hidden && $('say-form').hidden && document.activeElement.id === 'nick' \
             && $('nick-label').textContent === {} && $('nick').type === {} && $('nick-error').textContent === {}",
            json!(label),
            json!(kind),
            json!(why)
        );
        self.browser.wait_until(&format!("the form asking for {label}, focused, saying {why:?}"), &script);
    }

    /// Types `text` and Enter into the focused element, which must be `id`.
    fn type_line(&self, id: &str, text: &str) {
        let focused = self.browser.focused();
        let expected = self.browser.find(&format!("#{id}"));
        assert_eq!(focused, expected, "the focus is not on #{id}");
        self.browser.type_into(&focused, &format!("{text}{ENTER}"));
    }

    /// The log's lines from the server (not the page's own remarks), as
    /// (classes, text).
    fn server_lines(&self) -> Vec<(String, String)> {
        let value = self.browser.run(READ_LOG, json!([]));
        let lines: Vec<(String, String)> = serde_json::from_value(value).expect("the log's lines");
        lines.into_iter().filter(|(class, _)| !class.split(' ').any(|c| c == "local")).collect()
    }

    /// Waits until the log has `lines` next, then checks the whole log.
    fn see(&mut self, lines: &[&str]) {
        self.expected.extend(lines.iter().map(|l| l.to_string()));
        let count = self.expected.len();
        let script = format!("{READ_LOG}.filter(l => !/\\blocal\\b/.test(l[0])).length >= {count}");
        self.browser.wait_until(&format!("{lines:?} in the page"), &script);
        let texts: Vec<String> = self.server_lines().into_iter().map(|(_, text)| text).collect();
        assert_eq!(texts, self.expected, "the page's log");
    }

    /// The classes of the last line whose text is `text`.
    fn classes(&self, text: &str) -> Vec<String> {
        let lines = self.server_lines();
        let (class, _) =
            lines.iter().rev().find(|(_, t)| t == text).unwrap_or_else(|| panic!("no {text:?} in the log"));
        class.split(' ').map(String::from).collect()
    }

    /// Checks the line `text` has the class `class`, or has not.
    fn marked(&self, text: &str, class: &str, yes: bool) {
        let classes = self.classes(text);
        assert_eq!(classes.iter().any(|c| c == class), yes, "{text:?} has classes {classes:?}; {class} wanted: {yes}");
    }

    /// The connection state the page shows.
    fn state(&self, state: &str) {
        let script = format!("return document.getElementById('status').dataset.state === {}", json!(state));
        self.browser.wait_until(&format!("the page's state {state}"), &script);
    }
}

/// The conversation, the same on every frontend. `board` is true on the
/// firmware (the board's room keeps history on, and its log is small).
fn conversation(site: &mut impl Site, browser: Browser, name: &str) {
    let started = Instant::now();
    let (mut alice, mut a) = site.joined("alice", false);
    alice.type_in("before the browser\n");
    a.see("alice: before the browser\n");

    // The page asks for a nickname; a taken one is refused with the
    // server's reason, and asked again.
    let mut page = Page::open(browser, &site.url());
    page.type_line("nick", "alice");
    page.see(&["*** nickname \"alice\" refused: it is taken"]);
    page.asked_for_a_nickname("Nickname refused: it is taken.");
    page.marked("*** nickname \"alice\" refused: it is taken", "notice", true);
    page.browser.screenshot(&root().join(format!("target/web-screenshot{name}-nickname.png")));
    page.type_line("nick", "webby");
    page.see(&[
        "webby joined!",
        "Connected to server!",
        "*** history: the last 2 lines of the room",
        "alice joined!",
        "alice: before the browser",
        "*** end of history",
    ]);
    a.see("webby joined!\n");
    for line in ["*** history: the last 2 lines of the room", "alice: before the browser", "*** end of history"] {
        page.marked(line, "history", true);
    }
    page.marked("Connected to server!", "history", false);
    page.state("open");

    // The tutorial's client joins; everyone talks.
    let mut neural = site.seed_client("Neural");
    let mut n = Transcript::new("Neural", &neural.stdout);
    n.see("Choose your nickname: Neural joined!\nConnected to server!\n");
    a.see("Neural joined!\n");
    page.see(&["Neural joined!"]);

    page.type_line("say", "hello from the browser");
    page.see(&["webby: hello from the browser"]);
    a.see("webby: hello from the browser\n");
    n.see("webby: hello from the browser\n");
    page.marked("webby: hello from the browser", "own", true);

    alice.type_in("hi webby, welcome\n");
    page.see(&["alice: hi webby, welcome"]);
    a.see("alice: hi webby, welcome\n");
    n.see("alice: hi webby, welcome\n");
    page.marked("alice: hi webby, welcome", "mention", true);
    page.marked("alice: hi webby, welcome", "own", false);

    neural.type_in("hello everyone\n");
    page.see(&["Neural: hello everyone"]);
    a.see("Neural: hello everyone\n");
    n.see("Neural: hello everyone\n");
    page.marked("Neural: hello everyone", "mention", false);

    // A command goes as typed; its answer is the page's alone.
    page.type_line("say", "/me waves");
    page.see(&["* webby waves"]);
    a.see("* webby waves\n");
    n.see("* webby waves\n");
    page.marked("* webby waves", "own", true);
    page.type_line("say", "/msg alice psst");
    page.see(&["-> *alice* psst"]);
    a.see("*webby* psst\n");
    page.marked("-> *alice* psst", "own", true);
    alice.type_in("/msg webby psst back\n");
    a.see("-> *webby* psst back\n");
    page.see(&["*alice* psst back"]);
    page.marked("*alice* psst back", "mention", true);

    // Hostile HTML is text: shown exactly, no element made of it, nothing
    // run (an alert would fail every WebDriver command after it).
    // One at a time: the tutorial's client prints two lines that arrive
    // in one read as one.
    for line in HOSTILE {
        alice.type_in(&format!("{line}\n"));
        a.see(&format!("alice: {line}\n"));
        n.see(&format!("alice: {line}\n"));
    }
    page.see(&[&format!("alice: {}", HOSTILE[0]), &format!("alice: {}", HOSTILE[1])]);
    thread::sleep(Duration::from_millis(300));
    let made = page.browser.run(
        "return [document.querySelectorAll('#log img, #log script, #log b').length, \
         [...document.querySelectorAll('#log .text')].filter(t => t.children.length).length, \
         document.title, typeof window.pwned]",
        json!([]),
    );
    assert_eq!(made, json!([0, 0, "chat room", "undefined"]), "what the hostile lines made");

    let shot = root().join(format!("target/web-screenshot{name}.png"));
    page.browser.screenshot(&shot);

    // The tutorial's client leaves (it closes its socket when its stdin
    // ends).
    neural.close_stdin();
    assert!(neural.wait().success(), "Neural's client failed");
    n.done();
    a.see("Neural left!\n");
    page.see(&["Neural left!"]);

    if site.restart() {
        // Every client is told; the page shows it, and that it is
        // disconnected; then it reconnects by itself, with its nickname.
        page.see(&["*** the server is shutting down"]);
        a.see("*** the server is shutting down\n");
        assert!(alice.wait().success(), "alice's connection was not closed");
        a.done();
        let rejoined = "return document.getElementById('status').dataset.state === 'open' \
                        && [...document.querySelectorAll('#log li.local')].length === 1";
        page.browser.wait_until("the page reconnected, having said it was disconnected", rejoined);
        page.see(&["webby joined!", "Connected to server!"]);
        let (mut carol, mut c) = site.joined("carol", true);
        page.see(&["carol joined!"]);
        carol.type_in("welcome back, webby\n");
        c.see("carol: welcome back, webby\n");
        page.see(&["carol: welcome back, webby"]);
        page.type_line("say", "thanks, carol");
        page.see(&["webby: thanks, carol"]);
        c.see("webby: thanks, carol\n");
        page.type_line("say", "/quit bye");
        page.see(&["webby left! (bye)"]);
        c.see("webby left! (bye)\n");
        c.done();
    } else {
        page.type_line("say", "/quit bye");
        page.see(&["webby left! (bye)"]);
        a.see("webby left! (bye)\n");
        a.done();
    }
    // Left: the page says so, does not reconnect, and offers to join again.
    page.state("closed");
    page.browser.wait_until(
        "the page saying we left",
        "return document.getElementById('status').textContent === 'you left the room'",
    );
    page.marked("webby left! (bye)", "own", true);
    page.asked_for_a_nickname("");
    page.browser.screenshot(&root().join(format!("target/web-screenshot{name}-left.png")));
    eprintln!("{name}: the page's conversation took {:?}", started.elapsed());
}

/// The page as written: small enough for the board's flash, one file with
/// nothing from elsewhere, and no way for network text to become HTML.
#[test]
fn the_page_is_small_self_contained_and_writes_text_only() {
    let path = root().join("core/web/chat.html");
    let page = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(page.len() <= 8 * 1024, "the page is {} bytes, over 8 KiB", page.len());
    for banned in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "http://",
        "https://",
        "url(",
        " src=",
    ] {
        assert!(!page.contains(banned), "the page has {banned:?}");
    }
    for id in ["status", "nick-form", "nick", "nick-label", "nick-error", "log", "say-form", "say"] {
        assert!(page.contains(&format!("id=\"{id}\"")), "the page has no #{id}");
    }
    assert_eq!(page.matches("<script").count(), 1, "one inline script, hashed into the CSP");
}

/// `chat-server --web` on loopback.
struct HostSite {
    server: Proc,
    chat: String,
    web: String,
    args: Vec<String>,
}

impl HostSite {
    /// Starts chat-server on `chat` and `web` (port 0: any) with `args`
    /// and reads both addresses: it prints `listening on ADDR` then `web on
    /// ADDR`. Retries while it cannot bind them (a restart, just after the
    /// last one exited).
    fn start(chat: &str, web: &str, args: &[&str]) -> HostSite {
        // Built (on first use) before the clock starts.
        let program = bin("host", "chat-server");
        let deadline = Instant::now() + WAIT;
        loop {
            let mut server = Proc::spawn(Command::new(&program).args(["--listen", chat, "--web", web]).args(args));
            loop {
                let printed = server.stdout.text();
                let mut lines = printed.lines();
                let chat = lines.next().and_then(|l| l.strip_prefix("listening on "));
                if let (Some(chat), Some(web)) = (chat, lines.next().and_then(|l| l.strip_prefix("web on "))) {
                    let args = args.iter().map(|a| a.to_string()).collect();
                    return HostSite { chat: chat.to_string(), web: web.to_string(), args, server };
                }
                let exited = server.child.try_wait().expect("try_wait on chat-server").is_some();
                assert!(
                    Instant::now() < deadline,
                    "chat-server printed {printed:?}; exited: {exited}; stderr: {}",
                    server.stderr.text()
                );
                if exited {
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
            thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Site for HostSite {
    fn url(&self) -> String {
        let scheme = if self.args.iter().any(|a| a == "--web-tls") { "https" } else { "http" };
        format!("{scheme}://{}/", self.web)
    }

    fn chat(&self) -> (String, String) {
        let (host, port) = self.chat.rsplit_once(':').expect("HOST:PORT");
        (host.to_string(), port.to_string())
    }

    fn command(&self, program: &str) -> Command {
        Command::new(program)
    }

    fn restart(&mut self) -> bool {
        self.server.signal(15);
        assert!(self.server.wait().success(), "chat-server did not exit 0 on SIGTERM");
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let again = HostSite::start(&self.chat, &self.web, &args);
        *self = again;
        true
    }
}

#[test]
#[ignore = "needs chromium and chromium-driver"]
fn the_page_chats_with_line_and_tutorial_clients_on_chat_server() {
    require_browser("web");
    let mut site = HostSite::start("127.0.0.1:0", "127.0.0.1:0", &["--history", "5"]);
    conversation(&mut site, Browser::start(), "");
}

/// A room with a password: the page asks for it after the nickname, shows
/// why a wrong one was refused, and sends it again by itself when it
/// reconnects; kicked, it does not reconnect.
#[test]
#[ignore = "needs chromium and chromium-driver"]
fn the_page_asks_for_the_room_password_reconnects_with_it_but_not_when_kicked() {
    require_browser("web-password");
    let dir = TempDir::new();
    let file = dir.join("password");
    std::fs::write(&file, "open sesame\n").expect("write the password file");
    let ops = dir.join("ops");
    std::fs::write(&ops, "op secret\n").expect("write the operators' password file");
    let [file, ops] = [file, ops].map(|path| path.to_str().expect("a UTF-8 path").to_string());
    let args = ["--history", "0", "--password-file", &file, "--op-password-file", &ops];
    let mut site = HostSite::start("127.0.0.1:0", "127.0.0.1:0", &args);

    let mut page = Page::open(Browser::start(), &site.url());
    page.type_line("nick", "webby");
    let ask = "*** this room has a password: send it as your next line";
    page.see(&[ask]);
    page.asked("Room password", "password", "");
    page.type_line("nick", "open sesame?");
    page.see(&["*** wrong password, 2 tries left"]);
    page.asked("Room password", "password", "wrong password, 2 tries left.");
    page.type_line("nick", "open sesame");
    page.see(&["webby joined!", "Connected to server!"]);

    site.restart();
    page.see(&["*** the server is shutting down", ask, "webby joined!", "Connected to server!"]);
    page.state("open");
    page.type_line("say", "in again");
    page.see(&["webby: in again"]);

    // Kicked, the page does not come back by itself.
    let mut alice = Raw::connect(&site.chat);
    alice.expect("NICK");
    alice.send(b"alice\n");
    alice.expect(&format!("{ask}\n"));
    alice.send(b"open sesame\n");
    alice.expect("alice joined!\nConnected to server!\n");
    page.see(&["alice joined!"]);
    alice.send(b"/op op secret\n/kick webby rude\n");
    alice.expect("*** you are an operator now\nwebby left! (kicked by alice: rude)\n");
    page.see(&["webby left! (kicked by alice: rude)"]);
    page.browser.wait_until(
        "the page saying we left",
        "return document.getElementById('status').textContent === 'you left the room'",
    );
    page.asked_for_a_nickname("");
    thread::sleep(Duration::from_millis(1500));
    page.see(&[]);
    assert_eq!(page.browser.run("return document.getElementById('status').dataset.state", json!([])), "closed");
}

/// Over HTTPS (`chat-server --web-tls`, with a self-signed certificate
/// the browser is told to accept): the page opens its WebSocket as wss://
/// (a ws:// one from an https page would be blocked as mixed content).
#[test]
#[ignore = "needs chromium and chromium-driver"]
fn the_page_chats_over_https_and_wss() {
    require_browser("web-tls");
    let args = ["--history", "0", "--web-tls", "--tls-self-signed"];
    let site = HostSite::start("127.0.0.1:0", "127.0.0.1:0", &args);
    let (mut alice, mut a) = site.joined("alice", false);
    let mut page = Page::open(Browser::start(), &site.url());
    assert_eq!(page.browser.run("return location.protocol", json!([])), "https:");
    page.type_line("nick", "webby");
    page.see(&["webby joined!", "Connected to server!"]);
    a.see("webby joined!\n");
    page.type_line("say", "over wss");
    page.see(&["webby: over wss"]);
    a.see("webby: over wss\n");
    alice.type_in("hi webby\n");
    a.see("alice: hi webby\n");
    page.see(&["alice: hi webby"]);
    a.done();
}

/// A server in a namespace of its own, its web port 80: `tap-server
/// --web-port 80` (which the test restarts), or the firmware in QEMU.
enum InNamespace {
    Tap { server: Option<Proc>, ns: Netns },
    Board(Board),
}

impl InNamespace {
    /// Starts tap-server in `ns` and waits until it listens.
    fn tap_server(ns: &Netns) -> Proc {
        let mut command = ns.command(bin("embedded", "tap-server"));
        command.args(["--tap", TAP, "--address", SERVER_ADDRESS, "--port", PORT, "--web-port", "80"]);
        command.args(["--history", "5"]).env("RUST_LOG", "info");
        let server = Proc::spawn(&mut command);
        server.stdout.wait_for(&format!("listening on {SERVER_IP}:{PORT}\n"));
        server
    }

    fn ns(&self) -> &Netns {
        match self {
            InNamespace::Tap { ns, .. } => ns,
            InNamespace::Board(board) => board.ns(),
        }
    }
}

impl Site for InNamespace {
    fn url(&self) -> String {
        format!("http://{SERVER_IP}/")
    }

    fn chat(&self) -> (String, String) {
        (SERVER_IP.to_string(), PORT.to_string())
    }

    fn command(&self, program: &str) -> Command {
        self.ns().command(program)
    }

    fn restart(&mut self) -> bool {
        let InNamespace::Tap { server, ns } = self else { return false };
        if let Some(mut running) = server.take() {
            running.signal(15);
            assert!(running.wait().success(), "tap-server did not exit 0 on SIGTERM");
        }
        *server = Some(InNamespace::tap_server(ns));
        true
    }
}

/// The browser needs to be there, and the namespace's makings.
fn require_browser(test: &str) {
    if let Some(why) = webdriver::unavailable() {
        panic!("{test}: cannot run the browser: {why}");
    }
}

#[test]
#[ignore = "needs root, /dev/net/tun, chromium"]
fn the_page_chats_on_tap_server_in_a_namespace() {
    require_browser("web-tap");
    let ns = Netns::for_test("web-tap");
    let server = Some(InNamespace::tap_server(&ns));
    let browser = Browser::start_in(&ns);
    conversation(&mut InNamespace::Tap { server, ns }, browser, "-tap");
}

#[test]
#[ignore = "needs root, /dev/net/tun, chromium and qemu-system-arm"]
fn the_page_chats_on_the_firmware_in_qemu() {
    require_browser("web-firmware");
    require_tools("web-firmware");
    let elf = firmware();
    let board = Board::boot("web-firmware", &elf);
    let browser = Browser::start_in(board.ns());
    let mut site = InNamespace::Board(board);
    conversation(&mut site, browser, "-firmware");
    let InNamespace::Board(board) = site else { unreachable!("the board's site") };
    let log = board.log.text();
    for bad in ["ERROR", "panic", "HardFault"] {
        assert!(!log.contains(bad), "the firmware's log has {bad:?}:\n{}", board.describe());
    }
}
