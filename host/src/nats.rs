//! The bridge between chat-server's single-threaded mio loop and a NATS
//! JetStream broker, so that several chat-servers form one chat room.
//!
//! The room's events are sequenced in one JetStream stream (`CHAT_<room>`,
//! subject `chat.<room>.events`): every server publishes its events there and
//! applies every event of the stream, its own included, in stream order (but
//! that each server's events keep the order it sent them in, below). Who
//! holds which nickname lives in a KV bucket (`CHAT_NICKS_<room>`), so that
//! claiming a nickname is one atomic create across all servers. Servers
//! announce that they are alive on core NATS every second; when one falls
//! silent for [`DEAD_AFTER`], the survivors announce its clients' leaving
//! (`L <nick>`) and free their nicknames. A dead server's clients are thus
//! announced within about 5 to 7 s (5 s of silence, up to 1 s until the next
//! check, then a round trip to the broker).
//!
//! This module knows nothing of chat semantics but that one event, `L <nick>`
//! (made by the core's [`Event`], as every event is): payloads are opaque
//! bytes.
//!
//! What is and is not promised:
//! - Every server hands in the same events in the same order, each exactly
//!   once: publishes carry `Nats-Msg-Id`, and one not acknowledged is sent
//!   again under the same id within JetStream's 2 min duplicate window.
//! - That order is the stream's, but that each server's events are handed in
//!   in the order it sent them. The stream may hold them otherwise: publishes
//!   in flight at the instant the broker dies are lost with the connection
//!   and sent again after what async-nats still held and sent on reconnecting
//!   (in a test, about 100 of 5,000). So every publish carries `Chat-Origin`
//!   (the server's id) and `Chat-Seq` (numbered from 1 in the order sent),
//!   and [`Reorder`] holds an event back until those before it have come.
//!   The rule depends only on the stream, so every server that follows an
//!   origin from the same point hands in the same order. A server's first
//!   event is alone in flight until it is stored: a follower takes an
//!   origin's first event in the stream for its first, so that one must
//!   not be lost behind a later one.
//! - An `L` for a server gone (the reaper's, or its own at shutdown) carries
//!   `Chat-Dead` instead: what is held of that server is handed in first, in
//!   order (what it misses went with it), and its later events, if any, at
//!   once. Over [`MAX_HELD`] events of one server held are handed in, in
//!   order, with a warning. A server that dies holding no nickname gets no
//!   `L`: should it leave a gap (only if its own connection dropped a
//!   publish just before it died), its later events stay held.
//! - A server just started knows an origin from the first of its events in
//!   the history; one of them stored later but numbered lower is handed in
//!   at once, and what is held at the end of the history is handed in, in
//!   order, as history. Only there may two servers' orders differ.
//! - [`In::Roster`] is the bucket as it is at start, a dead server's
//!   nicknames included until their `L` events come.
//!
//! async-nats needs tokio, the server is mio: the broker side runs on a thread
//! of its own with a current-thread tokio runtime. The mio loop hands it work
//! through a tokio channel ([`Bridge::send`] never blocks) and takes what the
//! broker has through a `std::sync::mpsc` channel ([`Bridge::poll`]), woken by
//! a `mio::Waker` each time something is queued.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::context::{GetStreamErrorKind, PublishError};
use async_nats::jetstream::kv::{self, CreateErrorKind, Operation};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream, ErrorCode};
use async_nats::HeaderMap;
use bytes::Bytes;
use chat_core::cluster::Event;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::mpsc as tokio_mpsc;
use tokio::task::JoinHandle;

/// How long [`Bridge::start`] may take to reach the broker.
const CONNECT_BOUND: Duration = Duration::from_secs(5);
/// How often a server says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Silence after which a server is taken for dead.
const DEAD_AFTER: Duration = Duration::from_secs(5);
/// How long [`Bridge::shutdown`] may take to say goodbye.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(2);
/// Publishes in flight at most: bounds what async-nats buffers while the
/// connection is silently dead.
const PUBLISH_WINDOW: usize = 1024;
/// How often the worker looks again at what waits (resuming, retries).
const TICK: Duration = Duration::from_millis(200);
/// Pause after a KV operation failed before it is tried again.
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// How often the worker checks that the room's stream still exists.
const STREAM_CHECK: Duration = Duration::from_secs(5);
/// Header naming the server that published an event.
const ORIGIN: &str = "Chat-Origin";
/// Header numbering a server's events in the order it sent them, from 1.
const SEQ: &str = "Chat-Seq";
/// Header of an `L` said for a server that is gone: dead, or shutting down.
const DEAD: &str = "Chat-Dead";
/// Events of one server held back, waiting for an earlier one, at most.
const MAX_HELD: usize = 100_000;

/// Where the room lives.
pub struct Options {
    /// The broker, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// The room's name: `[A-Za-z0-9_-]+`, as it is part of NATS names.
    pub room: String,
}

/// Work for the broker, carried out in the order sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// Sequence this event payload in the room's stream.
    Publish(Vec<u8>),
    /// Claim a nickname for local client `slot`; answered by [`In::Claimed`].
    /// Carried out once every earlier publish is acknowledged.
    Claim { slot: usize, nick: String },
    /// Free a nickname this server holds. Carried out once every earlier
    /// publish is acknowledged, so the nickname is never free before the
    /// events published before it (its `L`) are sequenced.
    Release(String),
}

