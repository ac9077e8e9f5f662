//! A headless Chromium driven over W3C WebDriver, for the browser tests
//! of the chat page (`tests/web.rs`).
//!
//! Debian's `chromedriver` (package `chromium-driver`) is started by PID
//! and killed on drop, with Debian's `chromium`; nothing downloads a
//! browser. The WebDriver conversation is a small synchronous HTTP/1.1
//! client, one request per connection, over TCP to the driver on
//! loopback, or, for a driver inside a network namespace (whose loopback
//! the test process cannot reach), over a Unix socket: a pathname socket
//! is not in any network namespace, so a small relay started inside the
//! namespace ([`RELAY`]) accepts on it and forwards to the driver there.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::netns::Netns;
use crate::{Proc, WAIT};

/// Debian's browser and its driver.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Why the browser tests cannot run here, if they cannot.
pub fn unavailable() -> Option<String> {
    for path in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(path).exists() {
            return Some(format!("no {path} (apt-get install chromium chromium-driver)"));
        }
    }
    None
}

/// Accepts on the Unix socket argv[1] and forwards each connection to
/// 127.0.0.1:argv[2], both ways; run inside a namespace, it is the test's
/// way in to the driver listening on that namespace's loopback.
pub const RELAY: &str = r#"
import os, socket, sys, threading
path, port = sys.argv[1], int(sys.argv[2])
server = socket.socket(socket.AF_UNIX)
server.bind(path)
server.listen(16)
print("relaying", flush=True)
def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass
while True:
    client, _ = server.accept()
    try:
        driver = socket.create_connection(("127.0.0.1", port), timeout=10)
        driver.settimeout(None)
    except OSError:
        client.close()
        continue
    threading.Thread(target=pipe, args=(client, driver), daemon=True).start()
    threading.Thread(target=pipe, args=(driver, client), daemon=True).start()
"#;

/// Chromium's flags: headless, as root (no sandbox), and quiet: no
/// first-run, sync, component updates or other traffic of its own. Every
/// host name resolves to nothing but the two addresses the tests serve the
/// page on (loopback, and the namespaces' server).
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--disable-crash-reporter",
    "--no-pings",
    "--dns-prefetch-disable",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE 192.168.69.1",
    "--disable-dev-shm-usage",
];

/// Where the driver is reached.
enum Endpoint {
    Tcp(String),
    Unix(PathBuf),
}

/// A browser session: the driver (and the relay, in a namespace), the
/// browser's profile directory, and the session's id. Dropping it ends the
/// session, kills the driver and the relay by PID, then removes the
/// directory (a field, dropped after this).
pub struct Browser {
    endpoint: Endpoint,
    session: String,
    dir: TempDir,
    driver: Proc,
    relay: Option<Proc>,
}

impl Browser {
    /// Starts chromedriver on this machine's loopback, and a session.
    pub fn start() -> Browser {
        let deadline = Instant::now() + WAIT;
        loop {
            // The port was free on IPv4; chromedriver also wants it on
            // IPv6, and someone may take it meanwhile: then another.
            let port = free_port();
            if let Some(driver) = start_driver(&mut Command::new(CHROMEDRIVER), port) {
                let endpoint = Endpoint::Tcp(format!("127.0.0.1:{port}"));
                return Browser::session(endpoint, TempDir::new(), driver, None);
            }
            assert!(Instant::now() < deadline, "chromedriver would not start");
        }
    }

    /// Starts chromedriver (and so the browser) inside `ns`, the relay to
    /// it, and a session.
    pub fn start_in(ns: &Netns) -> Browser {
        // The namespace's loopback is its own: any port is free there.
        let port = 9515;
        let dir = TempDir::new();
        let driver = start_driver(&mut ns.command(CHROMEDRIVER), port).expect("chromedriver in the namespace");
        let socket = dir.join("webdriver.sock");
        let relay = Proc::spawn(ns.command("python3").arg("-c").arg(RELAY).arg(&socket).arg(port.to_string()));
        relay.stdout.wait_for("relaying\n");
        Browser::session(Endpoint::Unix(socket), dir, driver, Some(relay))
    }

