//! The load generator behind `chat-bench`: many chat clients driven by one
//! thread over one mio poller, and a loopback ceiling to compare a server's
//! figures with.
//!
//! A run connects and registers every client, synchronises them (client 0
//! says a marker line and every client reads up to it, so all the `X joined!`
//! notices are behind them), then the speakers send their messages and every
//! client's stream is checked entry by entry.
//!
//! Every message is self-delimiting, `[{nick} {seq} {micros} ....{check}]`
//! padded with dots to exactly `size` bytes: `{nick}` is its sender, `{seq}`
//! counts from 0, `{micros}` is when it was written, in microseconds since the
//! bench started (one process, one clock), and `{check}` is four hex digits
//! of a hash of the three, so that the head of one message spliced to the
//! tail of another (a server relaying raw chunks can do that) does not pass
//! for a message. Its only `]` is its last byte, so a
//! stream of `{nick}: [payload]` entries splits at each `]` whether or not the
//! server puts a `\n` between them: seed-dialect clients receive no
//! terminators, and the tutorial's server relays raw chunks.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read as _, Write as _};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use memchr::memmem;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use serde_json::{json, Value};

/// Bytes one `read` may return: reads are batched.
const READ_BUFFER: usize = 64 * 1024;

/// How long a run keeps reading after the last expected delivery, to catch
/// duplicates.
const AFTERGLOW: Duration = Duration::from_millis(200);

/// The progress bar appears only once a run has taken this long.
const PROGRESS_AFTER: Duration = Duration::from_secs(2);

/// Hex digits of a message's check.
const CHECK: usize = 4;

/// Lines kept verbatim in a report when they were not what was expected.
const SAMPLES: usize = 5;

/// How the bench's clients talk to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Dialect {
    /// Like `nc`: the nickname and each message is a line ending in `\n`.
    Line,
    /// Like the tutorial's Python client: the bare nickname, then each
    /// message as `{nick}: {text}` in one write with no terminator.
    Seed,
}

impl Dialect {
    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Line => "line",
            Dialect::Seed => "seed",
        }
    }

    fn registered(self) -> &'static [u8] {
        match self {
            Dialect::Line => b"Connected to server!\n",
            Dialect::Seed => b"Connected to server!",
        }
    }
}

/// What a run is asked to do.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The server.
    pub addr: SocketAddr,
    pub dialect: Dialect,
    /// Clients connected and registered; each must receive every message.
    pub clients: usize,
    /// The first `speakers` clients send messages (at most `clients`).
    pub speakers: usize,
    /// Messages each speaker sends.
    pub messages: usize,
    /// Bytes of each message's text (the payload, without `{nick}: `).
    pub size: usize,
    /// Messages a second per speaker; `None`: as fast as the socket takes
    /// them.
    pub rate: Option<f64>,
    /// Set TCP_NODELAY on the bench's sockets.
    pub nodelay: bool,
    /// The whole run ends by then, finished or not.
    pub timeout: Duration,
    /// Once everything is sent, the run ends after this long without input.
    pub settle: Duration,
    /// Registrations in flight at once.
    pub concurrency: usize,
    /// Show a progress bar (on runs longer than a couple of seconds).
    pub progress: bool,
    /// How long every client stays registered and idle before anyone speaks.
    pub hold: Duration,
    /// Unpaced speakers wait for their own echo when this many of their
    /// messages are out (closed loop); `None`: no limit.
    pub window: Option<usize>,
    /// Write each client's received bytes to `client-{i}.bin` here.
    pub dump: Option<std::path::PathBuf>,
}

impl Plan {
    /// The smallest message size this plan's fields fit in.
    pub fn min_size(&self) -> usize {
        let tag_len = 5;
        let nick = tag_len + digits(self.clients.saturating_sub(1) as u64);
        let seq = digits(self.messages.saturating_sub(1) as u64);
        let micros = digits(self.max_micros());
        1 + nick + 1 + seq + 1 + micros + 1 + CHECK + 1
    }

    /// The latest timestamp a message of this run can carry.
    fn max_micros(&self) -> u64 {
        (self.timeout + self.hold + Duration::from_secs(1)).as_micros().min(u128::from(u64::MAX)) as u64
    }

