//! The harness of the `member` fuzz target: two or three member rooms
//! (`Room::join_cluster`), each of them the `room` target's room with its
//! line clients, and between them a simulated broker: one order of events,
//! and an honest registry of nicknames.
//!
//! A [`MemberInput`] is a throttle setting, a room count and a sequence of
//! [`MemberOp`]s: every operation of the `room` target on one room's clients
//! (tags 0 to 15, [`Op::decode_tag`], after a room byte), and the world
//! outside (tags 16 to 31): a client types a marker line (to check that no
//! line is lost), the frontend hands some of what a room asked for to the
//! broker, the broker delivers some of its order to one room (rooms lag),
//! answers a claim (late, refused or granted if free), a room is paused and
//! resumed, a hostile peer hands a room arbitrary bytes or a forged event
//! (`apply`, `recall`), and a full settle (everything delivered, every claim
//! answered, time run until every socket is read). After every operation,
//! every room's [`Room::poll_event`] is taken into its frontend's queue and
//! every room keeps the `room` target's invariants; the member's own ones
//! are listed in `README.md`.

use std::collections::{HashMap, HashSet, VecDeque};

use arbitrary::{Arbitrary, Unstructured};
use chat_core::cluster::{Event, Outgoing};
use chat_core::{ClientId, Dialect, RemoteStorage};

use super::{
    byte, fail, parse_line, take, tracing, word, Fault, FuzzStorage, Harness, Op, Said, ThrottleMode, MAX_OPS, TOKENS,
};

/// Nicknames of clients on other servers a room keeps.
pub const REMOTES: usize = 8;

/// Deadlines in a row that move nothing before a settle gives up: more
/// than the empty lines a client's input buffer can hold (each spends a
/// token and shows nothing).
const MAX_IDLE_DEADLINES: usize = 600;

/// Forged events a hostile peer hands a room ([`MemberOp::Forge`]): well
/// formed, naming the nicknames the tokens register, out of any order.
pub const FORGED: &[&str] = &[
    "J alice",
    "J bob",
    "J mallory",
    "S alice hi",
    "S bob hi",
    "S mallory forged",
    "A alice waves",
    "R alice bob",
    "R bob alice",
    "R mallory alice",
    "R alice mallory",
    "L alice",
    "L bob",
    "L mallory bye",
    "P alice bob psst",
    "P mallory alice psst",
    "P bob mallory psst",
    "J Neural",
    "L Neural",
    "J carol",
    "L carol",
    "R carol Carol",
];

/// One step of the world: a `room` target operation on one room, or what
/// the broker, the frontends and a hostile peer do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberOp {
    /// A `room` target operation on room `room` (modulo the room count).
    Room { room: u8, op: Op },
    /// A registered line client of room `room` whose stream so far ends in
    /// a line end types a line of its own (`~R.SERIAL.N`): it must come
    /// back once, whatever happens, if the client stays.
    Chat { room: u8, conn: u8 },
    /// The frontend of `room` hands the broker the first `n` things the
    /// room asked for (0: all), if the broker is reachable.
    Forward { room: u8, n: u8 },
    /// The broker hands `room` the next `n` events of the order (0: all),
    /// if reachable.
    Deliver { room: u8, n: u8 },
    /// The broker answers one pending claim (`pick` modulo how many):
    /// granted if the nickname is free, unless `verdict % 4 == 3` (refused).
    Answer { pick: u8, verdict: u8 },
    /// The broker is unreachable for `room`: `Room::pause`.
    Pause { room: u8 },
    /// It is back: `Room::resume`.
    Resume { room: u8 },
    /// A hostile peer hands `room` arbitrary bytes: `Room::recall` if
    /// `recall` is odd, else `Room::apply`.
    Inject { room: u8, recall: u8, data: Vec<u8> },
    /// A hostile peer hands `room` a well-formed event of [`FORGED`].
    Forge { room: u8, recall: u8, event: u8 },
    /// Everything delivered, answered and read, then the invariants that
    /// need it (one order, nothing lost).
    Settle,
    /// Every room's clock moves `ms` milliseconds, then `handle_timeout`.
    Tick { ms: u16 },
    /// Every room's frontend loop once (`room` target's `Frontend`).
    Frontend { write_cap: u16 },
}