    fn session(endpoint: Endpoint, dir: TempDir, driver: Proc, relay: Option<Proc>) -> Browser {
        let mut browser = Browser { endpoint, session: String::new(), dir, driver, relay };
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", browser.dir.join("profile").display()));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            // A phone's viewport.
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args,
                "mobileEmulation": {"deviceMetrics": {"width": 390, "height": 760, "pixelRatio": 1.0}}},
            "unhandledPromptBehavior": "ignore",
            // chat-server --web-tls --tls-self-signed's certificate.
            "acceptInsecureCerts": true,
            "timeouts": {"pageLoad": 15000, "script": 10000},
        }}});
        let created = browser.call("POST", "/session", Some(capabilities));
        browser.session = created["sessionId"].as_str().expect("a session id").to_string();
        browser
    }

    /// Calls `METHOD /session/{id}{path}` and returns its `value`.
    pub fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.call(method, &path, body)
    }

    /// One WebDriver request; panics with the driver's error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body).unwrap_or_else(|e| panic!("{e}"))
    }

    /// One WebDriver request: its `value`, or the driver's error.
    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (status, body) = match &self.endpoint {
            Endpoint::Tcp(addr) => {
                let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to chromedriver: {e}"));
                stream.set_read_timeout(Some(WAIT)).expect("set a timeout");
                exchange(stream, &request)
            }
            Endpoint::Unix(path) => {
                let stream = UnixStream::connect(path).unwrap_or_else(|e| panic!("connect to the relay: {e}"));
                stream.set_read_timeout(Some(WAIT)).expect("set a timeout");
                exchange(stream, &request)
            }
        };
        let value: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!("{method} {path}: {status}, not JSON ({e}): {}", String::from_utf8_lossy(&body))
        });
        if status != 200 {
            return Err(format!("{method} {path}: {status}: {}", value["value"]["message"]));
        }
        Ok(value["value"].clone())
    }

    /// Opens `url`; the driver's error if it cannot.
    pub fn goto(&self, url: &str) -> Result<(), String> {
        let path = format!("/session/{}/url", self.session);
        self.try_call("POST", &path, Some(json!({"url": url}))).map(drop)
    }

    /// Runs `script` (a function body) in the page with `args` and returns
    /// what it returns.
    pub fn run(&self, script: &str, args: Value) -> Value {
        self.command("POST", "/execute/sync", Some(json!({"script": script, "args": args})))
    }

    /// Runs `script` every 50 ms until it returns something truthy, which
    /// it returns; after [`WAIT`] fails saying `what` and the last value.
    pub fn wait_until(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let value = self.run(script, json!([]));
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; the page's log:\n{}", self.page_text());
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The page's visible text, for failure messages.
    pub fn page_text(&self) -> String {
        self.run("return document.body ? document.body.innerText : ''", json!([])).as_str().unwrap_or("").to_string()
    }

    /// The element `css` finds (the first), by its WebDriver id.
    pub fn find(&self, css: &str) -> String {
        let found = self.command("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        element_id(&found)
    }

    /// The element that has the keyboard focus, by its WebDriver id.
    pub fn focused(&self) -> String {
        element_id(&self.command("GET", "/element/active", None))
    }

    /// Types `text` into the element `id` as keystrokes (`\u{E007}` is
    /// Enter).
    pub fn type_into(&self, id: &str, text: &str) {
        self.command("POST", &format!("/element/{id}/value"), Some(json!({"text": text})));
    }

    /// Saves a screenshot of the page (a PNG) at `path`.
    pub fn screenshot(&self, path: &Path) {
        let encoded = self.command("GET", "/screenshot", None);
        let png = base64_decode(encoded.as_str().expect("a base64 screenshot"));
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Ends the browser; if that fails, killing the driver by PID
            // below takes the browser with it (its process group is ours
            // only through the driver, so this is best effort).
            let session = std::mem::take(&mut self.session);
            let path = format!("/session/{session}");
            let _ = self.try_call("DELETE", &path, None);
        }
        if let Some(relay) = &mut self.relay {
            let _ = relay.child.kill();
            let _ = relay.child.wait();
        }
        let _ = self.driver.child.kill();
        let _ = self.driver.child.wait();
    }
}

/// Starts chromedriver on `port` and waits until it says it runs; None if
/// it exits first (the port was taken).
fn start_driver(command: &mut Command, port: u16) -> Option<Proc> {
    let mut driver = Proc::spawn(command.arg(format!("--port={port}")));
    let deadline = Instant::now() + WAIT;
    while !driver.stdout.text().contains("started successfully") {
        if driver.child.try_wait().expect("try_wait on chromedriver").is_some() {
            eprintln!("chromedriver exited: {}{}", driver.stdout.text(), driver.stderr.text());
            return None;
        }
        assert!(Instant::now() < deadline, "chromedriver did not start: {}", driver.stdout.text());
        thread::sleep(Duration::from_millis(20));
    }
    Some(driver)
}

/// A fresh directory of this test's, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Makes `chat-web-{pid}-{n}` in the system's temporary directory.
    pub fn new() -> TempDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let count = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("chat-web-{}-{count}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        TempDir(dir)
    }

    /// A path in it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Default for TempDir {
    fn default() -> TempDir {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address").port()
}

/// Writes `request` and reads the response: its status and body.
fn exchange(mut stream: impl Read + Write, request: &str) -> (u16, Vec<u8>) {
    stream.write_all(request.as_bytes()).expect("send to chromedriver");
    let mut response = Vec::new();
    let mut buf = [0; 16384];
    loop {
        if let Some((status, body)) = complete(&response) {
            return (status, body);
        }
        match stream.read(&mut buf) {
            Ok(0) => panic!("chromedriver closed after {:?}", String::from_utf8_lossy(&response)),
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(e) => panic!("reading chromedriver's response: {e}; got {:?}", String::from_utf8_lossy(&response)),
        }
    }
}

/// An HTTP/1.1 response's status and body, once `response` holds all of
/// it (its `Content-Length`, or its chunks up to the last).
fn complete(response: &[u8]) -> Option<(u16, Vec<u8>)> {
    let end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = &response[end + 4..];
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')).map(str::trim).map(String::from))
    };
    if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        return (body.len() >= length).then(|| (status, body[..length].to_vec()));
    }
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut out = Vec::new();
        let mut rest = body;
        loop {
            let line = rest.windows(2).position(|w| w == b"\r\n")?;
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..line]).trim(), 16).ok()?;
            if size == 0 {
                return Some((status, out));
            }
            let chunk = rest.get(line + 2..line + 2 + size)?;
            out.extend_from_slice(chunk);
            rest = rest.get(line + 4 + size..)?;
        }
    }
    panic!("a response with neither Content-Length nor chunks: {head}")
}

/// The id in a WebDriver element reference.
fn element_id(found: &Value) -> String {
    found["element-6066-11e4-a52e-4f735466cecf"]
        .as_str()
        .unwrap_or_else(|| panic!("not an element: {found}"))
        .to_string()
}

/// Standard base64, padding and whitespace ignored.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut count) = (0u32, 0);
    for sixbits in text.bytes().filter_map(value) {
        bits = bits << 6 | u32::from(sixbits);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}