/// What the broker side has for the mio loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum In {
    /// Once, first: the nicknames held in the bucket by other servers when
    /// this one started (a dead server's among them, until its `L` events).
    Roster(Vec<String>),
    /// An event from before this server started, oldest first; all come
    /// before the first [`In::Event`].
    History(Vec<u8>),
    /// One event of the room, each exactly once, in stream order but that
    /// each server's events come in the order it sent them (see the module
    /// doc).
    Event(Vec<u8>),
    /// The answer to [`Out::Claim`].
    Claimed { slot: usize, nick: String, granted: bool },
    /// The broker became unreachable; sent once per outage.
    Paused,
    /// The broker is back, unacknowledged publishes are in and the stream is
    /// delivered up to where it was on coming back; sent once per outage.
    Resumed,
    /// Something unrecoverable, e.g. the room's stream was deleted.
    Failed(String),
}

/// The mio loop's handle on the broker side. `Send`, not `Sync`: it belongs to
/// the one thread that polls.
pub struct Bridge {
    commands: tokio_mpsc::UnboundedSender<Command>,
    incoming: mpsc::Receiver<In>,
    thread: Option<std::thread::JoinHandle<()>>,
    server_id: String,
}

/// What [`Bridge`] tells its worker.
enum Command {
    Out(Out),
    Shutdown,
    /// Stop at once, saying nothing: a crashed server, for tests.
    #[cfg(test)]
    Die,
}

impl Bridge {
    /// Connects (within about 5 s), makes sure JetStream is there, creates or
    /// reuses the room's stream and KV bucket, queues [`In::Roster`], starts
    /// the worker thread and its heartbeats. `history`: the room log's length;
    /// about `history * 4` older events are handed in as [`In::History`].
    /// `waker` is woken each time something is queued for [`Bridge::poll`].
    pub fn start(options: &Options, waker: mio::Waker, history: usize) -> Result<Bridge, String> {
        validate_room(&options.room)?;
        let server_id = random_id();
        let (in_tx, incoming) = mpsc::channel();
        let (commands, command_rx) = tokio_mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let setup = Setup {
            url: options.url.clone(),
            room: options.room.clone(),
            server_id: server_id.clone(),
            history: history as u64,
        };
        let outbox = Outbox { tx: in_tx, waker: Arc::new(waker) };
        let thread = std::thread::Builder::new()
            .name("nats-bridge".into())
            .spawn(move || work(setup, outbox, command_rx, ready_tx))
            .map_err(|err| format!("cannot start the NATS thread: {err}"))?;
        let ready = ready_rx
            .recv()
            .unwrap_or_else(|_| Err(format!("the NATS thread for {} ended while starting", options.url)));
        match ready {
            Ok(()) => Ok(Bridge { commands, incoming, thread: Some(thread), server_id }),
            Err(err) => {
                let _ = thread.join();
                Err(err)
            }
        }
    }

    /// Queues work for the broker; never blocks. Carried out in order.
    pub fn send(&self, out: Out) {
        // The worker is gone only after In::Failed or shutdown: nothing to do.
        let _ = self.commands.send(Command::Out(out));
    }

    /// What the broker side has for the mio loop; never blocks.
    pub fn poll(&self) -> Option<In> {
        self.incoming.try_recv().ok()
    }

    /// Says goodbye: carries out what was sent before, publishes `L <nick>`
    /// for every nickname this server holds and frees them, stops the
    /// heartbeats; within about 2 s. Joins the worker thread.
    pub fn shutdown(mut self) {
        self.stop(Command::Shutdown);
    }

    /// This server's id, random per process: 16 hex digits.
    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    /// Stops the worker abruptly, as if this server crashed: no goodbye, no
    /// more heartbeats. For tests of what survivors do.
    #[cfg(test)]
    fn die(mut self) {
        self.stop(Command::Die);
    }

    fn stop(&mut self, command: Command) {
        if let Some(thread) = self.thread.take() {
            let _ = self.commands.send(command);
            if thread.join().is_err() {
                log::warn!("the NATS thread panicked");
            }
        }
    }
}

impl Drop for Bridge {
    /// A bridge dropped without [`Bridge::shutdown`] still says goodbye.
    fn drop(&mut self) {
        self.stop(Command::Shutdown);
    }
}

/// The sending half of [`Bridge::poll`]'s channel, with the mio waker.
#[derive(Clone)]
struct Outbox {
    tx: mpsc::Sender<In>,
    waker: Arc<mio::Waker>,
}

impl Outbox {
    /// Queues without waking: for batches, followed by [`Outbox::wake`].
    fn queue(&self, item: In) {
        // The receiver is gone only when the Bridge is: nobody to tell.
        let _ = self.tx.send(item);
    }

    fn wake(&self) {
        if let Err(err) = self.waker.wake() {
            log::warn!("cannot wake the server loop: {err}");
        }
    }

    fn send(&self, item: In) {
        self.queue(item);
        self.wake();
    }
}

/// What the worker thread needs to start.
struct Setup {
    url: String,
    room: String,
    server_id: String,
    history: u64,
}

/// The broker's handles for one room, shared by the worker's tasks.
#[derive(Clone)]
struct Link {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: stream::Stream,
    kv: kv::Store,
    room: String,
    server_id: String,
}

/// The event `{nick} left!`, for a server's clients that it can no longer
/// announce itself.
fn left(nick: &str) -> Bytes {
    Bytes::from(Event::Left { nick, why: "" }.to_string())
}

fn stream_name(room: &str) -> String {
    format!("CHAT_{room}")
}

fn events_subject(room: &str) -> String {
    format!("chat.{room}.events")
}

impl Link {
    fn stream_name(&self) -> String {
        stream_name(&self.room)
    }

    fn events_subject(&self) -> String {
        events_subject(&self.room)
    }

    fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// The stream's last sequence now; `Err(Some(..))` if the stream is gone,
    /// `Err(None)` if the broker did not answer.
    async fn last_sequence(&self) -> Result<u64, Option<String>> {
        match self.js.get_stream(self.stream_name()).await {
            Ok(stream) => Ok(stream.cached_info().state.last_sequence),
            Err(err) => match err.kind() {
                GetStreamErrorKind::JetStream(js) if js.error_code() == ErrorCode::STREAM_NOT_FOUND => {
                    Err(Some(format!("the room's stream {} is gone", self.stream_name())))
                }
                _ => {
                    log::warn!("cannot read the stream {}: {err}", self.stream_name());
                    Err(None)
                }
            },
        }
    }
}

/// The worker thread: sets up, reports to [`Bridge::start`], then runs.
fn work(
    setup: Setup,
    outbox: Outbox,
    commands: tokio_mpsc::UnboundedReceiver<Command>,
    ready: mpsc::SyncSender<Result<(), String>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            let _ = ready.send(Err(format!("cannot start the NATS runtime: {err}")));
            return;
        }
    };
    runtime.block_on(async move {
        let (events_tx, events) = tokio_mpsc::unbounded_channel();
        let opened = tokio::time::timeout(CONNECT_BOUND, open(&setup, events_tx, &outbox)).await;
        let (link, last) = match opened {
            Ok(Ok(opened)) => opened,
            Ok(Err(err)) => {
                let _ = ready.send(Err(err));
                return;
            }
            Err(_) => {
                let _ = ready.send(Err(format!("NATS at {} did not answer within {CONNECT_BOUND:?}", setup.url)));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        log::info!("NATS: server {} in room {} at {}", setup.server_id, setup.room, setup.url);
        let start = last.saturating_sub(setup.history.saturating_mul(4)) + 1;
        Worker::new(link, outbox, start, last).run(commands, events).await;
    });
}

/// Connects and opens the room: returns its handles and the stream's last
/// sequence, after queueing [`In::Roster`].
async fn open(
    setup: &Setup,
    events: tokio_mpsc::UnboundedSender<async_nats::Event>,
    outbox: &Outbox,
) -> Result<(Link, u64), String> {
    let url = &setup.url;
    url.parse::<async_nats::ServerAddr>().map_err(|err| format!("invalid NATS URL {url}: {err}"))?;
    let client = async_nats::ConnectOptions::new()
        .name(format!("chat-server {}", setup.server_id))
        .connection_timeout(CONNECT_BOUND)
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| Duration::from_millis(250 * attempts.clamp(1, 4) as u64))
        .event_callback(move |event| {
            let events = events.clone();
            async move {
                let _ = events.send(event);
            }
        })
        .connect(url.as_str())
        .await
        .map_err(|err| match err.kind() {
            async_nats::ConnectErrorKind::ServerParse => format!("invalid NATS URL {url}: {err}"),
            _ => format!("cannot connect to NATS at {url}: {err}"),
        })?;
    let js = jetstream::new(client.clone());
    // A raw request: async-nats's account info does not parse what
    // nats-server 2.9 answers, and all that matters is that JetStream does.
    client
        .request("$JS.API.INFO", Bytes::new())
        .await
        .map_err(|err| format!("NATS at {url} has no JetStream (run nats-server with -js): {err}"))?;
    let stream_name = stream_name(&setup.room);
    let stream = js
        .get_or_create_stream(stream::Config {
            name: stream_name.clone(),
            subjects: vec![events_subject(&setup.room)],
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            max_messages: 100_000,
            discard: stream::DiscardPolicy::Old,
            ..Default::default()
        })
        .await
        .map_err(|err| format!("cannot open the stream {stream_name} on NATS at {url}: {err}"))?;
    let kv = open_bucket(&js, &setup.room)
        .await
        .map_err(|err| format!("cannot open the bucket CHAT_NICKS_{} on NATS at {url}: {err}", setup.room))?;
    let link = Link { client, js, stream, kv, room: setup.room.clone(), server_id: setup.server_id.clone() };
    // The last sequence before the roster: a nickname claimed in between is
    // then in the roster and its join among the events, never in neither.
    let last = link
        .last_sequence()
        .await
        .map_err(|err| err.unwrap_or_else(|| format!("cannot read the stream {stream_name} on NATS at {url}")))?;
    let roster =
        read_roster(&link.kv).await.map_err(|err| format!("cannot read the nicknames on NATS at {url}: {err}"))?;
    outbox.send(In::Roster(roster));
    Ok((link, last))
}

async fn open_bucket(js: &jetstream::Context, room: &str) -> Result<kv::Store, async_nats::Error> {
    let bucket = format!("CHAT_NICKS_{room}");
    if let Ok(store) = js.get_key_value(&bucket).await {
        return Ok(store);
    }
    js.get_or_create_stream(bucket_stream(&bucket)).await?;
    Ok(js.get_key_value(&bucket).await?)
}

/// The stream of a KV bucket with history 1 on file, as async-nats's
/// `create_key_value` makes it; made here because that asks for account info
/// that async-nats cannot parse from nats-server 2.9.
fn bucket_stream(bucket: &str) -> stream::Config {
    stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    }
}

/// The display nicknames held in the bucket.
async fn read_roster(kv: &kv::Store) -> Result<Vec<String>, async_nats::Error> {
    let mut nicks = Vec::new();
    let mut keys = kv.keys().await?;
    while let Some(key) = keys.next().await {
        if let Some(value) = kv.get(key?).await? {
            if let Some((_, nick)) = parse_holder(&value) {
                nicks.push(nick.to_owned());
            }
        }
    }
    Ok(nicks)
}

