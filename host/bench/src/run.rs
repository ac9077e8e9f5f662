//! One run against a server: many chat clients driven by one thread over one
//! mio poller, every byte they receive checked.
//!
//! A run connects and registers every client, synchronises them (client 0
//! says a marker line and every client reads up to it, so all the `X joined!`
//! notices are behind them), then the speakers send their messages (see
//! [`crate::message`]) and every client's stream is cut into entries, each
//! judged and entered in the [`Ledger`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read as _, Write as _};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use memchr::memmem;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::ledger::{Delivery, Ledger};
use crate::message::{Format, Names, Piece, Pieces, Verdict};
use crate::order::SameOrder;
use crate::plan::{Dialect, Plan};
use crate::report::{sample, Latencies, Report, Samples, Timing};
use crate::tls::Stream;
use crate::websocket::{self, Broken, Rng};
use chat_core::wire::GREETING;

/// Bytes one `read` may return: reads are batched.
pub(crate) const READ_BUFFER: usize = 64 * 1024;

/// How long a run keeps reading after the last expected delivery, to catch
/// duplicates.
const AFTERGLOW: Duration = Duration::from_millis(200);

/// chat-server's answer to a newcomer when every slot is taken (without its
/// line end, which a seed-dialect stream may not have yet).
const ROOM_FULL: &[u8] = chat_core::wire::ROOM_FULL.trim_ascii_end();

/// The progress bar appears only once a run has taken this long.
const PROGRESS_AFTER: Duration = Duration::from_secs(2);

/// Where one client stands.
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

/// One of the bench's chat clients: its socket and its buffers.
struct Client {
    stream: Stream,
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
    /// A web client's side of its WebSocket: the server's frames are read
    /// as lines by it before anything else sees them.
    web: Option<websocket::Receiver>,
}

impl Client {
    fn new(stream: Stream) -> Client {
        Client {
            web: None,
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
        }
    }
}

/// Where the run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Registering,
    Syncing,
    Holding(Instant),
    Messages,
}

/// Connections and registrations: how far they got.
#[derive(Default)]
struct Roster {
    next_connect: usize,
    /// Connected, not registered yet.
    in_flight: usize,
    registered: usize,
    register_secs: f64,
    synced: usize,
    sync_sent: bool,
    /// Clients closed, whenever.
    gone: usize,
}

/// The speakers' side: what is due when, and how far sending got.
#[derive(Default)]
struct Sending {
    /// Paced sends due: (micros since start, client).
    due: BinaryHeap<Reverse<(u64, usize)>>,
    period_us: f64,
    started: Option<Instant>,
    speakers_done: usize,
    sent: u64,
    done: Option<Instant>,
}

/// What the clients look for in their streams before the messages.
struct Markers {
    /// `Connected to server!` in the plan's dialect.
    registered: memmem::Finder<'static>,
    /// Client 0's sync line.
    sync: memmem::Finder<'static>,
}

/// The progress bar, drawn only on long runs to a terminal.
struct Progress {
    bar: ProgressBar,
    enabled: bool,
    shown: bool,
}

impl Progress {
    fn new(enabled: bool, clients: usize) -> Progress {
        let bar = ProgressBar::hidden();
        bar.set_style(
            ProgressStyle::with_template("{msg:>12} [{bar:40}] {human_pos}/{human_len} {elapsed} eta {eta}")
                .expect("valid progress template")
                .progress_chars("=> "),
        );
        bar.set_length(clients as u64);
        bar.set_message("registered");
        Progress { bar, enabled, shown: false }
    }

    fn update(&mut self, now: Instant, start: Instant, position: u64) {
        if !self.enabled {
            return;
        }
        if !self.shown && now >= start + PROGRESS_AFTER {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.shown = true;
        }
        self.bar.set_position(position);
    }

