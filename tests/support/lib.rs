//! Helpers shared by the end-to-end tests: building and finding the
//! binaries, running processes that are always killed, and reading what
//! they print with a deadline.

pub mod board;
pub mod nats;
pub mod netns;
pub mod webdriver;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

use host::tls_client::{Pin, Stream, TlsOptions};

/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The path of a binary of the workspace, built (debug) on first use for
/// `host` (chat-server, chat-client), `bench` (chat-bench) and `embedded`
/// (tap-server).
pub fn bin(package: &str, name: &str) -> PathBuf {
    static BUILD_HOST: Once = Once::new();
    static BUILD_BENCH: Once = Once::new();
    static BUILD_EMBEDDED: Once = Once::new();
    match package {
        "host" => BUILD_HOST.call_once(|| build(&["-p", "host", "--bins"])),
        "bench" => BUILD_BENCH.call_once(|| build(&["-p", "bench", "--bins"])),
        "embedded" => BUILD_EMBEDDED.call_once(|| build(&["-p", "embedded", "--bins"])),
        _ => {}
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
    target.join("debug").join(name)
}

/// Runs `cargo build ARGS` in the workspace, failing the test if it fails.
pub fn build(args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo).arg("build").args(args).current_dir(root()).status().expect("run cargo build");
    assert!(status.success(), "cargo build {args:?} failed");
}

/// Text a process printed, collected by a thread as it arrives, and whether
/// its end has been read.
#[derive(Clone, Default)]
pub struct Output(Arc<(Mutex<Collected>, Condvar)>);

/// The bytes so far, and whether the end was read.
type Collected = (Vec<u8>, bool);

impl Output {
    /// Collects everything `source` produces until it ends.
    pub fn collect(mut source: impl Read + Send + 'static) -> Output {
        let output = Output::default();
        let sink = output.clone();
        thread::spawn(move || {
            let mut buf = [0; 4096];
            let (lock, ready) = &*sink.0;
            while let Ok(n) = source.read(&mut buf) {
                if n == 0 {
                    break;
                }
                lock.lock().expect("output lock").0.extend_from_slice(&buf[..n]);
                ready.notify_all();
            }
            lock.lock().expect("output lock").1 = true;
            ready.notify_all();
        });
        output
    }

    /// Everything so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0 .0.lock().expect("output lock").0).into_owned()
    }

    /// Waits until the end of the output has been read (the process closed
    /// it, usually by exiting), at most [`WAIT`].
    pub fn wait_end(&self) {
        let (lock, ready) = &*self.0;
        let deadline = Instant::now() + WAIT;
        let mut state = lock.lock().expect("output lock");
        while !state.1 {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "output never ended");
            state = ready.wait_timeout(state, left).expect("output lock").0;
        }
    }

    /// Waits until the output contains `needle` `count` times; panics with
    /// what arrived if it does not within [`WAIT`].
    pub fn wait_for_n(&self, needle: &str, count: usize) -> String {
        let (lock, ready) = &*self.0;
        let deadline = Instant::now() + WAIT;
        let mut bytes = lock.lock().expect("output lock");
        loop {
            let text = String::from_utf8_lossy(&bytes.0).into_owned();
            if text.matches(needle).count() >= count {
                return text;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {needle:?} x{count}; got:\n{text}");
            bytes = ready.wait_timeout(bytes, left).expect("output lock").0;
        }
    }

    /// Waits until the output contains `needle`.
    pub fn wait_for(&self, needle: &str) -> String {
        self.wait_for_n(needle, 1)
    }
}

/// A child process killed (by its PID) when the test is done with it.
pub struct Proc {
    pub child: Child,
    pub stdout: Output,
    pub stderr: Output,
    stdin: Option<ChildStdin>,
}

impl Proc {
    /// Starts `command` with piped stdio.
    pub fn spawn(command: &mut Command) -> Proc {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let stdout = Output::collect(child.stdout.take().expect("piped stdout"));
        let stderr = Output::collect(child.stderr.take().expect("piped stderr"));
        let stdin = child.stdin.take();
        Proc { child, stdout, stderr, stdin }
    }

    /// Writes to the process's stdin.
    pub fn type_in(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(text.as_bytes()).expect("write to stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Closes the process's stdin.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Sends a signal to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY-free: `kill` from the command line, by PID.
        let status =
            Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status().expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.child.id());
    }