/// The bucket's key for a nickname: nicknames differing in ASCII case are
/// one, and hex keeps any nickname a valid key.
fn nick_key(nick: &str) -> String {
    nick.to_ascii_lowercase().bytes().map(|byte| format!("{byte:02x}")).collect()
}

/// The bucket's value for a nickname: who holds it, and how it is displayed.
fn holder(server_id: &str, nick: &str) -> Bytes {
    Bytes::from(format!("{server_id} {nick}"))
}

fn parse_holder(value: &[u8]) -> Option<(&str, &str)> {
    std::str::from_utf8(value).ok()?.split_once(' ')
}

fn validate_room(room: &str) -> Result<(), String> {
    let valid = !room.is_empty() && room.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(format!("invalid room name {room:?}: use letters, digits, '_' and '-'"))
    }
}

/// 16 hex digits, random per process (std's hasher keys are random).
fn random_id() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

/// The headers of an `L` for a nickname of `server`, gone: under a message
/// id every server uses alike, so that JetStream keeps one.
fn left_headers(id: String, server: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
    headers.insert(DEAD, server);
    headers
}

/// What [`Reorder`] reads in a message's headers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tag {
    /// Neither numbered nor a dead server's `L`: handed in at once.
    Plain,
    /// The `seq`th event `origin` published.
    Seq { origin: String, seq: u64 },
    /// An `L` for a nickname of `origin`, which is gone.
    Dead { origin: String },
}

impl Tag {
    fn of(headers: Option<&HeaderMap>) -> Tag {
        let Some(headers) = headers else { return Tag::Plain };
        if let Some(dead) = headers.get(DEAD) {
            return Tag::Dead { origin: dead.as_str().to_owned() };
        }
        let (Some(origin), Some(seq)) = (headers.get(ORIGIN), headers.get(SEQ)) else { return Tag::Plain };
        match seq.as_str().parse() {
            Ok(seq) => Tag::Seq { origin: origin.as_str().to_owned(), seq },
            Err(_) => {
                log::debug!("NATS: an event with {SEQ} {:?}, taken as not numbered", seq.as_str());
                Tag::Plain
            }
        }
    }
}

/// Puts each server's events back in the order it sent them, when the stream
/// has them otherwise (publishes in flight when the broker died, sent again
/// after later ones). Deterministic: every server that has followed an origin
/// from the same point hands in the same order.
///
/// Per origin, the number expected next; an event numbered higher is held
/// until those before it come. One numbered lower than expected (from before
/// this server knew the origin) goes at once. An `L` for a dead server first
/// hands in what is held of it, in order (what is missing died with it), and
/// that server's events go at once from then on. More than [`MAX_HELD`] held
/// for one origin are handed in, in order, with a warning.
struct Reorder<T> {
    next: HashMap<String, u64>,
    held: HashMap<String, BTreeMap<u64, T>>,
    dead: HashSet<String>,
}

impl<T> Default for Reorder<T> {
    fn default() -> Self {
        Reorder { next: HashMap::new(), held: HashMap::new(), dead: HashSet::new() }
    }
}

impl<T> Reorder<T> {
    /// Takes in one message of the stream, handing what is due to `out`.
    fn push(&mut self, tag: Tag, item: T, out: &mut impl FnMut(T)) {
        match tag {
            Tag::Plain => out(item),
            Tag::Dead { origin } => {
                self.flush(&origin, out);
                self.next.remove(&origin);
                self.dead.insert(origin);
                out(item);
            }
            Tag::Seq { origin, .. } if self.dead.contains(&origin) => out(item),
            Tag::Seq { origin, seq } => {
                let next = *self.next.entry(origin.clone()).or_insert(seq);
                if seq < next {
                    log::debug!("NATS: event {seq} of {origin}, expecting {next}: handed in at once");
                    return out(item);
                }
                if seq > next {
                    let held = self.held.entry(origin.clone()).or_default();
                    if held.contains_key(&seq) {
                        log::debug!("NATS: event {seq} of {origin} twice in the stream");
                        return out(item);
                    }
                    held.insert(seq, item);
                    if held.len() > MAX_HELD {
                        log::warn!(
                            "NATS: {} events of {origin} wait for event {next}; handing them in without it",
                            held.len()
                        );
                        self.flush(&origin, out);
                    }
                    return;
                }
                out(item);
                let mut next = seq + 1;
                if let Some(held) = self.held.get_mut(&origin) {
                    while let Some(item) = held.remove(&next) {
                        out(item);
                        next += 1;
                    }
                    if held.is_empty() {
                        self.held.remove(&origin);
                    }
                }
                self.next.insert(origin, next);
            }
        }
    }

    /// Hands in what is held of `origin`, in order, and expects what follows.
    fn flush(&mut self, origin: &str, out: &mut impl FnMut(T)) {
        let Some(held) = self.held.remove(origin) else { return };
        if let Some(last) = held.keys().next_back() {
            self.next.insert(origin.to_owned(), last + 1);
        }
        held.into_values().for_each(out);
    }

    /// Hands in everything held, each origin's in order, origins by id.
    fn flush_all(&mut self, out: &mut impl FnMut(T)) {
        let mut origins: Vec<String> = self.held.keys().cloned().collect();
        origins.sort();
        for origin in origins {
            self.flush(&origin, out);
        }
    }
}

/// Publishes pipelined, in order, and keeps every publish until its ack: one
/// that fails is sent again, with the others after it, under its original
/// message id, so JetStream stores each exactly once.
struct Publisher {
    js: jetstream::Context,
    subject: String,
    server_id: String,
    counter: u64,
    /// Sent and not acknowledged, oldest first: (headers, payload).
    unacked: VecDeque<(HeaderMap, Bytes)>,
    /// The acks of `unacked`, one each, in order; empty after a failure until
    /// [`Publisher::resend`].
    acks: FuturesOrdered<BoxFuture<'static, Result<(), PublishError>>>,
    /// This server's first numbered event is stored. Until then it is the
    /// only one in flight: [`Reorder`] takes an origin's first event in the
    /// stream for its first, so it must not be lost behind a later one.
    started: bool,
}