    fn deliveries(&self, expected: u64) {
        self.bar.set_length(expected);
        self.bar.set_position(0);
        self.bar.set_message("deliveries");
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// One run of the bench.
struct Bench<'p> {
    plan: &'p Plan,
    format: Format,
    start: Instant,
    poll: Poll,
    clients: Vec<Client>,
    buf: Vec<u8>,
    stage: Stage,
    roster: Roster,
    sending: Sending,
    markers: Markers,
    last_delivery: Option<Instant>,
    last_input: Instant,
    ledger: Ledger,
    /// With `--same-order`: the order the clients must all have seen.
    order: Option<SameOrder>,
    latencies: Latencies,
    samples: Samples,
    error: Option<String>,
    /// A line being written, before its dialect's framing.
    scratch: Vec<u8>,
    /// Web clients' keys and masks.
    rng: Rng,
}

/// Runs `plan` against its server. `registered` is called once every client
/// is registered, synchronised and has held for `plan.hold`, just before the
/// first message is sent (the server's memory and CPU time are read there).
pub fn run(plan: &Plan, registered: &mut dyn FnMut()) -> Report {
    let start = Instant::now();
    let ledger = Ledger::new(plan.clients, plan.speakers, plan.messages);
    let poll = match Poll::new() {
        Ok(poll) => poll,
        Err(e) => {
            return Report {
                addr: plan.addrs[0],
                clients_per_addr: plan.clients_per_addr(),
                plan: plan.clone(),
                expected: ledger.expected(),
                timing: Timing::default(),
                counts: ledger.counts(),
                same_order: None,
                latency: Default::default(),
                timed_out: false,
                error: Some(format!("cannot create a poller: {e}")),
                samples: Vec::new(),
            }
        }
    };
    let names = Names::new(plan.clients);
    let sync = memmem::Finder::new(format!("[sync {}]", names.tag()).as_bytes()).into_owned();
    let mut bench = Bench {
        plan,
        format: Format { names, size: plan.size, speakers: plan.speakers, messages: plan.messages },
        start,
        poll,
        clients: Vec::with_capacity(plan.clients),
        buf: vec![0; READ_BUFFER],
        stage: Stage::Registering,
        roster: Roster::default(),
        sending: Sending { period_us: plan.rate.map_or(0.0, |r| 1e6 / r), ..Sending::default() },
        markers: Markers { registered: memmem::Finder::new(&crate::plan::registered(plan.dialect)).into_owned(), sync },
        last_delivery: None,
        last_input: start,
        ledger,
        order: plan.same_order.then(|| SameOrder::new(plan.clients, plan.speakers, plan.messages)),
        latencies: Latencies::new(),
        samples: Samples::default(),
        error: None,
        scratch: Vec::new(),
        rng: Rng::new(),
    };
    let timed_out = bench.event_loop(registered);
    if let Some(dir) = &plan.dump {
        let written = std::fs::create_dir_all(dir).and_then(|()| {
            bench
                .clients
                .iter()
                .enumerate()
                .try_for_each(|(i, c)| std::fs::write(dir.join(format!("client-{i}.bin")), &c.log))
        });
        if let Err(e) = written {
            bench.error.get_or_insert(format!("cannot dump to {}: {e}", dir.display()));
        }
    }
    bench.report(timed_out)
}

impl Bench<'_> {
    fn micros(&self, at: Instant) -> u64 {
        at.duration_since(self.start).as_micros() as u64
    }

    fn nick(&self, i: usize) -> String {
        self.format.names.nick(i)
    }

    /// Returns whether the run timed out.
    fn event_loop(&mut self, registered: &mut dyn FnMut()) -> bool {
        let deadline = self.start + self.plan.timeout;
        let mut events = Events::with_capacity(1024);
        let mut progress = Progress::new(self.plan.progress, self.plan.clients);
        let mut complete_at: Option<Instant> = None;
        self.connect_more();
        loop {
            let now = Instant::now();
            if self.error.is_some() {
                return false;
            }
            if now >= deadline {
                return true;
            }
            if self.stage == Stage::Messages {
                if complete_at.is_none() && self.ledger.deliveries() == self.ledger.expected() {
                    complete_at = Some(now);
                }
                if complete_at.is_some_and(|at| now >= at + AFTERGLOW) {
                    return false;
                }
                let quiet = self.sending.done.is_some() || self.plan.window.is_some();
                if quiet && now >= self.last_input + self.plan.settle {
                    return false;
                }
                if self.roster.gone == self.plan.clients {
                    return false;
                }
            }
            let position = match self.stage {
                Stage::Messages => self.ledger.deliveries(),
                _ => self.roster.registered as u64,
            };
            progress.update(now, self.start, position);
            let mut wake = deadline;
            if let Some(Reverse((at, _))) = self.sending.due.peek() {
                wake = wake.min(self.start + Duration::from_micros(*at));
            }
            if let Stage::Holding(until) = self.stage {
                wake = wake.min(until);
            }
            if let Some(at) = complete_at {
                wake = wake.min(at + AFTERGLOW);
            }
            if self.sending.done.is_some() || (self.stage == Stage::Messages && self.plan.window.is_some()) {
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
                if let Err(e) = self.clients[i].stream.flush_records() {
                    self.close(i, &format!("TLS write failed: {e}"));
                    continue;
                }
                let hung_up = event.is_read_closed() || event.is_error();
                if event.is_readable() || hung_up {
                    self.read(i, hung_up);
                }
                self.flush(i);
            }
            self.advance(registered, &progress);
        }
    }