    /// Waits for the process to exit, at most [`WAIT`].
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // What it printed last may still be on its way to us.
                self.stdout.wait_end();
                self.stderr.wait_end();
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process {} did not exit; stderr:\n{}",
                self.child.id(),
                self.stderr.text()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if thread::panicking() {
            // What a failing test's servers said is what explains it.
            eprintln!("--- stderr of {:?} (pid {}) ---\n{}", self.child, self.child.id(), self.stderr.text());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address a server says it listens on: its first line on stdout is
/// `listening on ADDR` (chat-server, tap-server, the Python servers).
pub fn listening_addr(server: &Proc) -> String {
    let first = server.stdout.wait_for("\n");
    first
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("listening on "))
        .unwrap_or_else(|| panic!("a server's first line: {first:?}"))
        .to_string()
}

/// The address a server's web listener is on: after `listening on ADDR`,
/// its stdout says `web on ADDR` (`chat-server --web`, `tap-server`).
pub fn web_addr(server: &Proc) -> String {
    let text = server.stdout.wait_for_n("\n", 2);
    text.lines()
        .nth(1)
        .and_then(|l| l.strip_prefix("web on "))
        .unwrap_or_else(|| panic!("a server's second line: {text:?}"))
        .to_string()
}

/// A `chat-server` on an ephemeral loopback port.
pub struct ChatServer {
    pub proc: Proc,
    pub addr: String,
    /// With a TLS listener: its address and the certificate's fingerprint.
    pub tls: Option<(String, String)>,
}

impl ChatServer {
    /// Starts `chat-server --listen 127.0.0.1:0 ARGS` and reads its address.
    /// History on join is off unless ARGS has `--history`: the transcripts
    /// of other tests stay what they test.
    pub fn start(args: &[&str]) -> ChatServer {
        let mut command = Command::new(bin("host", "chat-server"));
        command.args(["--listen", "127.0.0.1:0"]).args(args);
        if !args.contains(&"--history") {
            command.args(["--history", "0"]);
        }
        let proc = Proc::spawn(&mut command);
        let addr = listening_addr(&proc);
        ChatServer { proc, addr, tls: None }
    }

    /// Starts `chat-server --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0
    /// ARGS` (ARGS say which certificate) and reads both addresses and the
    /// fingerprint from its first three lines.
    pub fn start_tls(args: &[&str]) -> ChatServer {
        let mut server = ChatServer::start(&[&["--tls-listen", "127.0.0.1:0"], args].concat());
        let text = server.proc.stdout.wait_for_n("\n", 3);
        let lines: Vec<&str> = text.lines().collect();
        let tls_addr = lines[1].strip_prefix("listening for TLS on ").unwrap_or_else(|| panic!("line 2: {text:?}"));
        let fingerprint =
            lines[2].strip_prefix("TLS certificate SHA-256 fingerprint ").unwrap_or_else(|| panic!("line 3: {text:?}"));
        server.tls = Some((tls_addr.to_string(), fingerprint.to_string()));
        server
    }

    /// The TLS listener's address.
    pub fn tls_addr(&self) -> &str {
        &self.tls.as_ref().expect("a TLS listener").0
    }

    /// The TLS certificate's SHA-256 fingerprint, as the server printed it.
    pub fn fingerprint(&self) -> &str {
        &self.tls.as_ref().expect("a TLS listener").1
    }

    /// The port it listens on.
    pub fn port(&self) -> &str {
        self.addr.rsplit(':').next().unwrap_or_default()
    }

    /// How many file descriptors the server process has open.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.proc.child.id())).map(|d| d.count()).unwrap_or(0)
    }
}

/// `chat-client ADDR ARGS` in pipe mode (stdin not a terminal).
pub fn chat_client(addr: &str, args: &[&str]) -> Proc {
    Proc::spawn(Command::new(bin("host", "chat-client")).arg(addr).args(args))
}

/// The tutorial's Python client (`tests/seed/client.py`), its nickname
/// typed in.
pub fn seed_client(host: &str, port: &str, nick: &str) -> Proc {
    let mut proc = Proc::spawn(Command::new("python3").arg(root().join("tests/seed/client.py")).args([host, port]));
    proc.type_in(&format!("{nick}\n"));
    proc
}

/// A raw TCP client, as `nc` would be, or the same over TLS.
pub struct Raw {
    stream: Stream,
    reader: BufReader<Stream>,
}

impl Raw {
    /// Connects to `addr`.
    pub fn connect(addr: &str) -> Raw {
        Raw::connect_with(addr, &TlsOptions::default())
    }

    /// Connects to a TLS listener at `addr` that has the certificate
    /// `fingerprint`, and does the handshake.
    pub fn connect_tls(addr: &str, fingerprint: &str) -> Raw {
        let pin = Pin::parse(fingerprint).expect("a fingerprint");
        Raw::connect_with(addr, &TlsOptions { pin: Some(pin), ..TlsOptions::default() })
    }