impl Publisher {
    /// Publishes one of this server's events, numbered for [`Reorder`].
    async fn publish(&mut self, payload: Bytes) {
        self.counter += 1;
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, format!("{}-{}", self.server_id, self.counter));
        headers.insert(ORIGIN, self.server_id.as_str());
        headers.insert(SEQ, self.counter.to_string());
        self.publish_with_headers(headers, payload).await;
    }

    async fn publish_with_headers(&mut self, headers: HeaderMap, payload: Bytes) {
        self.unacked.push_back((headers.clone(), payload.clone()));
        if let Err(err) = self.send(headers, payload).await {
            self.lost(&err);
        }
    }

    async fn send(&mut self, headers: HeaderMap, payload: Bytes) -> Result<(), PublishError> {
        let message = PublishMessage::build().payload(payload).headers(headers);
        let ack = self.js.send_publish(self.subject.clone(), message).await?;
        self.acks.push_back(async move { ack.await.map(drop) }.boxed());
        Ok(())
    }

    /// After a failure: forget the acks, all of `unacked` goes again.
    fn lost(&mut self, err: &PublishError) {
        log::warn!("NATS: publish failed ({err}); {} to send again", self.unacked.len());
        self.forget_acks();
    }

    /// All of `unacked` goes again, without waiting for acks that may never
    /// come (after a reconnect: JetStream drops what it has already).
    fn forget_acks(&mut self) {
        self.acks = FuturesOrdered::new();
    }

    fn on_ack(&mut self, ack: Result<(), PublishError>) {
        match ack {
            Ok(()) => {
                let acked = self.unacked.pop_front();
                self.started |= acked.is_some_and(|(headers, _)| headers.get(SEQ).is_some());
            }
            Err(err) => self.lost(&err),
        }
    }

    fn needs_resend(&self) -> bool {
        self.acks.is_empty() && !self.unacked.is_empty()
    }

    async fn resend(&mut self) {
        log::info!("NATS: sending {} unacknowledged events again", self.unacked.len());
        for (headers, payload) in self.unacked.clone() {
            if let Err(err) = self.send(headers, payload).await {
                self.lost(&err);
                return;
            }
        }
    }
}

/// A nickname this server holds, at the bucket revision it wrote.
struct Held {
    nick: String,
    revision: u64,
}

/// Why a KV operation must be tried again.
struct Retry;

/// The worker's main task: carries out [`Out`] in order, tracks the
/// connection, and owns the tasks that consume, heartbeat and reap.
struct Worker {
    link: Link,
    outbox: Outbox,
    queue: VecDeque<Out>,
    publisher: Publisher,
    held: HashMap<String, Held>,
    paused: bool,
    /// While paused: the stream's last sequence once back, to catch up to.
    resume_target: Option<u64>,
    consumer: Consumer,
    consuming: JoinHandle<()>,
    /// After a failure: when to try again.
    retry_at: Option<Instant>,
    /// When to check next that the room's stream still exists.
    stream_check_at: Instant,
    reaper: JoinHandle<()>,
    heartbeat: JoinHandle<()>,
}

/// What woke the main task.
enum Wake {
    Command(Option<Command>),
    Ack(Result<(), PublishError>),
    Connection(async_nats::Event),
    Tick,
}

impl Worker {
    fn new(link: Link, outbox: Outbox, start: u64, last: u64) -> Worker {
        let consumer = Consumer {
            link: link.clone(),
            outbox: outbox.clone(),
            delivered: Arc::new(AtomicU64::new(start - 1)),
            last,
            open: Arc::new(AtomicBool::new(false)),
            reorder: Arc::new(Mutex::new(Reorder::default())),
        };
        let publisher = Publisher {
            js: link.js.clone(),
            subject: link.events_subject(),
            server_id: link.server_id.clone(),
            counter: 0,
            unacked: VecDeque::new(),
            acks: FuturesOrdered::new(),
            started: false,
        };
        Worker {
            heartbeat: tokio::spawn(heartbeat(link.clone())),
            reaper: tokio::spawn(Reaper::new(link.clone()).run()),
            consuming: tokio::spawn(consumer.clone().run()),
            consumer,
            link,
            outbox,
            queue: VecDeque::new(),
            publisher,
            held: HashMap::new(),
            paused: false,
            resume_target: None,
            retry_at: None,
            stream_check_at: Instant::now() + STREAM_CHECK,
        }
    }

    async fn run(
        mut self,
        mut commands: tokio_mpsc::UnboundedReceiver<Command>,
        mut events: tokio_mpsc::UnboundedReceiver<async_nats::Event>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        loop {
            if let Err(err) = self.step().await {
                log::warn!("NATS: {err}");
                self.outbox.send(In::Failed(err));
                break;
            }
            let acks = &mut self.publisher.acks;
            let wake = tokio::select! {
                command = commands.recv() => Wake::Command(command),
                Some(ack) = acks.next(), if !acks.is_empty() => Wake::Ack(ack),
                Some(event) = events.recv() => Wake::Connection(event),
                _ = tick.tick() => Wake::Tick,
            };
            match wake {
                Wake::Command(Some(Command::Out(out))) => self.queue.push_back(out),
                Wake::Command(Some(Command::Shutdown) | None) => {
                    self.leave().await;
                    break;
                }
                #[cfg(test)]
                Wake::Command(Some(Command::Die)) => break,
                Wake::Ack(ack) => self.on_ack(ack),
                Wake::Connection(event) => self.on_connection(event),
                Wake::Tick => {}
            }
        }
        self.heartbeat.abort();
        self.reaper.abort();
        self.consuming.abort();
    }