    /// Moves the run on: more connections, the sync line, the first
    /// messages, the paced messages that are due.
    fn advance(&mut self, registered: &mut dyn FnMut(), progress: &Progress) {
        loop {
            let stage = self.stage;
            self.advance_once(registered, progress);
            if self.stage == stage || self.error.is_some() {
                return;
            }
        }
    }

    fn advance_once(&mut self, registered: &mut dyn FnMut(), progress: &Progress) {
        let now = Instant::now();
        match self.stage {
            Stage::Registering => {
                self.connect_more();
                if self.roster.registered == self.plan.clients {
                    self.roster.register_secs = now.duration_since(self.start).as_secs_f64();
                    self.stage = Stage::Syncing;
                }
            }
            Stage::Syncing => {
                if !self.roster.sync_sent {
                    self.roster.sync_sent = true;
                    let line = match self.plan.dialect {
                        Dialect::Seed => format!("{}: [sync {}]", self.nick(0), self.format.names.tag()),
                        _ => format!("[sync {}]", self.format.names.tag()),
                    };
                    self.say(0, line.as_bytes());
                    self.flush(0);
                }
                if self.roster.synced == self.plan.clients {
                    self.stage = Stage::Holding(now + self.plan.hold);
                }
            }
            Stage::Holding(until) if now >= until => {
                registered();
                progress.deliveries(self.ledger.expected());
                let now = Instant::now();
                self.stage = Stage::Messages;
                self.sending.started = Some(now);
                self.last_input = now;
                if self.plan.messages == 0 || self.plan.speakers == 0 {
                    self.sending.done = Some(now);
                }
                let first = self.micros(now);
                for i in 0..self.plan.speakers {
                    match self.plan.rate {
                        Some(_) => {
                            // Staggered: the speakers' messages are spread
                            // over each period, not sent in bursts.
                            let offset = self.sending.period_us * i as f64 / self.plan.speakers as f64;
                            self.sending.due.push(Reverse((first + offset as u64, i)));
                        }
                        None => self.flush(i),
                    }
                }
            }
            Stage::Holding(_) => {}
            Stage::Messages => {
                let now_us = self.micros(now);
                while let Some(&Reverse((at, i))) = self.sending.due.peek() {
                    if at > now_us {
                        break;
                    }
                    self.sending.due.pop();
                    if self.clients[i].phase == Phase::Closed {
                        continue;
                    }
                    self.queue_message(i);
                    let client = &self.clients[i];
                    if client.sent < self.plan.messages {
                        // From the start, not from now: a late wake-up
                        // does not push every later message back.
                        let next = self.sending.started.map_or(0, |s| self.micros(s)) as f64
                            + self.sending.period_us * (client.sent as f64 + i as f64 / self.plan.speakers as f64);
                        self.sending.due.push(Reverse((next as u64, i)));
                    }
                    self.flush(i);
                }
            }
        }
    }