    /// Deliveries a perfect run makes: every client receives every message,
    /// its own included.
    pub fn expected(&self) -> u64 {
        self.clients as u64 * self.speakers as u64 * self.messages as u64
    }
}

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Latency {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

/// What a run found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub addr: String,
    pub dialect: &'static str,
    pub clients: usize,
    pub speakers: usize,
    pub messages: usize,
    pub size: usize,
    pub rate: Option<f64>,
    /// Clients that completed registration, and how long that took.
    pub registered: usize,
    pub register_secs: f64,
    pub expected: u64,
    /// Distinct messages delivered intact, attributed to their sender.
    pub deliveries: u64,
    /// Expected deliveries that never arrived intact.
    pub lost: u64,
    /// Deliveries of a message the client had already received.
    pub duplicated: u64,
    /// Deliveries that arrived after a later message of the same sender.
    pub reordered: u64,
    /// Intact messages whose `{nick}: ` prefix was not their sender.
    pub misattributed: u64,
    /// Entries that looked like a message but did not parse or had the
    /// wrong length.
    pub torn: u64,
    /// Lines that were neither messages nor broken messages (notices).
    pub other: u64,
    /// Clients the server closed while the run was on.
    pub closed: usize,
    /// Messages sent, and how long sending took from the first.
    pub sent: u64,
    pub send_secs: f64,
    /// From the first message sent to the last delivery.
    pub elapsed_secs: f64,
    pub deliveries_per_sec: f64,
    /// Send to receipt at the other clients (own echoes excluded).
    pub latency: Latency,
    pub timed_out: bool,
    /// Why the run stopped early, if it did.
    pub error: Option<String>,
    /// A few of the lines that were not what was expected.
    pub samples: Vec<String>,
}

impl Report {
    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && !self.timed_out
            && self.lost == 0
            && self.duplicated == 0
            && self.reordered == 0
            && self.misattributed == 0
            && self.torn == 0
            && self.closed == 0
    }

    /// The report as a JSON object.
    pub fn json(&self) -> Value {
        json!({
            "addr": self.addr,
            "dialect": self.dialect,
            "clients": self.clients,
            "speakers": self.speakers,
            "messages": self.messages,
            "size": self.size,
            "rate": self.rate,
            "registered": self.registered,
            "register_secs": round(self.register_secs, 6),
            "expected": self.expected,
            "deliveries": self.deliveries,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "reordered": self.reordered,
            "misattributed": self.misattributed,
            "torn": self.torn,
            "other": self.other,
            "closed": self.closed,
            "sent": self.sent,
            "send_secs": round(self.send_secs, 6),
            "elapsed_secs": round(self.elapsed_secs, 6),
            "deliveries_per_sec": self.deliveries_per_sec.round(),
            "latency_us": {
                "count": self.latency.count,
                "p50": self.latency.p50,
                "p90": self.latency.p90,
                "p99": self.latency.p99,
                "max": self.latency.max,
            },
            "timed_out": self.timed_out,
            "error": self.error,
            "samples": self.samples,
            "ok": self.ok(),
        })
    }

    /// The report as rows of a table for people (see [`table`]).
    pub fn rows(&self) -> Vec<(String, String)> {
        let pace = match self.rate {
            Some(rate) => format!("{rate} msg/s per speaker"),
            None => "unpaced".to_string(),
        };
        let mut rows: Vec<(&str, String)> = vec![
            ("server", self.addr.clone()),
            (
                "run",
                format!(
                    "{} clients ({} speaking) x {} messages x {} bytes, {} dialect, {pace}",
                    self.clients, self.speakers, self.messages, self.size, self.dialect
                ),
            ),
            ("registered", format!("{} in {:.3} s", self.registered, self.register_secs)),
            ("sent", format!("{} messages in {:.3} s", self.sent, self.send_secs)),
            ("expected", self.expected.to_string()),
            ("deliveries", self.deliveries.to_string()),
            ("lost", self.lost.to_string()),
            ("duplicated", self.duplicated.to_string()),
            ("reordered", self.reordered.to_string()),
            ("misattributed", self.misattributed.to_string()),
            ("torn", self.torn.to_string()),
            ("other lines", self.other.to_string()),
            ("closed by server", self.closed.to_string()),
            ("elapsed", format!("{:.3} s (first send to last delivery)", self.elapsed_secs)),
            ("deliveries/s", format!("{:.0}", self.deliveries_per_sec)),
        ];
        if self.latency.count > 0 {
            let ms = |us: u64| format!("{:.3}", us as f64 / 1000.0);
            rows.push((
                "latency ms",
                format!(
                    "p50 {}  p90 {}  p99 {}  max {}  ({} samples)",
                    ms(self.latency.p50),
                    ms(self.latency.p90),
                    ms(self.latency.p99),
                    ms(self.latency.max),
                    self.latency.count
                ),
            ));
        }
        if self.timed_out {
            rows.push(("timed out", "yes: these are the figures so far".to_string()));
        }
        if let Some(error) = &self.error {
            rows.push(("error", error.clone()));
        }
        for sample in &self.samples {
            rows.push(("unexpected", sample.clone()));
        }
        rows.push(("result", if self.ok() { "OK" } else { "FAILED" }.to_string()));
        rows.into_iter().map(|(name, value)| (name.to_string(), value)).collect()
    }
}

/// Rows of `name  value`, names padded to one width.
pub fn table(rows: &[(String, String)]) -> String {
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    rows.iter().map(|(name, value)| format!("  {name:width$}  {value}\n")).collect()
}

fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