    fn on_connection(&mut self, event: async_nats::Event) {
        match event {
            async_nats::Event::Disconnected => {
                self.resume_target = None;
                if !self.paused {
                    log::warn!("NATS: the broker is unreachable; pausing");
                    self.paused = true;
                    self.outbox.send(In::Paused);
                }
            }
            async_nats::Event::Connected if self.paused => {
                // async-nats's ordered consumer would find out by missed
                // heartbeats, after many seconds: a new one starts now.
                log::info!("NATS: connected again");
                self.publisher.forget_acks();
                self.consuming.abort();
                self.consumer.open.store(false, Ordering::Release);
                self.consuming = tokio::spawn(self.consumer.clone().run());
            }
            async_nats::Event::Connected => log::info!("NATS: connected"),
            other => log::info!("NATS: {other}"),
        }
    }

    /// Carries out what can be now: resending, resuming, then the queue in
    /// order. `Err` is unrecoverable.
    async fn step(&mut self) -> Result<(), String> {
        if !self.link.connected() {
            return Ok(());
        }
        if Instant::now() >= self.stream_check_at {
            self.stream_check_at = Instant::now() + STREAM_CHECK;
            if let Err(Some(gone)) = self.link.last_sequence().await {
                return Err(gone);
            }
        }
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return Ok(());
        }
        self.retry_at = None;
        if self.publisher.needs_resend() {
            self.publisher.resend().await;
            self.check_publisher();
            return Ok(());
        }
        if self.paused {
            self.try_resume().await?;
            if self.paused {
                return Ok(());
            }
        }
        self.drain_queue().await;
        Ok(())
    }

    fn on_ack(&mut self, ack: Result<(), PublishError>) {
        self.publisher.on_ack(ack);
        self.check_publisher();
    }

    /// After a publish failed: not again at once, as a broker that refuses
    /// fast would be asked in a loop; and first, is the stream still there?
    fn check_publisher(&mut self) {
        if self.publisher.needs_resend() {
            self.retry_at = Some(Instant::now() + RETRY_AFTER);
            self.stream_check_at = Instant::now();
        }
    }

    /// Resumes once every unacknowledged publish is in, a new consumer is
    /// open and has handed in the stream up to where it was then.
    async fn try_resume(&mut self) -> Result<(), String> {
        if !self.publisher.unacked.is_empty() {
            return Ok(());
        }
        let target = match self.resume_target {
            Some(target) => target,
            None => match self.link.last_sequence().await {
                Ok(target) => *self.resume_target.insert(target),
                Err(Some(gone)) => return Err(gone),
                Err(None) => return Ok(()),
            },
        };
        let consumer = &self.consumer;
        if consumer.open.load(Ordering::Acquire) && consumer.delivered.load(Ordering::Acquire) >= target {
            log::info!("NATS: the broker is back; resuming");
            self.paused = false;
            self.resume_target = None;
            self.outbox.send(In::Resumed);
        }
        Ok(())
    }

    /// Publishes pipelined; a claim or release waits for every earlier ack.
    async fn drain_queue(&mut self) {
        while let Some(out) = self.queue.pop_front() {
            let blocked = match &out {
                Out::Publish(_) => {
                    let first_in_flight = !self.publisher.started && !self.publisher.unacked.is_empty();
                    first_in_flight || self.publisher.acks.len() >= PUBLISH_WINDOW
                }
                Out::Claim { .. } | Out::Release(_) => !self.publisher.unacked.is_empty(),
            };
            if blocked || self.publisher.needs_resend() {
                self.queue.push_front(out);
                return;
            }
            let done = match out.clone() {
                Out::Publish(payload) => {
                    self.publisher.publish(payload.into()).await;
                    self.check_publisher();
                    Ok(())
                }
                Out::Claim { slot, nick } => self.claim(slot, nick).await,
                Out::Release(nick) => self.release(&nick).await,
            };
            if let Err(Retry) = done {
                self.queue.push_front(out);
                self.retry_at = Some(Instant::now() + RETRY_AFTER);
                return;
            }
        }
    }

    async fn claim(&mut self, slot: usize, nick: String) -> Result<(), Retry> {
        let key = nick_key(&nick);
        let value = holder(&self.link.server_id, &nick);
        let granted = match self.link.kv.create(&key, value.clone()).await {
            Ok(revision) => {
                self.held.insert(key, Held { nick: nick.clone(), revision });
                true
            }
            Err(err) if err.kind() == CreateErrorKind::InvalidKey => false,
            Err(err) if err.kind() == CreateErrorKind::AlreadyExists => self.claimed_before(key, &value).await?,
            Err(err) => {
                log::warn!("NATS: claiming {nick:?} failed ({err}); trying again");
                return Err(Retry);
            }
        };
        self.outbox.send(In::Claimed { slot, nick, granted });
        Ok(())
    }

    /// Whether a key that exists is ours from an earlier try whose answer was
    /// lost.
    async fn claimed_before(&mut self, key: String, value: &[u8]) -> Result<bool, Retry> {
        if self.held.contains_key(&key) {
            return Ok(false);
        }
        match self.link.kv.entry(&key).await {
            Ok(Some(entry)) if entry.operation == Operation::Put && entry.value == value => {
                let nick = parse_holder(value).map_or_else(String::new, |(_, nick)| nick.to_owned());
                self.held.insert(key, Held { nick, revision: entry.revision });
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(err) => {
                log::warn!("NATS: reading key {key} failed ({err}); trying again");
                Err(Retry)
            }
        }
    }

    async fn release(&mut self, nick: &str) -> Result<(), Retry> {
        let key = nick_key(nick);
        let Some(held) = self.held.get(&key) else {
            log::info!("NATS: release of {nick:?}, which this server does not hold");
            return Ok(());
        };
        let revision = held.revision;
        if let Err(err) = self.link.kv.delete_expect_revision(&key, Some(revision)).await {
            // Not ours any more (taken for dead meanwhile) is done; a
            // broker that did not answer is not.
            match self.link.kv.entry(&key).await {
                Ok(Some(entry)) if entry.operation == Operation::Put && entry.revision == revision => {
                    log::warn!("NATS: releasing {nick:?} failed ({err}); trying again");
                    return Err(Retry);
                }
                Ok(_) => {}
                Err(_) => return Err(Retry),
            }
        }
        self.held.remove(&key);
        Ok(())
    }

    /// At shutdown: carries out what was queued, then publishes `L <nick>`
    /// for every nickname held and frees them, all within [`SHUTDOWN_BOUND`].
    async fn leave(&mut self) {
        let goodbye = async {
            self.finish_queue().await;
            let held: Vec<(String, String)> =
                self.held.iter().map(|(key, held)| (key.clone(), held.nick.clone())).collect();
            for (key, nick) in &held {
                // What survivors would publish, should they take this server
                // for dead meanwhile: JetStream keeps one. Every earlier
                // publish is in the stream, so there is nothing to hold.
                let id = format!("left-{}-{key}", self.link.server_id);
                let headers = left_headers(id, &self.link.server_id);
                self.publisher.publish_with_headers(headers, left(nick)).await;
            }
            self.finish_queue().await;
            for (key, nick) in held {
                let _ = self.release(&nick).await;
                log::info!("NATS: {nick:?} ({key}) left with this server");
            }
        };
        if tokio::time::timeout(SHUTDOWN_BOUND, goodbye).await.is_err() {
            log::warn!("NATS: goodbye cut short after {SHUTDOWN_BOUND:?}");
        }
        self.heartbeat.abort();
    }

    /// Carries out the queue and waits for every ack.
    async fn finish_queue(&mut self) {
        loop {
            if self.step().await.is_err() {
                return;
            }
            if self.queue.is_empty() && self.publisher.unacked.is_empty() {
                return;
            }
            match self.publisher.acks.next().await {
                Some(ack) => self.on_ack(ack),
                None => tokio::time::sleep(TICK).await,
            }
        }
    }
}