impl MemberOp {
    /// Decodes one operation; missing bytes read as zero.
    pub fn decode(u: &mut Unstructured<'_>) -> MemberOp {
        let tag = byte(u);
        match tag % 32 {
            0..=15 => {
                let room = byte(u);
                MemberOp::Room { room, op: Op::decode_tag(tag, u) }
            }
            16 => MemberOp::Chat { room: byte(u), conn: byte(u) },
            17 => MemberOp::Forward { room: byte(u), n: byte(u) },
            18 => MemberOp::Deliver { room: byte(u), n: byte(u) },
            19 => MemberOp::Answer { pick: byte(u), verdict: byte(u) },
            20 => MemberOp::Pause { room: byte(u) },
            21 => MemberOp::Resume { room: byte(u) },
            22 => {
                let room = byte(u);
                let recall = byte(u);
                let len = usize::from(byte(u));
                MemberOp::Inject { room, recall, data: take(u, len) }
            }
            23 => MemberOp::Forge { room: byte(u), recall: byte(u), event: byte(u) },
            24 | 25 => MemberOp::Settle,
            26 | 27 => MemberOp::Tick { ms: word(u) },
            _ => MemberOp::Frontend { write_cap: word(u) },
        }
    }

    /// The bytes [`MemberOp::decode`] reads back as this operation.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            MemberOp::Room { room, op } => {
                let mut bytes = Vec::new();
                op.encode(&mut bytes);
                out.extend([bytes[0], *room]);
                out.extend(&bytes[1..]);
            }
            MemberOp::Chat { room, conn } => out.extend([16, *room, *conn]),
            MemberOp::Forward { room, n } => out.extend([17, *room, *n]),
            MemberOp::Deliver { room, n } => out.extend([18, *room, *n]),
            MemberOp::Answer { pick, verdict } => out.extend([19, *pick, *verdict]),
            MemberOp::Pause { room } => out.extend([20, *room]),
            MemberOp::Resume { room } => out.extend([21, *room]),
            MemberOp::Inject { room, recall, data } => {
                assert!(data.len() <= 255, "Inject carries at most 255 bytes");
                out.extend([22, *room, *recall, data.len() as u8]);
                out.extend(data);
            }
            MemberOp::Forge { room, recall, event } => out.extend([23, *room, *recall, *event]),
            MemberOp::Settle => out.push(24),
            MemberOp::Tick { ms } => {
                out.push(26);
                out.extend(ms.to_le_bytes());
            }
            MemberOp::Frontend { write_cap } => {
                out.push(28);
                out.extend(write_cap.to_le_bytes());
            }
        }
    }
}

/// A whole scenario of the `member` target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInput {
    pub throttle: ThrottleMode,
    /// 2 or 3.
    pub rooms: u8,
    pub ops: Vec<MemberOp>,
}

impl MemberInput {
    /// Decodes a fuzzer input (never fails). The first byte picks the
    /// throttle (modulo 3) and the room count (2, or 3 when `(b / 3) % 2`).
    pub fn decode(data: &[u8]) -> MemberInput {
        let mut u = Unstructured::new(data);
        let first = byte(&mut u);
        let throttle = ThrottleMode::from_byte(first);
        let rooms = 2 + (first / 3) % 2;
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < MAX_OPS {
            ops.push(MemberOp::decode(&mut u));
        }
        MemberInput { throttle, rooms, ops }
    }

    /// The bytes [`MemberInput::decode`] reads back as this input.
    pub fn encode(&self) -> Vec<u8> {
        assert!((2..=3).contains(&self.rooms), "2 or 3 rooms");
        let mut out = vec![self.throttle.byte() + 3 * (self.rooms - 2)];
        for op in &self.ops {
            op.encode(&mut out);
        }
        out
    }
}