    fn connect_more(&mut self) {
        while self.stage == Stage::Registering
            && self.roster.next_connect < self.plan.clients
            && self.roster.in_flight < self.plan.concurrency
        {
            let i = self.roster.next_connect;
            let server = self.plan.addr_of(i);
            let addr = self.plan.addrs[server];
            let mut stream = match TcpStream::connect(addr) {
                Ok(stream) => stream,
                Err(e) => {
                    self.error = Some(format!("client {i}: cannot connect to {addr}: {e}"));
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
            let stream = match Stream::new(stream, self.plan.tls.as_ref(), server) {
                Ok(stream) => stream,
                Err(e) => {
                    self.error = Some(format!("client {i}: cannot start a TLS session: {e}"));
                    return;
                }
            };
            let mut client = Client::new(stream);
            if self.plan.dialect == Dialect::Web {
                // A browser speaks first: the upgrade, then `NICK` comes.
                let key = self.rng.key();
                client.out = websocket::request(&addr.to_string(), &key);
                client.web = Some(websocket::Receiver::new(&key));
            }
            self.clients.push(client);
            self.roster.next_connect += 1;
            self.roster.in_flight += 1;
        }
    }

    /// Appends client `i`'s next message, stamped now.
    fn queue_message(&mut self, i: usize) {
        let now_us = self.micros(Instant::now());
        let client = &mut self.clients[i];
        let seq = client.sent;
        client.sent += 1;
        self.sending.sent += 1;
        let mut line = std::mem::take(&mut self.scratch);
        line.clear();
        if self.plan.dialect == Dialect::Seed {
            line.extend_from_slice(self.format.names.nick(i).as_bytes());
            line.extend_from_slice(b": ");
        }
        self.format.write(&mut line, i, seq, now_us);
        self.say(i, &line);
        self.scratch = line;
    }

    /// Appends what client `i` says, in its dialect: a line, one write of
    /// the tutorial's client, or a text frame.
    fn say(&mut self, i: usize, text: &[u8]) {
        let out = &mut self.clients[i].out;
        match self.plan.dialect {
            Dialect::Seed => out.extend_from_slice(text),
            Dialect::Web => websocket::text_frame(out, text, self.rng.mask()),
            _ => {
                out.extend_from_slice(text);
                out.push(b'\n');
            }
        }
    }

    /// A speaker has written all its messages (or is gone).
    fn speaker_done(&mut self, i: usize) {
        self.clients[i].done = true;
        self.sending.speakers_done += 1;
        if self.sending.speakers_done == self.plan.speakers {
            self.sending.done = Some(Instant::now());
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
                        self.speaker_done(i);
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
                    let drained = n < buf.len() && !hung_up && !self.clients[i].stream.reads_by_record();
                    if drained || self.clients[i].phase == Phase::Closed {
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

    /// Bytes from client `i`'s socket: a web client's decoded first, then
    /// parsed as far as they go, the rest kept for the next read.
    fn receive(&mut self, i: usize, data: &[u8]) {
        let Some(mut web) = self.clients[i].web.take() else {
            return self.receive_lines(i, data);
        };
        let (mut lines, mut replies) = (std::mem::take(&mut self.scratch), Vec::new());
        lines.clear();
        match web.receive(data, &mut lines, &mut replies, &mut self.rng) {
            // A close frame: the server closes the connection next, and
            // that is when the client counts as closed.
            Ok(_) => {
                self.clients[i].web = Some(web);
                self.clients[i].out.extend_from_slice(&replies);
                self.receive_lines(i, &lines);
                if !replies.is_empty() {
                    self.flush(i);
                }
            }
            Err(Broken::Refused(head)) => self.fail(i, "WebSocket upgrade refused", &head),
            Err(Broken::Frame(why)) => {
                self.ledger.torn();
                self.close(i, &format!("broken frame: {why}"));
            }
        }
        self.scratch = lines;
    }

    fn receive_lines(&mut self, i: usize, data: &[u8]) {
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
                    if rest[..n] != GREETING[..n] {
                        self.fail(i, "expected NICK", rest);
                        return data.len();
                    }
                    if n < 4 {
                        return pos;
                    }
                    pos += 4;
                    let nick = self.nick(i);
                    self.say(i, nick.as_bytes());
                    self.clients[i].phase = Phase::Registering;
                    self.flush(i);
                }
                Phase::Registering => match self.markers.registered.find(rest) {
                    Some(at) => {
                        pos += at + self.markers.registered.needle().len();
                        self.clients[i].phase = Phase::Joined;
                        self.roster.registered += 1;
                        self.roster.in_flight -= 1;
                    }
                    None => {
                        if memmem::find(rest, b"refused").is_some() || memmem::find(rest, ROOM_FULL).is_some() {
                            self.fail(i, "registration refused", rest);
                            return data.len();
                        }
                        return pos.max(data.len().saturating_sub(self.markers.registered.needle().len()));
                    }
                },
                Phase::Joined => match self.markers.sync.find(rest) {
                    Some(at) => {
                        pos += at + self.markers.sync.needle().len();
                        self.clients[i].phase = Phase::Ready;
                        self.roster.synced += 1;
                    }
                    None => return pos.max(data.len().saturating_sub(self.markers.sync.needle().len())),
                },
                Phase::Ready => {
                    let before = self.ledger.deliveries();
                    let used = self.entries(i, rest);
                    if self.ledger.deliveries() > before {
                        self.last_delivery = Some(Instant::now());
                    }
                    return pos + used;
                }
                Phase::Closed => return data.len(),
            }
        }
    }

    /// Enters the pieces of `data` for receiver `r` in the ledger. Returns
    /// the bytes used: everything up to an incomplete last entry.
    fn entries(&mut self, r: usize, data: &[u8]) -> usize {
        let now_us = self.micros(Instant::now());
        let mut pieces = Pieces::new(data, 2 * self.plan.size + 1024);
        for piece in pieces.by_ref() {
            match piece {
                Piece::Entry(entry) => self.entry(r, entry, now_us),
                Piece::Line(line) => self.odd_line(line),
                Piece::Overlong(rest) => {
                    self.ledger.torn();
                    self.samples.note(rest);
                }
            }
        }
        pieces.used()
    }

    /// A whole line with no `]`: a notice, or a message cut short.
    fn odd_line(&mut self, line: &[u8]) {
        if let Some(line) = self.ledger.odd_line(line) {
            self.samples.note(line);
        }
    }

    /// One entry ending in `]`.
    fn entry(&mut self, r: usize, entry: &[u8], now_us: u64) {
        let (junk, verdict) = self.format.judge(entry);
        if !junk.is_empty() {
            self.odd_line(junk);
        }
        let message = match verdict {
            Verdict::Intact(message) => message,
            Verdict::Torn => {
                self.ledger.torn();
                return self.samples.note(entry);
            }
            Verdict::Misattributed => {
                self.ledger.misattributed();
                return self.samples.note(entry);
            }
        };
        if self.ledger.deliver(r, message.sender, message.seq) == Delivery::Duplicate {
            return;
        }
        if let Some(order) = &mut self.order {
            order.saw(r, message.sender, message.seq);
        }
        if r != message.sender {
            self.latencies.record(now_us.saturating_sub(message.micros));
        } else {
            self.clients[r].echoed += 1;
            if self.plan.window.is_some() {
                self.flush(r);
            }
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
        self.roster.gone += 1;
        let _ = self.poll.registry().deregister(client.stream.tcp_mut());
        if i < self.plan.speakers && !client.done {
            self.speaker_done(i);
        }
        match phase {
            Phase::Ready => {
                self.ledger.closed();
                if !pending.is_empty() {
                    self.odd_line(&pending);
                }
            }
            _ => {
                if phase == Phase::Nick || phase == Phase::Registering {
                    self.roster.in_flight = self.roster.in_flight.saturating_sub(1);
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

    /// What the run found.
    fn report(self, timed_out: bool) -> Report {
        let roster = &self.roster;
        let mut timing = Timing {
            registered: roster.registered,
            register_secs: if roster.registered == self.plan.clients {
                roster.register_secs
            } else {
                self.start.elapsed().as_secs_f64()
            },
            sent: self.sending.sent,
            ..Timing::default()
        };
        if let Some(start) = self.sending.started {
            timing.send_secs = self.sending.done.unwrap_or_else(Instant::now).duration_since(start).as_secs_f64();
            timing.elapsed_secs = self.last_delivery.map_or(0.0, |at| at.duration_since(start).as_secs_f64());
        }
        let counts = self.ledger.counts();
        if timing.elapsed_secs > 0.0 {
            timing.deliveries_per_sec = counts.deliveries as f64 / timing.elapsed_secs;
        }
        Report {
            addr: self.plan.addrs[0],
            clients_per_addr: self.plan.clients_per_addr(),
            plan: self.plan.clone(),
            expected: self.ledger.expected(),
            timing,
            counts,
            same_order: self.order.as_ref().map(|order| order.finish(&self.ledger, &self.format.names)),
            latency: self.latencies.summary(),
            timed_out,
            error: self.error,
            samples: self.samples.into_vec(),
        }
    }
}