/// Says every [`HEARTBEAT`] that this server is alive.
async fn heartbeat(link: Link) {
    let subject = format!("chat.{}.alive.{}", link.room, link.server_id);
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tick.tick().await;
        if let Err(err) = link.client.publish(subject.clone(), Bytes::new()).await {
            log::warn!("NATS: heartbeat failed: {err}");
        }
    }
}

/// Hands the stream in to the mio loop: messages up to `last` as history,
/// then events; each exactly once, in stream order put right by [`Reorder`].
#[derive(Clone)]
struct Consumer {
    link: Link,
    outbox: Outbox,
    /// The last sequence handed in; the next one starts after it.
    delivered: Arc<AtomicU64>,
    last: u64,
    /// Whether the broker has opened this consumer.
    open: Arc<AtomicBool>,
    /// Each origin's events in the order sent; kept across consumers.
    reorder: Arc<Mutex<Reorder<Vec<u8>>>>,
}

impl Consumer {
    /// Should the ordered consumer's messages end, a new one starts after
    /// `delivered`.
    async fn run(self) {
        loop {
            match self.open().await {
                Ok(messages) => {
                    self.open.store(true, Ordering::Release);
                    self.hand_in(messages).await;
                }
                Err(err) => log::warn!("NATS: cannot consume the room's stream: {err}"),
            }
            tokio::time::sleep(TICK).await;
        }
    }

    async fn open(&self) -> Result<pull::Ordered, async_nats::Error> {
        let start_sequence = self.delivered.load(Ordering::Acquire) + 1;
        let config = pull::OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence { start_sequence },
            ..Default::default()
        };
        Ok(self.link.stream.create_consumer(config).await?.messages().await?)
    }

    async fn hand_in(&self, mut messages: pull::Ordered) {
        while let Some(first) = messages.next().await {
            self.hand_in_one(first);
            // Whatever else is there already goes in the same wake-up.
            while let Some(Some(next)) = messages.next().now_or_never() {
                self.hand_in_one(next);
            }
            self.outbox.wake();
        }
    }

    fn hand_in_one(&self, message: Result<jetstream::Message, pull::OrderedError>) {
        let message = match message {
            Ok(message) => message,
            Err(err) => return log::warn!("NATS: consuming: {err}"),
        };
        let sequence = match message.info() {
            Ok(info) => info.stream_sequence,
            Err(err) => return log::warn!("NATS: a message without its sequence: {err}"),
        };
        // A consumer recreated from the stream's start must not repeat.
        let delivered = self.delivered.load(Ordering::Acquire);
        if sequence <= delivered {
            return;
        }
        let tag = Tag::of(message.headers.as_ref());
        let payload = message.payload.to_vec();
        let mut reorder = self.reorder.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // What is held at the end of the history goes in as history: all
        // history comes before the first event.
        let history_ends = delivered < self.last && sequence >= self.last;
        if history_ends && sequence > self.last {
            reorder.flush_all(&mut |payload| self.outbox.queue(In::History(payload)));
        }
        if sequence <= self.last {
            reorder.push(tag, payload, &mut |payload| self.outbox.queue(In::History(payload)));
        } else {
            reorder.push(tag, payload, &mut |payload| self.outbox.queue(In::Event(payload)));
        }
        if history_ends && sequence == self.last {
            reorder.flush_all(&mut |payload| self.outbox.queue(In::History(payload)));
        }
        self.delivered.store(sequence, Ordering::Release);
    }
}