impl<'a> Arbitrary<'a> for MemberInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let rest = take(u, u.len());
        Ok(MemberInput::decode(&rest))
    }

    fn arbitrary_take_rest(u: Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(MemberInput::decode(u.take_rest()))
    }
}

/// A connection of the world: its room and its serial there.
type Client = (usize, u64);

/// An [`Outgoing`] that outlives the room's borrow.
#[derive(Clone, Debug)]
enum Owned {
    Publish(String),
    Claim(ClientId, String),
    Release(String),
}

struct World<'r> {
    rooms: Vec<Harness<'r>>,
    step: usize,
    /// The broker is reachable from this room.
    up: Vec<bool>,
    /// What each room asked for that its frontend has not handed over.
    uplink: Vec<VecDeque<Owned>>,
    /// The room's one order of events.
    order: Vec<String>,
    /// How much of `order` each room has applied.
    applied: Vec<usize>,
    /// Who holds each nickname (ASCII lower case): which room.
    registry: HashMap<String, usize>,
    /// Claims the broker has not answered: room, client, nickname.
    asked: Vec<(usize, ClientId, String)>,
    /// A hostile peer's event was taken: this room's clients may see
    /// anything, and are left out of the cross-room checks.
    hostile: Vec<bool>,
    /// `Room::shutdown` was called.
    shut: Vec<bool>,
    /// For each connection (room, serial): whether everything it sent so
    /// far ends in a line end, and its marker lines not yet found.
    ends_line: HashMap<(usize, u64), bool>,
    markers: HashMap<(usize, u64), Vec<String>>,
    marker_count: u64,
    /// For two line clients of different rooms: how many broadcast lines
    /// each had at the last settle after which both were registered and
    /// had nothing pending.
    synced: HashMap<(Client, Client), (usize, usize)>,
}

pub(crate) fn play(input: &MemberInput) {
    let n = usize::from(input.rooms.clamp(2, 3));
    let mut storages: Vec<Box<FuzzStorage>> = (0..n).map(|_| Box::new(FuzzStorage::new())).collect();
    let mut remotes: Vec<Vec<RemoteStorage>> = (0..n).map(|_| vec![RemoteStorage::EMPTY; REMOTES]).collect();
    let rooms = storages
        .iter_mut()
        .zip(remotes.iter_mut())
        .map(|(storage, remotes)| {
            let mut room = storage.room(input.throttle.config());
            room.join_cluster(remotes);
            Harness::new(room)
        })
        .collect();
    let mut w = World {
        rooms,
        step: 0,
        up: vec![true; n],
        uplink: vec![VecDeque::new(); n],
        order: Vec::new(),
        applied: vec![0; n],
        registry: HashMap::new(),
        asked: Vec::new(),
        hostile: vec![false; n],
        shut: vec![false; n],
        ends_line: HashMap::new(),
        markers: HashMap::new(),
        marker_count: 0,
        synced: HashMap::new(),
    };
    if tracing() {
        eprintln!("throttle {:?}, {n} rooms", input.throttle);
    }
    for (step, op) in input.ops.iter().enumerate() {
        w.step = step;
        if tracing() {
            eprintln!("step {step}: {op:?}");
        }
        w.apply(op);
        w.after();
    }
    w.step = usize::MAX;
    w.settle();
    for h in &mut w.rooms {
        h.known.step = usize::MAX;
        h.teardown();
    }
}

