//! A NATS server of the test's own: Debian's `nats-server -js` on a free
//! loopback port with a temporary store, never one already running.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{bin, ChatServer, Proc, WAIT};

/// `nats-server -js` on 127.0.0.1, stopped (by its PID) and its store
/// removed when dropped.
pub struct Nats {
    proc: Option<Proc>,
    pub port: u16,
    store: PathBuf,
    /// Whether it runs with `-js`.
    jetstream: bool,
}

impl Nats {
    /// Starts one on a free port, with a new store.
    pub fn start() -> Nats {
        Nats::launch(true)
    }

    /// Starts one without JetStream, which a room cannot use.
    pub fn start_without_jetstream() -> Nats {
        Nats::launch(false)
    }

    fn launch(jetstream: bool) -> Nats {
        let port = free_port();
        let store = std::env::temp_dir().join(format!("chat-nats-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&store);
        let mut nats = Nats { proc: None, port, store, jetstream };
        nats.restart();
        nats
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops it at once, as a crash would (SIGKILL); its store stays.
    pub fn kill(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            let _ = proc.child.kill();
            let _ = proc.child.wait();
        }
    }

    /// Starts it again on the same port, from the same store.
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port.to_string();
        let store = self.store.display().to_string();
        let mut command = Command::new(nats_server());
        command.args(["-a", "127.0.0.1", "-p", &port]);
        if self.jetstream {
            command.args(["-js", "-sd", &store]);
        }
        let proc = Proc::spawn(&mut command);
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen on {port}: {}", proc.stderr.text());
            std::thread::sleep(Duration::from_millis(20));
        }
        self.proc = Some(proc);
    }

    /// A chat-server in this broker's room `chat` (history off unless
    /// ARGS say otherwise, as [`ChatServer::start`]).
    pub fn chat_server(&self, args: &[&str]) -> ChatServer {
        let url = self.url();
        ChatServer::start(&[&["--nats", url.as_str()], args].concat())
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// Debian puts it in /usr/sbin, which a user's PATH may lack.
fn nats_server() -> PathBuf {
    ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from("nats-server"))
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// A chat-server started with ARGS that must fail: its exit status and
/// what it said on stderr.
pub fn failing_chat_server(args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut proc = Proc::spawn(Command::new(bin("host", "chat-server")).args(["--listen", "127.0.0.1:0"]).args(args));
    let status = proc.wait();
    (status, proc.stderr.text())
}