fn digits(mut n: u64) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// Decimal digits only, at most 19 of them.
fn parse_dec(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 19 {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &b| b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0')))
}

/// Exactly four lowercase hex digits.
fn parse_hex(bytes: &[u8]) -> Option<u16> {
    if bytes.len() != CHECK {
        return None;
    }
    bytes.iter().try_fold(0u16, |n, &b| {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        Some(n << 4 | u16::from(digit))
    })
}

/// A message's check: 16 bits of a hash of its sender, number and time.
fn check(sender: usize, seq: usize, micros: u64) -> u16 {
    let x = (sender as u64) << 44 ^ (seq as u64) << 24 ^ micros;
    (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as u16
}

/// A tag unique enough to keep this run's nicknames apart from anyone
/// else's in the room: `b`, three base-36 characters, `_`.
fn run_tag() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mut x = (u64::from(std::process::id()) << 20 ^ u64::from(nanos)) % (36 * 36 * 36);
    let mut tag = String::from("b");
    for _ in 0..3 {
        tag.push(char::from_digit((x % 36) as u32, 36).unwrap_or('0'));
        x /= 36;
    }
    tag.push('_');
    tag
}

/// Text of a few bytes for a report: lossy UTF-8, control characters
/// escaped, cut to 120 characters.
fn sample(bytes: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(bytes).escape_debug().collect();
    if text.chars().count() > 120 {
        format!("{}...", text.chars().take(120).collect::<String>())
    } else {
        text
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Connected (or connecting), waiting for `NICK`.
    Nick,
    /// Nickname sent, waiting for `Connected to server!`.
    Registering,
    /// Registered, waiting for the sync marker.
    Joined,
    /// Past the sync marker: reading messages.
    Ready,
    Closed,
}

struct Client {
    stream: TcpStream,
    phase: Phase,
    /// Received bytes not parsed yet (the start of an entry).
    pending: Vec<u8>,
    /// Bytes to send, from `out_pos` on.
    out: Vec<u8>,
    out_pos: usize,
    writable: bool,
    /// Messages formatted so far.
    sent: usize,
    /// All its messages are written.
    done: bool,
    /// Its own messages it received back.
    echoed: usize,
    /// Everything it received, when dumping.
    log: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Registering,
    Syncing,
    Holding(Instant),
    Messages,
}

/// The checks: one bit per (receiver, sender, seq), and per (receiver,
/// sender) the next sequence number expected.
struct Ledger {
    speakers: usize,
    messages: usize,
    seen: Vec<u64>,
    next: Vec<u32>,
}

impl Ledger {
    fn new(clients: usize, speakers: usize, messages: usize) -> Ledger {
        let bits = clients * speakers * messages;
        Ledger { speakers, messages, seen: vec![0; bits.div_ceil(64)], next: vec![0; clients * speakers] }
    }

    /// Records a delivery; `None` if it is a duplicate, else whether it
    /// came in order.
    fn record(&mut self, receiver: usize, sender: usize, seq: usize) -> Option<bool> {
        let pair = receiver * self.speakers + sender;
        let bit = pair * self.messages + seq;
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        if self.seen[word] & mask != 0 {
            return None;
        }
        self.seen[word] |= mask;
        let next = &mut self.next[pair];
        let in_order = seq as u32 >= *next;
        *next = (*next).max(seq as u32 + 1);
        Some(in_order)
    }
}

/// One run of the bench.
struct Bench<'p> {
    plan: &'p Plan,
    tag: String,
    start: Instant,
    poll: Poll,
    clients: Vec<Client>,
    buf: Vec<u8>,
    stage: Stage,
    next_connect: usize,
    in_flight: usize,
    registered: usize,
    register_secs: f64,
    synced: usize,
    sync_sent: bool,
    registered_marker: memmem::Finder<'static>,
    sync_marker: memmem::Finder<'static>,
    /// Paced sends due: (micros since start, client).
    due: BinaryHeap<Reverse<(u64, usize)>>,
    period_us: f64,
    msg_start: Option<Instant>,
    speakers_done: usize,
    sent: u64,
    send_done: Option<Instant>,
    last_delivery: Option<Instant>,
    last_input: Instant,
    ledger: Ledger,
    latency: Histogram<u64>,
    deliveries: u64,
    duplicated: u64,
    reordered: u64,
    misattributed: u64,
    torn: u64,
    other: u64,
    closed: usize,
    /// Clients closed, whenever.
    gone: usize,
    samples: Vec<String>,
    error: Option<String>,
}

/// Runs `plan` against its server. `registered` is called once every client
/// is registered, synchronised and has held for `plan.hold`, just before the
/// first message is sent (the idle mode reads the server's memory there).
pub fn run(plan: &Plan, registered: &mut dyn FnMut()) -> Report {
    let start = Instant::now();
    let mut report = Report {
        addr: plan.addr.to_string(),
        dialect: plan.dialect.name(),
        clients: plan.clients,
        speakers: plan.speakers,
        messages: plan.messages,
        size: plan.size,
        rate: plan.rate,
        expected: plan.expected(),
        ..Report::default()
    };
    let poll = match Poll::new() {
        Ok(poll) => poll,
        Err(e) => {
            report.error = Some(format!("cannot create a poller: {e}"));
            return report;
        }
    };
    let tag = run_tag();
    let sync_marker = memmem::Finder::new(format!("[sync {tag}]").as_bytes()).into_owned();
    let mut bench = Bench {
        plan,
        start,
        poll,
        clients: Vec::with_capacity(plan.clients),
        buf: vec![0; READ_BUFFER],
        stage: Stage::Registering,
        next_connect: 0,
        in_flight: 0,
        registered: 0,
        register_secs: 0.0,
        synced: 0,
        sync_sent: false,
        registered_marker: memmem::Finder::new(plan.dialect.registered()).into_owned(),
        sync_marker,
        tag,
        due: BinaryHeap::new(),
        period_us: plan.rate.map_or(0.0, |r| 1e6 / r),
        msg_start: None,
        speakers_done: 0,
        sent: 0,
        send_done: None,
        last_delivery: None,
        last_input: start,
        ledger: Ledger::new(plan.clients, plan.speakers, plan.messages),
        latency: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"),
        deliveries: 0,
        duplicated: 0,
        reordered: 0,
        misattributed: 0,
        torn: 0,
        other: 0,
        closed: 0,
        gone: 0,
        samples: Vec::new(),
        error: None,
    };
    let timed_out = bench.event_loop(registered);
    bench.fill(&mut report);
    if let Some(dir) = &plan.dump {
        let written = std::fs::create_dir_all(dir).and_then(|()| {
            bench
                .clients
                .iter()
                .enumerate()
                .try_for_each(|(i, c)| std::fs::write(dir.join(format!("client-{i}.bin")), &c.log))
        });
        if let Err(e) = written {
            report.error.get_or_insert(format!("cannot dump to {}: {e}", dir.display()));
        }
    }
    report.timed_out = timed_out;
    report
}

impl Bench<'_> {
    fn micros(&self, at: Instant) -> u64 {
        at.duration_since(self.start).as_micros() as u64
    }

    fn nick(&self, i: usize) -> String {
        format!("{}{i}", self.tag)
    }

    /// The client index a nickname of this run stands for.
    fn index_of(&self, nick: &[u8]) -> Option<usize> {
        let tag = self.tag.as_bytes();
        if nick.len() <= tag.len() || nick.iter().zip(tag).any(|(a, b)| a != b) {
            return None;
        }
        let n = parse_dec(&nick[tag.len()..])? as usize;
        (n < self.plan.clients).then_some(n)
    }

    /// Returns whether the run timed out.
    fn event_loop(&mut self, registered: &mut dyn FnMut()) -> bool {
        let deadline = self.start + self.plan.timeout;
        let mut events = Events::with_capacity(1024);
        let progress = ProgressBar::hidden();
        progress.set_style(
            ProgressStyle::with_template("{msg:>12} [{bar:40}] {human_pos}/{human_len} {elapsed} eta {eta}")
                .expect("valid progress template")
                .progress_chars("=> "),
        );
        progress.set_length(self.plan.clients as u64);
        progress.set_message("registered");
        let mut progress_shown = false;
        let mut complete_at: Option<Instant> = None;
        self.connect_more();
        loop {
            let now = Instant::now();
            if self.error.is_some() {
                progress.finish_and_clear();
                return false;
            }
            if now >= deadline {
                progress.finish_and_clear();
                return true;
            }
            if self.stage == Stage::Messages {
                if complete_at.is_none() && self.deliveries == self.plan.expected() {
                    complete_at = Some(now);
                }
                if complete_at.is_some_and(|at| now >= at + AFTERGLOW) {
                    break;
                }
                let quiet = self.send_done.is_some() || self.plan.window.is_some();
                if quiet && now >= self.last_input + self.plan.settle {
                    break;
                }
                if self.gone == self.plan.clients {
                    break;
                }
            }
            if self.plan.progress {
                if !progress_shown && now >= self.start + PROGRESS_AFTER {
                    progress.set_draw_target(ProgressDrawTarget::stderr());
                    progress_shown = true;
                }
                match self.stage {
                    Stage::Messages => progress.set_position(self.deliveries),
                    _ => progress.set_position(self.registered as u64),
                }
            }
            let mut wake = deadline;
            if let Some(Reverse((at, _))) = self.due.peek() {
                wake = wake.min(self.start + Duration::from_micros(*at));
            }
            if let Stage::Holding(until) = self.stage {
                wake = wake.min(until);
            }
            if let Some(at) = complete_at {
                wake = wake.min(at + AFTERGLOW);
            }
            if self.send_done.is_some() || (self.stage == Stage::Messages && self.plan.window.is_some()) {
                wake = wake.min(self.last_input + self.plan.settle);
            }
            if self.plan.progress {
                wake = wake.min(now + Duration::from_millis(100));
            }
            match self.poll.poll(&mut events, Some(wake.saturating_duration_since(now))) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.error = Some(format!("poll failed: {e}"));
                    continue;
                }
            }
            for event in events.iter() {
                let i = event.token().0;
                if i >= self.clients.len() || self.clients[i].phase == Phase::Closed {
                    continue;
                }
                if event.is_writable() || event.is_write_closed() {
                    self.clients[i].writable = true;
                }
                let hung_up = event.is_read_closed() || event.is_error();
                if event.is_readable() || hung_up {
                    self.read(i, hung_up);
                }
                self.flush(i);
            }
            self.advance(registered, &progress);
        }
        progress.finish_and_clear();
        false
    }

    /// Moves the run on: more connections, the sync line, the first
    /// messages, the paced messages that are due.
    fn advance(&mut self, registered: &mut dyn FnMut(), progress: &ProgressBar) {
        loop {
            let stage = self.stage;
            self.advance_once(registered, progress);
            if self.stage == stage || self.error.is_some() {
                return;
            }
        }
    }

    fn advance_once(&mut self, registered: &mut dyn FnMut(), progress: &ProgressBar) {
        let now = Instant::now();
        match self.stage {
            Stage::Registering => {
                self.connect_more();
                if self.registered == self.plan.clients {
                    self.register_secs = now.duration_since(self.start).as_secs_f64();
                    self.stage = Stage::Syncing;
                }
            }
            Stage::Syncing => {
                if !self.sync_sent {
                    self.sync_sent = true;
                    let line = match self.plan.dialect {
                        Dialect::Line => format!("[sync {}]\n", self.tag),
                        Dialect::Seed => format!("{}: [sync {}]", self.nick(0), self.tag),
                    };
                    self.clients[0].out.extend_from_slice(line.as_bytes());
                    self.flush(0);
                }
                if self.synced == self.plan.clients {
                    self.stage = Stage::Holding(now + self.plan.hold);
                }
            }
            Stage::Holding(until) if now >= until => {
                registered();
                progress.set_length(self.plan.expected());
                progress.set_position(0);
                progress.set_message("deliveries");
                let now = Instant::now();
                self.stage = Stage::Messages;
                self.msg_start = Some(now);
                self.last_input = now;
                if self.plan.messages == 0 || self.plan.speakers == 0 {
                    self.send_done = Some(now);
                }
                let first = self.micros(now);
                for i in 0..self.plan.speakers {
                    match self.plan.rate {
                        Some(_) => {
                            let offset = self.period_us * i as f64 / self.plan.speakers as f64;
                            self.due.push(Reverse((first + offset as u64, i)));
                        }
                        None => self.flush(i),
                    }
                }
            }
            Stage::Holding(_) => {}
            Stage::Messages => {
                let now_us = self.micros(now);
                while let Some(&Reverse((at, i))) = self.due.peek() {
                    if at > now_us {
                        break;
                    }
                    self.due.pop();
                    if self.clients[i].phase == Phase::Closed {
                        continue;
                    }
                    self.queue_message(i);
                    let client = &self.clients[i];
                    if client.sent < self.plan.messages {
                        let next = self.msg_start.map_or(0, |s| self.micros(s)) as f64
                            + self.period_us * (client.sent as f64 + i as f64 / self.plan.speakers as f64);
                        self.due.push(Reverse((next as u64, i)));
                    }
                    self.flush(i);
                }
            }
        }
    }

    fn connect_more(&mut self) {
        while self.stage == Stage::Registering
            && self.next_connect < self.plan.clients
            && self.in_flight < self.plan.concurrency
        {
            let i = self.next_connect;
            let mut stream = match TcpStream::connect(self.plan.addr) {
                Ok(stream) => stream,
                Err(e) => {
                    self.error = Some(format!("client {i}: cannot connect to {}: {e}", self.plan.addr));
                    return;
                }
            };
            if self.plan.nodelay {
                let _ = stream.set_nodelay(true);
            }
            if let Err(e) =
                self.poll.registry().register(&mut stream, Token(i), Interest::READABLE | Interest::WRITABLE)
            {
                self.error = Some(format!("client {i}: cannot watch its socket: {e}"));
                return;
            }
            self.clients.push(Client {
                stream,
                phase: Phase::Nick,
                pending: Vec::new(),
                out: Vec::new(),
                out_pos: 0,
                writable: false,
                sent: 0,
                done: false,
                echoed: 0,
                log: Vec::new(),
            });
            self.next_connect += 1;
            self.in_flight += 1;
        }
    }

    /// Appends client `i`'s next message, stamped now.
    fn queue_message(&mut self, i: usize) {
        let now_us = self.micros(Instant::now());
        let nick = self.nick(i);
        let client = &mut self.clients[i];
        let seq = client.sent;
        client.sent += 1;
        self.sent += 1;
        let out = &mut client.out;
        if self.plan.dialect == Dialect::Seed {
            out.extend_from_slice(nick.as_bytes());
            out.extend_from_slice(b": ");
        }
        let at = out.len();
        let _ = write!(out, "[{nick} {seq} {now_us} ");
        let used = out.len() - at;
        out.resize(at + self.plan.size.max(used + CHECK + 1) - CHECK - 1, b'.');
        let _ = write!(out, "{:04x}]", check(i, seq, now_us));
        if self.plan.dialect == Dialect::Line {
            out.push(b'\n');
        }
    }

    /// Writes what client `i` has to send; unpaced speakers format message
    /// after message while the socket takes them.
    fn flush(&mut self, i: usize) {
        loop {
            let unpaced = self.stage == Stage::Messages && self.plan.rate.is_none();
            let client = &mut self.clients[i];
            if client.phase == Phase::Closed {
                return;
            }
            if client.out_pos == client.out.len() {
                client.out.clear();
                client.out_pos = 0;
                if self.stage == Stage::Messages && i < self.plan.speakers && !client.done {
                    if client.sent == self.plan.messages {
                        client.done = true;
                        self.speakers_done += 1;
                        if self.speakers_done == self.plan.speakers {
                            self.send_done = Some(Instant::now());
                        }
                        return;
                    }
                    let window_full = self.plan.window.is_some_and(|w| client.sent - client.echoed >= w);
                    if !unpaced || !client.writable || window_full {
                        return;
                    }
                    self.queue_message(i);
                    continue;
                }
                return;
            }
            if !client.writable {
                return;
            }
            match client.stream.write(&client.out[client.out_pos..]) {
                Ok(n) => {
                    client.out_pos += n;
                    if client.out_pos < client.out.len() {
                        client.writable = false;
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    client.writable = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(i, &format!("write failed: {e}"));
                    return;
                }
            }
        }
    }

    /// Reads what client `i`'s socket holds. A short read means it is
    /// drained (the next bytes raise a new edge), unless the peer hung up:
    /// then the end of the stream may still be behind the bytes read, with
    /// no edge to come, so it reads on to the end.
    fn read(&mut self, i: usize, hung_up: bool) {
        let mut buf = std::mem::take(&mut self.buf);
        loop {
            match self.clients[i].stream.read(&mut buf) {
                Ok(0) => {
                    self.close(i, "closed by the server");
                    break;
                }
                Ok(n) => {
                    self.last_input = Instant::now();
                    if self.plan.dump.is_some() {
                        self.clients[i].log.extend_from_slice(&buf[..n]);
                    }
                    self.receive(i, &buf[..n]);
                    if (n < buf.len() && !hung_up) || self.clients[i].phase == Phase::Closed {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(i, &format!("read failed: {e}"));
                    break;
                }
            }
        }
        self.buf = buf;
    }

    /// Bytes from client `i`'s socket: parsed as far as they go, the rest
    /// kept for the next read.
    fn receive(&mut self, i: usize, data: &[u8]) {
        if self.clients[i].pending.is_empty() {
            let used = self.process(i, data);
            self.clients[i].pending.extend_from_slice(&data[used..]);
        } else {
            let mut pending = std::mem::take(&mut self.clients[i].pending);
            pending.extend_from_slice(data);
            let used = self.process(i, &pending);
            pending.drain(..used);
            if pending.capacity() > 2 * READ_BUFFER && pending.len() < 4096 {
                pending.shrink_to(4096);
            }
            self.clients[i].pending = pending;
        }
    }

    /// Handles what `data` holds for client `i`; returns how many bytes it
    /// used.
    fn process(&mut self, i: usize, data: &[u8]) -> usize {
        let mut pos = 0;
        loop {
            let rest = &data[pos..];
            match self.clients[i].phase {
                Phase::Nick => {
                    let n = rest.len().min(4);
                    if rest[..n] != b"NICK"[..n] {
                        self.fail(i, "expected NICK", rest);
                        return data.len();
                    }
                    if n < 4 {
                        return pos;
                    }
                    pos += 4;
                    let nick = self.nick(i);
                    let client = &mut self.clients[i];
                    client.out.extend_from_slice(nick.as_bytes());
                    if self.plan.dialect == Dialect::Line {
                        client.out.push(b'\n');
                    }
                    client.phase = Phase::Registering;
                    self.flush(i);
                }
                Phase::Registering => match self.registered_marker.find(rest) {
                    Some(at) => {
                        pos += at + self.registered_marker.needle().len();
                        self.clients[i].phase = Phase::Joined;
                        self.registered += 1;
                        self.in_flight -= 1;
                    }
                    None => {
                        if memmem::find(rest, b"refused").is_some() || memmem::find(rest, b"room is full").is_some() {
                            self.fail(i, "registration refused", rest);
                            return data.len();
                        }
                        return pos.max(data.len().saturating_sub(self.registered_marker.needle().len()));
                    }
                },
                Phase::Joined => match self.sync_marker.find(rest) {
                    Some(at) => {
                        pos += at + self.sync_marker.needle().len();
                        self.clients[i].phase = Phase::Ready;
                        self.synced += 1;
                    }
                    None => return pos.max(data.len().saturating_sub(self.sync_marker.needle().len())),
                },
                Phase::Ready => {
                    let before = self.deliveries;
                    let used = self.entries(i, rest);
                    if self.deliveries > before {
                        self.last_delivery = Some(Instant::now());
                    }
                    return pos + used;
                }
                Phase::Closed => return data.len(),
            }
        }
    }

    /// Parses the entries in `data` for receiver `r`: `{nick}: [payload]`,
    /// each ending at its `]`, `\n` between them or not. Returns the bytes
    /// used: everything up to an incomplete last entry.
    fn entries(&mut self, r: usize, data: &[u8]) -> usize {
        let now_us = self.micros(Instant::now());
        let mut pos = 0;
        loop {
            while pos < data.len() && data[pos] == b'\n' {
                pos += 1;
            }
            let rest = &data[pos..];
            let Some(end) = memchr::memchr2(b']', b'\n', rest) else {
                // No entry is this long: drop it rather than wait forever.
                if rest.len() > 2 * self.plan.size + 1024 {
                    self.torn += 1;
                    self.note(rest);
                    return data.len();
                }
                return pos;
            };
            if rest[end] == b'\n' {
                self.odd_line(&rest[..end]);
            } else {
                self.entry(r, &rest[..=end], now_us);
            }
            pos += end + 1;
        }
    }

    /// A whole line with no `]`: a notice, or a message cut short.
    fn odd_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return;
        }
        if memchr::memchr(b'[', line).is_some() {
            self.torn += 1;
        } else {
            self.other += 1;
        }
        self.note(line);
    }

    /// One entry ending in `]`.
    fn entry(&mut self, r: usize, entry: &[u8], now_us: u64) {
        let Some(open) = memchr::memrchr(b'[', entry) else {
            self.torn += 1;
            return self.note(entry);
        };
        let (head, payload) = entry.split_at(open);
        let Some(head) = head.strip_suffix(b": ") else {
            self.torn += 1;
            return self.note(entry);
        };
        // The nickname is this run's tag and digits before `: ` (else the
        // run of nickname characters there); anything before it was glued
        // on (a notice, a broken message).
        let nick_start = match memmem::rfind(head, self.tag.as_bytes()) {
            Some(at) => at,
            None => head.iter().rposition(|&b| !(b.is_ascii_alphanumeric() || b == b'_')).map_or(0, |at| at + 1),
        };
        let (junk, prefix) = head.split_at(nick_start);
        if !junk.is_empty() {
            self.odd_line(junk);
        }
        let Some((sender, seq, sent_us)) = self.parse_payload(payload) else {
            self.torn += 1;
            return self.note(entry);
        };
        if self.index_of(prefix) != Some(sender) {
            self.misattributed += 1;
            return self.note(entry);
        }
        match self.ledger.record(r, sender, seq) {
            None => self.duplicated += 1,
            Some(in_order) => {
                self.deliveries += 1;
                if !in_order {
                    self.reordered += 1;
                }
                if r != sender {
                    self.latency.saturating_record(now_us.saturating_sub(sent_us).max(1));
                } else {
                    self.clients[r].echoed += 1;
                    if self.plan.window.is_some() {
                        self.flush(r);
                    }
                }
            }
        }
    }

    /// `[{nick} {seq} {micros} ....{check}]` of exactly the plan's size,
    /// from a speaker of this run: (sender, seq, micros).
    fn parse_payload(&self, payload: &[u8]) -> Option<(usize, usize, u64)> {
        if payload.len() != self.plan.size {
            return None;
        }
        let inner = payload.strip_prefix(b"[")?.strip_suffix(b"]")?;
        let mut fields = inner.splitn(4, |&b| b == b' ');
        let sender = self.index_of(fields.next()?)?;
        let seq = parse_dec(fields.next()?)? as usize;
        let micros = parse_dec(fields.next()?)?;
        let rest = fields.next()?;
        let (padding, sum) = rest.split_at(rest.len().checked_sub(CHECK)?);
        const DOTS: [u8; 64] = [b'.'; 64];
        let ok = sender < self.plan.speakers
            && seq < self.plan.messages
            && padding.chunks(DOTS.len()).all(|chunk| *chunk == DOTS[..chunk.len()])
            && parse_hex(sum) == Some(check(sender, seq, micros));
        ok.then_some((sender, seq, micros))
    }

    fn note(&mut self, bytes: &[u8]) {
        if self.samples.len() < SAMPLES {
            self.samples.push(sample(bytes));
        }
    }

    /// A client that cannot register stops the run.
    fn fail(&mut self, i: usize, why: &str, got: &[u8]) {
        if self.error.is_none() {
            self.error = Some(format!("client {i} ({}): {why}; got {:?}", self.nick(i), sample(got)));
        }
        self.close(i, why);
    }

    fn close(&mut self, i: usize, why: &str) {
        let phase = self.clients[i].phase;
        if phase == Phase::Closed {
            return;
        }
        let pending = std::mem::take(&mut self.clients[i].pending);
        let client = &mut self.clients[i];
        client.phase = Phase::Closed;
        self.gone += 1;
        let _ = self.poll.registry().deregister(&mut client.stream);
        if i < self.plan.speakers && !client.done {
            client.done = true;
            self.speakers_done += 1;
            if self.speakers_done == self.plan.speakers {
                self.send_done = Some(Instant::now());
            }
        }
        match phase {
            Phase::Ready => {
                self.closed += 1;
                if !pending.is_empty() {
                    self.odd_line(&pending);
                }
            }
            _ => {
                if phase == Phase::Nick || phase == Phase::Registering {
                    self.in_flight = self.in_flight.saturating_sub(1);
                }
                if self.error.is_none() {
                    self.error = Some(format!(
                        "client {i} ({}) {why} before the run started; it had received {:?}",
                        self.nick(i),
                        sample(&pending)
                    ));
                }
            }
        }
    }

    fn fill(&self, report: &mut Report) {
        report.registered = self.registered;
        report.register_secs =
            if self.registered == self.plan.clients { self.register_secs } else { self.start.elapsed().as_secs_f64() };
        report.deliveries = self.deliveries;
        report.lost = self.plan.expected() - self.deliveries;
        report.duplicated = self.duplicated;
        report.reordered = self.reordered;
        report.misattributed = self.misattributed;
        report.torn = self.torn;
        report.other = self.other;
        report.closed = self.closed;
        report.sent = self.sent;
        if let Some(start) = self.msg_start {
            report.send_secs = self.send_done.unwrap_or_else(Instant::now).duration_since(start).as_secs_f64();
            report.elapsed_secs = self.last_delivery.map_or(0.0, |at| at.duration_since(start).as_secs_f64());
        }
        if report.elapsed_secs > 0.0 {
            report.deliveries_per_sec = self.deliveries as f64 / report.elapsed_secs;
        }
        if !self.latency.is_empty() {
            report.latency = Latency {
                count: self.latency.len(),
                p50: self.latency.value_at_quantile(0.50),
                p90: self.latency.value_at_quantile(0.90),
                p99: self.latency.value_at_quantile(0.99),
                max: self.latency.max(),
            };
        }
        report.samples = self.samples.clone();
        report.error = self.error.clone();
    }
}