impl World<'_> {
    fn fail(&self, tag: &str, msg: impl std::fmt::Display) {
        fail(self.step, tag, msg);
    }

    fn room(&self, room: u8) -> usize {
        usize::from(room) % self.rooms.len()
    }

    fn apply(&mut self, op: &MemberOp) {
        match *op {
            MemberOp::Room { room, ref op } => {
                let r = self.room(room);
                self.room_op(r, op);
            }
            MemberOp::Chat { room, conn } => {
                let r = self.room(room);
                self.chat(r, conn);
            }
            MemberOp::Forward { room, n } => {
                let r = self.room(room);
                self.forward(r, if n == 0 { usize::MAX } else { usize::from(n) });
            }
            MemberOp::Deliver { room, n } => {
                let r = self.room(room);
                self.deliver(r, if n == 0 { usize::MAX } else { usize::from(n) });
            }
            MemberOp::Answer { pick, verdict } => {
                if !self.asked.is_empty() {
                    let k = usize::from(pick) % self.asked.len();
                    let _ = self.answer(k, verdict % 4 != 3);
                }
            }
            MemberOp::Pause { room } => {
                let r = self.room(room);
                self.up[r] = false;
                let h = &mut self.rooms[r];
                h.room.pause(h.now);
            }
            MemberOp::Resume { room } => {
                let r = self.room(room);
                self.up[r] = true;
                let h = &mut self.rooms[r];
                h.room.resume(h.now);
            }
            MemberOp::Inject { room, recall, ref data } => {
                let r = self.room(room);
                self.hostile(r, recall % 2 == 1, data);
            }
            MemberOp::Forge { room, recall, event } => {
                let r = self.room(room);
                let event = FORGED[usize::from(event) % FORGED.len()];
                self.hostile(r, recall % 2 == 1, event.as_bytes());
            }
            MemberOp::Settle => self.settle(),
            MemberOp::Tick { ms } => {
                for h in &mut self.rooms {
                    h.apply(&Op::Tick { ms });
                }
            }
            MemberOp::Frontend { write_cap } => {
                for h in &mut self.rooms {
                    h.frontend(usize::from(write_cap));
                }
            }
        }
    }

    /// A `room` target operation. What a client sends is followed (does
    /// it end a line?), and `~` is never sent: markers are the harness's.
    fn room_op(&mut self, r: usize, op: &Op) {
        let data = match op {
            Op::Send { data, .. } => Some(data.clone()),
            Op::Say { tokens, .. } => {
                Some(tokens.iter().flat_map(|&t| TOKENS[usize::from(t) % TOKENS.len()].iter().copied()).collect())
            }
            Op::Shutdown => {
                self.shut[r] = true;
                None
            }
            _ => None,
        };
        let (Op::Send { conn, .. } | Op::Say { conn, .. }) = op else {
            return self.rooms[r].apply(op);
        };
        let mut data: Vec<u8> = data.unwrap_or_default();
        for b in &mut data {
            if *b == b'~' {
                *b = b'-';
            }
        }
        let h = &mut self.rooms[r];
        if let Some(i) = h.conn(*conn) {
            let c = h.conns[i].as_ref().unwrap();
            if !c.fin {
                if let Some(&last) = data.last() {
                    self.ends_line.insert((r, c.serial), last == b'\n');
                }
            }
        }
        h.apply(&Op::Send { conn: *conn, data });
    }

    fn chat(&mut self, r: usize, conn: u8) {
        let n = self.marker_count;
        let h = &mut self.rooms[r];
        let Some(i) = h.conn(conn) else { return };
        let c = h.conns[i].as_ref().unwrap();
        let ok = !c.fin
            && !c.eof
            && h.room.nick(c.id).is_some()
            && h.room.dialect(c.id) == Dialect::Line
            && self.ends_line.get(&(r, c.serial)).copied().unwrap_or(true);
        if !ok {
            return;
        }
        let serial = c.serial;
        let marker = format!("~{r}.{serial}.{n}");
        self.marker_count += 1;
        self.markers.entry((r, serial)).or_default().push(marker.clone());
        h.apply(&Op::Send { conn, data: format!("{marker}\n").into_bytes() });
    }

    fn forward(&mut self, r: usize, n: usize) {
        if !self.up[r] {
            return;
        }
        for _ in 0..n {
            let Some(out) = self.uplink[r].pop_front() else { return };
            match out {
                Owned::Publish(event) => self.order.push(event),
                Owned::Claim(id, nick) => self.asked.push((r, id, nick)),
                Owned::Release(nick) => {
                    let key = nick.to_ascii_lowercase();
                    if self.registry.get(&key) == Some(&r) {
                        self.registry.remove(&key);
                    } else if !self.hostile[r] {
                        self.fail(
                            "release",
                            format!(
                                "room {r} released {nick:?}, held by {:?}",
                                self.registry.get(&key).map(|r| format!("room {r}"))
                            ),
                        );
                    }
                }
            }
        }
    }

    fn deliver(&mut self, r: usize, n: usize) {
        if !self.up[r] {
            return;
        }
        for _ in 0..n {
            let Some(event) = self.order.get(self.applied[r]) else { return };
            // A nickname that joins or is renamed to in the order was
            // granted: registered, even if gone before any step's end.
            let named: Vec<String> = match Event::parse(event.as_bytes()) {
                Ok(Event::Joined { nick }) => vec![nick.to_string()],
                Ok(Event::Renamed { old, new }) => vec![old.to_string(), new.to_string()],
                _ => Vec::new(),
            };
            for h in &mut self.rooms {
                for nick in &named {
                    h.known.add(nick);
                }
            }
            let h = &mut self.rooms[r];
            if let Err(e) = h.room.apply(event.as_bytes(), h.now) {
                self.fail("apply", format!("room {r} refused {event:?} of the order: {e}"));
            }
            self.applied[r] += 1;
        }
    }

    /// The honest registry: a nickname held by a room (itself included) is
    /// never granted again until released.
    /// Whether it was answered (not when the room cannot be reached).
    fn answer(&mut self, k: usize, grant: bool) -> bool {
        let (r, _, _) = self.asked[k];
        if !self.up[r] {
            return false;
        }
        let (r, id, nick) = self.asked.remove(k);
        let key = nick.to_ascii_lowercase();
        let granted = grant && !self.registry.contains_key(&key);
        if granted {
            self.registry.insert(key, r);
        }
        if tracing() {
            eprintln!("    claim of {nick:?} for slot {} of room {r}: {granted}", id.index());
        }
        let h = &mut self.rooms[r];
        h.room.claimed(id, &nick, granted, h.now);
        true
    }

    fn hostile(&mut self, r: usize, recall: bool, data: &[u8]) {
        let h = &mut self.rooms[r];
        let taken = if recall { h.room.recall(data) } else { h.room.apply(data, h.now) };
        if taken.is_ok() {
            self.hostile[r] = true;
            self.rooms[r].known.hostile = true;
            // Its names are shown as if registered.
            let text = String::from_utf8_lossy(data);
            for word in text.split(' ').skip(1).take(2) {
                for h in &mut self.rooms {
                    h.known.add(word);
                }
            }
        }
    }

    /// After every operation: what the rooms ask for goes to their
    /// frontends' queues; every room's invariants, and the registry's.
    fn after(&mut self) {
        for r in 0..self.rooms.len() {
            self.collect(r);
        }
        self.share_known();
        for h in &mut self.rooms {
            h.known.step = self.step;
            h.check();
        }
        self.check_held();
    }

    fn collect(&mut self, r: usize) {
        let mut rounds = 0;
        while let Some(out) = self.rooms[r].room.poll_event() {
            rounds += 1;
            if rounds > 100_000 {
                return fail(self.step, "poll-event", "poll_event never runs dry");
            }
            let owned = match out {
                Outgoing::Publish(event) => {
                    if Event::parse(event.as_bytes()).is_err() {
                        fail(self.step, "publish", format!("room {r} published {event:?}, not an event"));
                    }
                    Owned::Publish(event.into())
                }
                Outgoing::Claim { id, nick } => {
                    if chat_core::Nick::parse(nick).is_err() {
                        fail(self.step, "claim", format!("room {r} claimed {nick:?}, not a nickname"));
                    }
                    Owned::Claim(id, nick.into())
                }
                Outgoing::Release(nick) => Owned::Release(nick.into()),
            };
            if tracing() {
                eprintln!("    room {r} asks {owned:?}");
            }
            self.uplink[r].push_back(owned);
        }
    }

    /// Every nickname registered in one room is known to all (a client may
    /// hear a remote speak with its `joined!` in history only).
    fn share_known(&mut self) {
        let mut all: Vec<String> = Vec::new();
        for h in &self.rooms {
            for slot in 0..h.room.capacity() {
                if let Some(nick) = ClientId::new(slot).and_then(|id| h.room.nick(id)) {
                    all.push(nick.to_string());
                }
            }
        }
        let mut ever: HashSet<String> = HashSet::new();
        let mut ever_seed: HashSet<String> = HashSet::new();
        for h in &self.rooms {
            ever.extend(h.known.ever.iter().cloned());
            ever_seed.extend(h.known.ever_seed.iter().cloned());
        }
        for h in &mut self.rooms {
            for nick in &all {
                h.known.add(nick);
            }
            h.known.ever.extend(ever.iter().cloned());
            h.known.ever_seed.extend(ever_seed.iter().cloned());
        }
    }

    /// A registered client's nickname is held by its room in the registry.
    fn check_held(&self) {
        for (r, h) in self.rooms.iter().enumerate() {
            for slot in 0..h.room.capacity() {
                let Some(nick) = ClientId::new(slot).and_then(|id| h.room.nick(id)) else { continue };
                let holder = self.registry.get(&nick.to_ascii_lowercase());
                if holder != Some(&r) {
                    self.fail(
                        "held",
                        format!("{nick:?} is registered in room {r} but the registry gives it to {holder:?}"),
                    );
                }
            }
        }
    }

    /// Whatever the frontends and the broker can do, until nothing is
    /// left: every room reachable, every claim answered honestly, every
    /// event delivered, every socket read (time runs for flood control).
    fn settle(&mut self) {
        let n = self.rooms.len();
        let mut idle = 0;
        for r in 0..n {
            if !self.up[r] {
                self.up[r] = true;
                let h = &mut self.rooms[r];
                h.room.resume(h.now);
            }
        }
        for _ in 0..5_000 {
            let before = self.progress();
            self.share_known();
            for r in 0..n {
                let h = &mut self.rooms[r];
                h.room.handle_timeout(h.now);
                for i in 0..h.conns.len() {
                    let Some(c) = &h.conns[i] else { continue };
                    if h.room.needs_pump(c.id, h.now) || !c.socket.is_empty() || (c.fin && !c.eof) {
                        h.pump(i, 1 << 16, 1024, Fault::None);
                    }
                }
                self.collect(r);
            }
            for r in 0..n {
                self.forward(r, usize::MAX);
            }
            while !self.asked.is_empty() && self.answer(0, true) {}
            for r in 0..n {
                self.deliver(r, usize::MAX);
            }
            if self.progress() != before {
                idle = 0;
                continue;
            }
            // Nothing moves: time runs to the next deadline (lines held by
            // flood control, in a socket or in the room's buffer; leaving
            // clients' drain; registration). Many deadlines in a row with
            // nothing moving, or none at all: settled. Many, because an
            // empty line spends a token and shows nothing: a buffer of
            // them under tight flood control passes deadline after
            // deadline before the next line that shows.
            idle += 1;
            let mut later = false;
            for h in &mut self.rooms {
                if let Some(at) = h.room.poll_timeout() {
                    later |= at > h.now;
                    h.now = h.now.max(at);
                }
            }
            if !later || idle > MAX_IDLE_DEADLINES {
                break;
            }
        }
        self.after();
        for r in 0..n {
            if self.applied[r] != self.order.len() {
                self.fail("settle", format!("room {r} did not apply the whole order"));
            }
        }
        self.check_unique();
        self.check_markers();
        self.check_one_order();
    }

    /// What moves while the world settles: bytes sent and read, events.
    fn progress(&self) -> [usize; 6] {
        let conns = self.rooms.iter().flat_map(|h| h.conns.iter().flatten());
        let (n, rx, socket) =
            conns.fold((0, 0, 0), |(n, rx, socket), c| (n + 1, rx + c.rx.len(), socket + c.socket.len()));
        let uplink = self.uplink.iter().map(VecDeque::len).sum();
        let applied = self.applied.iter().sum();
        [n, rx, socket, self.order.len(), uplink, applied]
    }

    /// No nickname registered in two rooms.
    fn check_unique(&self) {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (r, h) in self.rooms.iter().enumerate() {
            for slot in 0..h.room.capacity() {
                let Some(nick) = ClientId::new(slot).and_then(|id| h.room.nick(id)) else { continue };
                if let Some(other) = seen.insert(nick.to_ascii_lowercase(), r) {
                    if other != r {
                        self.fail("nick-unique", format!("{nick:?} is registered in rooms {other} and {r}"));
                    }
                }
            }
        }
    }

    /// Every marker line of a client still registered (all along) in a
    /// room no hostile peer touched and not shut down came back to it once.
    fn check_markers(&mut self) {
        for r in 0..self.rooms.len() {
            if self.hostile[r] || self.shut[r] {
                continue;
            }
            let h = &self.rooms[r];
            for c in h.conns.iter().flatten() {
                let Some(markers) = self.markers.get(&(r, c.serial)) else { continue };
                if h.room.nick(c.id).is_none() || c.gone_from_room || c.fin {
                    continue;
                }
                let text = String::from_utf8_lossy(&c.rx);
                for marker in markers {
                    let seen = text
                        .split('\n')
                        .filter(|line| matches!(parse_line(line), Said::Chat(_, said) if said == marker))
                        .count();
                    if seen != 1 {
                        self.fail(
                            "lost",
                            format!(
                                "room {r}, conn #{}: its line {marker:?} came back {seen} times (socket holds {} bytes)",
                                c.serial,
                                c.socket.len()
                            ),
                        );
                    }
                }
            }
            let serials: Vec<u64> = h.conns.iter().flatten().map(|c| c.serial).collect();
            for serial in serials {
                self.markers.remove(&(r, serial));
            }
        }
    }

    /// Two line clients of different rooms, both registered with nothing
    /// pending at this settle and the last: the same broadcast lines since.
    fn check_one_order(&mut self) {
        let mut settled = Vec::new();
        for (r, h) in self.rooms.iter().enumerate() {
            if self.hostile[r] || self.shut[r] {
                continue;
            }
            for (i, c) in h.conns.iter().enumerate() {
                let Some(c) = c else { continue };
                if h.room.nick(c.id).is_some()
                    && h.room.dialect(c.id) == Dialect::Line
                    && !h.room.needs_pump(c.id, h.now)
                    && c.checked == c.rx.len()
                {
                    settled.push((r, i));
                }
            }
        }
        for (k, &(ra, ia)) in settled.iter().enumerate() {
            for &(rb, ib) in &settled[k + 1..] {
                if ra == rb {
                    continue;
                }
                let a = self.rooms[ra].conns[ia].as_ref().unwrap();
                let b = self.rooms[rb].conns[ib].as_ref().unwrap();
                let key = ((ra, a.serial), (rb, b.serial));
                if let Some(&(pa, pb)) = self.synced.get(&key) {
                    if tracing() {
                        eprintln!(
                            "    one order: room {ra} #{} and room {rb} #{}, {} and {} broadcast lines since",
                            a.serial,
                            b.serial,
                            a.broadcast.len() - pa,
                            b.broadcast.len() - pb
                        );
                    }
                    if a.broadcast[pa..] != b.broadcast[pb..] {
                        self.fail(
                            "one-order",
                            format!(
                                "clients of two rooms in the room all along got different broadcast lines:\n  room {ra} #{}: {:?}\n  room {rb} #{}: {:?}",
                                a.serial,
                                &a.broadcast[pa..],
                                b.serial,
                                &b.broadcast[pb..]
                            ),
                        );
                    }
                }
                self.synced.insert(key, (a.broadcast.len(), b.broadcast.len()));
            }
        }
    }
}
