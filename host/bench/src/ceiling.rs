//! The loopback ceiling: this machine's limit for a room's fan-out with no
//! server at all, to compare a server's deliveries/s with. A writer thread
//! plays the server (every line to every receiver), a reader thread the
//! clients.

use std::io::{self, Read as _, Write as _};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use serde::Serialize;

use crate::message::Names;
use crate::report::{micro, whole};
use crate::run::READ_BUFFER;

/// One way of writing in the loopback ceiling.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Pass {
    pub writes: u64,
    #[serde(serialize_with = "micro")]
    pub secs: f64,
    #[serde(serialize_with = "whole")]
    pub deliveries_per_sec: f64,
}

/// This machine's loopback limit for a room's fan-out, with no server.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Ceiling {
    pub clients: usize,
    pub messages: usize,
    pub size: usize,
    pub batch: usize,
    /// Bytes of one delivered line, `{nick}: ` and `\n` included.
    #[serde(rename = "line_bytes")]
    pub line: usize,
    pub deliveries: u64,
    /// One write per delivery.
    pub single: Pass,
    /// `batch` messages per write.
    pub batched: Pass,
}

impl Ceiling {
    /// As rows of a table for people (see [`crate::report::table`]).
    pub fn rows(&self) -> Vec<(String, String)> {
        let pass =
            |p: &Pass| format!("{:.0} deliveries/s ({} writes in {:.3} s)", p.deliveries_per_sec, p.writes, p.secs);
        vec![
            (
                "ceiling".to_string(),
                format!(
                    "{} receivers x {} senders x {} messages, {}-byte lines, loopback, no server",
                    self.clients, self.clients, self.messages, self.line
                ),
            ),
            ("ceiling deliveries".to_string(), self.deliveries.to_string()),
            ("1 per write".to_string(), pass(&self.single)),
            (format!("{} per write", self.batch), pass(&self.batched)),
        ]
    }
}

/// Measures the loopback ceiling: `clients` socket pairs; a writer thread
/// (the server's part: TCP_NODELAY, as `chat-server` sets) sends every one of
/// `clients` x `messages` lines to every receiver, first one line per write,
/// then `batch` lines per write; a reader thread (the bench's part: default
/// options, 64 KiB reads over a poller) drains them.
pub fn ceiling(clients: usize, messages: usize, size: usize, batch: usize) -> io::Result<Ceiling> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut writers = Vec::with_capacity(clients);
    let mut readers = Vec::with_capacity(clients);
    for _ in 0..clients {
        let reader = std::net::TcpStream::connect(addr)?;
        let (writer, _) = listener.accept()?;
        writer.set_nodelay(true)?;
        reader.set_nonblocking(true)?;
        writers.push(writer);
        readers.push(TcpStream::from_std(reader));
    }
    let names = Names::new(clients);
    let lines: Vec<Vec<u8>> = (0..clients)
        .map(|s| {
            let nick = names.nick(s);
            let mut line = format!("{nick}: [{nick} {} {} ", messages.saturating_sub(1), 10_000_000u64).into_bytes();
            let want = (nick.len() + 2 + size).max(line.len() + 1);
            line.resize(want - 1, b'.');
            line.extend_from_slice(b"]\n");
            line
        })
        .collect();
    let line = lines.iter().map(Vec::len).max().unwrap_or(0);
    let total: u64 = clients as u64 * messages as u64 * lines.iter().map(|l| l.len() as u64).sum::<u64>();
    let deliveries = clients as u64 * clients as u64 * messages as u64;
    let batch = batch.max(1);
    let mut result =
        Ceiling { clients, messages, size, batch, line, deliveries, single: Pass::default(), batched: Pass::default() };
    for batched in [false, true] {
        let started = Instant::now();
        let mut writes = 0u64;
        let finished = std::thread::scope(|scope| -> io::Result<Instant> {
            let reader = scope.spawn(|| drain(&mut readers, total));
            // Message j is sender j % clients's; all receivers get it.
            let order = (0..clients * messages).map(|j| &lines[j % clients]);
            if batched {
                let all: Vec<&Vec<u8>> = order.collect();
                let mut buf = Vec::new();
                for chunk in all.chunks(batch) {
                    buf.clear();
                    chunk.iter().for_each(|l| buf.extend_from_slice(l));
                    for w in writers.iter_mut() {
                        w.write_all(&buf)?;
                        writes += 1;
                    }
                }
            } else {
                for l in order {
                    for w in writers.iter_mut() {
                        w.write_all(l)?;
                        writes += 1;
                    }
                }
            }
            reader.join().map_err(|_| io::Error::other("the reader thread panicked"))?
        })?;
        let secs = finished.duration_since(started).as_secs_f64();
        let pass = Pass { writes, secs, deliveries_per_sec: deliveries as f64 / secs.max(1e-9) };
        if batched {
            result.batched = pass;
        } else {
            result.single = pass;
        }
    }
    Ok(result)
}

/// Reads every reader until `total` bytes arrived; returns when.
fn drain(readers: &mut [TcpStream], total: u64) -> io::Result<Instant> {
    let mut poll = Poll::new()?;
    for (i, r) in readers.iter_mut().enumerate() {
        poll.registry().register(r, Token(i), Interest::READABLE)?;
    }
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0; READ_BUFFER];
    let mut got = 0u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    while got < total {
        if Instant::now() > deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "the ceiling's readers stalled"));
        }
        poll.poll(&mut events, Some(Duration::from_secs(1)))?;
        for event in events.iter() {
            let r = &mut readers[event.token().0];
            loop {
                match r.read(&mut buf) {
                    Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "a ceiling socket closed")),
                    Ok(n) => {
                        got += n as u64;
                        if n < buf.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    for r in readers.iter_mut() {
        poll.registry().deregister(r)?;
    }
    Ok(Instant::now())
}