/// The server's resident memory in KiB (`VmRSS` of `/proc/PID/status`).
pub fn vm_rss_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no VmRSS in /proc/{pid}/status")))
}

/// One way of writing in the loopback ceiling.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pass {
    pub writes: u64,
    pub secs: f64,
    pub deliveries_per_sec: f64,
}

/// This machine's loopback limit for a room's fan-out, with no server.
#[derive(Clone, Debug, Default)]
pub struct Ceiling {
    pub clients: usize,
    pub messages: usize,
    pub size: usize,
    pub batch: usize,
    /// Bytes of one delivered line, `{nick}: ` and `\n` included.
    pub line: usize,
    pub deliveries: u64,
    /// One write per delivery.
    pub single: Pass,
    /// `batch` messages per write.
    pub batched: Pass,
}

impl Ceiling {
    /// As a JSON object.
    pub fn json(&self) -> Value {
        let pass = |p: &Pass| json!({"writes": p.writes, "secs": round(p.secs, 6), "deliveries_per_sec": p.deliveries_per_sec.round()});
        json!({
            "clients": self.clients,
            "messages": self.messages,
            "size": self.size,
            "batch": self.batch,
            "line_bytes": self.line,
            "deliveries": self.deliveries,
            "single": pass(&self.single),
            "batched": pass(&self.batched),
        })
    }