    /// Connects to `addr`, plain or TLS as `tls` says.
    pub fn connect_with(addr: &str, tls: &TlsOptions) -> Raw {
        let stream = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Raw::over(stream, addr, tls)
    }

    /// Connects to `addr` from the loopback address `local` (127.0.0.2 and
    /// so on), so a server sees another peer address.
    pub fn connect_from(addr: &str, local: std::net::Ipv4Addr) -> Raw {
        let target: std::net::SocketAddr = addr.parse().unwrap_or_else(|e| panic!("address {addr}: {e}"));
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
        let from = std::net::SocketAddr::from((local, 0));
        socket.bind(&from.into()).unwrap_or_else(|e| panic!("bind to {from}: {e}"));
        socket.connect(&target.into()).unwrap_or_else(|e| panic!("connect to {addr} from {local}: {e}"));
        Raw::over(socket.into(), addr, &TlsOptions::default())
    }

    /// A client on a connected socket to `addr`, plain or TLS as `tls` says.
    fn over(stream: std::net::TcpStream, addr: &str, tls: &TlsOptions) -> Raw {
        stream.set_read_timeout(Some(WAIT)).expect("set timeout");
        if tls.enabled() {
            // As chat-client does: a record written after the handshake's
            // last one would otherwise wait for its ACK (Nagle).
            stream.set_nodelay(true).expect("TCP_NODELAY");
        }
        let stream = host::tls_client::connect(stream, addr, tls).unwrap_or_else(|e| panic!("TLS to {addr}: {e}"));
        let reader = BufReader::new(stream.try_clone().expect("clone stream"));
        Raw { stream, reader }
    }

    /// Connects to `addr` and registers as `nick`; returns it after its
    /// `Connected to server!`.
    pub fn join(addr: &str, nick: &str) -> Raw {
        Raw::connect(addr).register(nick)
    }

    /// Registers as `nick` in a room without a password or history.
    pub fn register(mut self, nick: &str) -> Raw {
        self.expect("NICK");
        self.send(format!("{nick}\n").as_bytes());
        self.expect(&format!("{nick} joined!\nConnected to server!\n"));
        self
    }

    /// Sends bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads exactly `expected.len()` bytes and checks they are `expected`.
    pub fn expect(&mut self, expected: &str) {
        let mut got = vec![0; expected.len()];
        self.reader.read_exact(&mut got).unwrap_or_else(|e| panic!("waiting for {expected:?}: {e}"));
        assert_eq!(String::from_utf8_lossy(&got), expected);
    }

    /// Reads one line (with its `\n`).
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read a line");
        line
    }

    /// Reads until the server closes; returns what came.
    pub fn rest(&mut self) -> String {
        let mut rest = String::new();
        let _ = self.reader.read_to_string(&mut rest);
        rest
    }

    /// The socket, for socket options.
    pub fn stream(&self) -> &std::net::TcpStream {
        self.stream.tcp()
    }

    /// Closes the write side (a half-close).
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }
}

/// What a client must have printed, compared whole after every step.
pub struct Transcript {
    /// Whose transcript it is.
    pub who: String,
    out: Output,
    expected: String,
}

impl Transcript {
    pub fn new(who: &str, out: &Output) -> Transcript {
        Transcript { who: who.to_string(), out: out.clone(), expected: String::new() }
    }

    /// Waits until `text` comes next, then checks the whole transcript.
    pub fn see(&mut self, text: &str) {
        self.expected.push_str(text);
        let count = self.expected.matches(text).count();
        let got = self.out.wait_for_n(text, count);
        assert_eq!(got, self.expected, "{}'s transcript", self.who);
    }

    /// Waits for a newcomer's `joined!`, `Connected to server!` and the
    /// block of history a room replays to it, whatever lines that block
    /// holds (the core's tests check those); checks the framing and the
    /// whole transcript up to the block's end.
    pub fn see_joined_with_history(&mut self, nick: &str) {
        let end = "*** end of history\n";
        let start = format!("{nick} joined!\nConnected to server!\n*** history: the last ");
        let count = self.expected.matches(end).count() + 1;
        let got = self.out.wait_for_n(end, count);
        let block_end = got.match_indices(end).nth(count - 1).map_or(got.len(), |(at, _)| at + end.len());
        let got = &got[..block_end];
        let mine = &got[self.expected.len().min(got.len())..];
        assert!(got.starts_with(&self.expected) && mine.starts_with(&start), "{}'s transcript: {got:?}", self.who);
        self.expected.push_str(mine);
    }

    /// Checks that nothing more came.
    pub fn done(&self) {
        assert_eq!(self.out.text(), self.expected, "{}'s transcript at the end", self.who);
    }
}