/// Who holds a key of the bucket, at which revision.
struct Holding {
    server: String,
    nick: String,
    revision: u64,
}

/// Watches the other servers' heartbeats and the bucket; announces the
/// leaving of a dead server's clients and frees their nicknames.
struct Reaper {
    link: Link,
    /// The bucket as the watch shows it.
    holdings: HashMap<String, Holding>,
    /// When each other server was last heard of (or first seen holding).
    seen: HashMap<String, Instant>,
    was_connected: bool,
}

impl Reaper {
    fn new(link: Link) -> Reaper {
        Reaper { link, holdings: HashMap::new(), seen: HashMap::new(), was_connected: true }
    }

    async fn run(mut self) {
        let alive_subject = format!("chat.{}.alive.*", self.link.room);
        let mut alive = match self.link.client.subscribe(alive_subject).await {
            Ok(alive) => alive,
            Err(err) => return log::warn!("NATS: cannot watch heartbeats, nobody will be found dead: {err}"),
        };
        let mut watch = None;
        let mut tick = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                Some(beat) = alive.next() => {
                    if let Some(server) = beat.subject.rsplit('.').next() {
                        self.seen.insert(server.to_owned(), Instant::now());
                    }
                }
                entry = next_entry(&mut watch) => match entry {
                    Some(Ok(entry)) => self.apply(entry),
                    Some(Err(err)) => {
                        log::warn!("NATS: watching the nicknames: {err}");
                        watch = None;
                    }
                    None => watch = None,
                },
                _ = tick.tick() => {
                    if !self.still_connected() {
                        // The watch's consumer may be gone with the broker.
                        watch = None;
                        continue;
                    }
                    if watch.is_none() {
                        watch = self.watch().await;
                    }
                    self.reap().await;
                }
            }
        }
    }

    /// A new watch: the bucket's current entries, then every change.
    async fn watch(&mut self) -> Option<kv::Watch> {
        match self.link.kv.watch_with_history(">").await {
            Ok(watch) => {
                self.holdings.clear();
                Some(watch)
            }
            Err(err) => {
                log::warn!("NATS: cannot watch the nicknames: {err}");
                None
            }
        }
    }

    fn apply(&mut self, entry: kv::Entry) {
        if entry.operation != Operation::Put {
            self.holdings.remove(&entry.key);
            return;
        }
        let Some((server, nick)) = parse_holder(&entry.value) else {
            return log::warn!("NATS: key {} has a value that names no server", entry.key);
        };
        if server == self.link.server_id {
            return;
        }
        self.seen.entry(server.to_owned()).or_insert_with(Instant::now);
        let holding = Holding { server: server.to_owned(), nick: nick.to_owned(), revision: entry.revision };
        self.holdings.insert(entry.key, holding);
    }

    /// Whether the broker is there and was at the last look. Nobody is taken
    /// for dead while it is away, and everyone gets [`DEAD_AFTER`] again once
    /// it is back, as no heartbeat could pass meanwhile.
    fn still_connected(&mut self) -> bool {
        if !self.link.connected() {
            self.was_connected = false;
            return false;
        }
        if !self.was_connected {
            self.was_connected = true;
            let now = Instant::now();
            self.seen.values_mut().for_each(|seen| *seen = now);
            return false;
        }
        true
    }

    /// Takes for dead the holders not heard of for [`DEAD_AFTER`].
    async fn reap(&mut self) {
        let now = Instant::now();
        let dead: HashSet<String> = self
            .holdings
            .values()
            .filter(|holding| self.seen.get(&holding.server).is_none_or(|seen| now - *seen > DEAD_AFTER))
            .map(|holding| holding.server.clone())
            .collect();
        let keys: Vec<String> = self
            .holdings
            .iter()
            .filter(|(_, holding)| dead.contains(&holding.server))
            .map(|(key, _)| key.clone())
            .collect();
        for key in keys {
            if self.announce(&key).await {
                self.holdings.remove(&key);
            }
        }
    }

    /// Publishes `L <nick>` for a dead server's key, under a message id that
    /// every survivor uses alike (JetStream keeps one), then frees the key if
    /// nobody took it meanwhile. Whether that is done.
    async fn announce(&self, key: &str) -> bool {
        let Some(holding) = self.holdings.get(key) else { return true };
        log::info!("NATS: server {} is dead; {:?} leaves", holding.server, holding.nick);
        let message = PublishMessage::build()
            .payload(left(&holding.nick))
            .headers(left_headers(format!("left-{}-{key}", holding.server), &holding.server));
        let published = match self.link.js.send_publish(self.link.events_subject(), message).await {
            Ok(ack) => ack.await.map(drop),
            Err(err) => Err(err),
        };
        if let Err(err) = published {
            log::warn!("NATS: announcing {:?} left failed: {err}", holding.nick);
            return false;
        }
        if let Err(err) = self.link.kv.delete_expect_revision(key, Some(holding.revision)).await {
            log::info!("NATS: {:?} not freed, taken again or freed already: {err}", holding.nick);
        }
        true
    }
}

/// The watch's next entry; never, without a watch.
async fn next_entry(watch: &mut Option<kv::Watch>) -> Option<Result<kv::Entry, kv::WatcherError>> {
    match watch {
        Some(watch) => watch.next().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