    /// As rows of a table for people (see [`table`]).
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
    let tag = run_tag();
    let lines: Vec<Vec<u8>> = (0..clients)
        .map(|s| {
            let nick = format!("{tag}{s}");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_counts_duplicates_and_order() {
        let mut ledger = Ledger::new(2, 2, 4);
        assert_eq!(ledger.record(1, 1, 0), Some(true));
        assert_eq!(ledger.record(1, 1, 2), Some(true));
        assert_eq!(ledger.record(1, 1, 1), Some(false));
        assert_eq!(ledger.record(1, 1, 2), None);
        assert_eq!(ledger.record(0, 1, 1), Some(true));
    }

    #[test]
    fn numbers_parse_strictly() {
        assert_eq!(parse_dec(b"0"), Some(0));
        assert_eq!(parse_dec(b"1234"), Some(1234));
        assert_eq!(parse_dec(b""), None);
        assert_eq!(parse_dec(b"+1"), None);
        assert_eq!(parse_dec(b"1a"), None);
        assert_eq!(digits(0), 1);
        assert_eq!(digits(99), 2);
        assert_eq!(digits(100), 3);
    }

    #[test]
    fn checks_round_trip_and_differ() {
        let sum = check(4, 14, 74174);
        assert_eq!(parse_hex(format!("{sum:04x}").as_bytes()), Some(sum));
        assert_ne!(check(4, 14, 74174), check(3, 14, 74174));
        assert_eq!(parse_hex(b"00ff"), Some(255));
        assert_eq!(parse_hex(b"00FF"), None);
        assert_eq!(parse_hex(b"0ff"), None);
    }

    #[test]
    fn tags_are_valid_nickname_prefixes() {
        let tag = run_tag();
        assert_eq!(tag.len(), 5);
        assert!(tag.starts_with('b') && tag.ends_with('_'));
        assert!(tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    }
}
