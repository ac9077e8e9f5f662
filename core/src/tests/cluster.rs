//! Member rooms (see [`crate::cluster`]): two rooms on one simulated clock
//! and, between them, what a broker would be: one order of events for
//! both, and a registry of nicknames. Every byte still goes through
//! [`Room::pump`].

extern crate std;

use std::collections::HashMap;
use std::string::String;
use std::vec::Vec;
use std::{format, vec};

use super::{lines, Sim};
use crate::cluster::Outgoing;
use crate::wire::{CLUSTER_PAUSED, CLUSTER_RESUMED};
use crate::*;

/// Two member rooms and an in-memory broker between them.
struct Pair {
    rooms: [Sim; 2],
    /// The room's one order of events.
    order: Vec<String>,
    /// How much of `order` each room has applied.
    applied: [usize; 2],
    /// Who holds each nickname (ASCII lower case): which room.
    claims: HashMap<String, usize>,
    /// Claims not answered yet: room, client, nickname.
    asked: Vec<(usize, ClientId, String)>,
    /// Claims wait for [`Pair::answer`] rather than being answered at once.
    hold_claims: bool,
    /// The broker is unreachable: what the rooms hand out waits here.
    down: bool,
    waiting: [Vec<Owned>; 2],
}

/// An [`Outgoing`] that outlives the room's borrow.
#[derive(Clone, Debug)]
enum Owned {
    Publish(String),
    Claim(ClientId, String),
    Release(String),
}

impl Pair {
    fn new() -> Pair {
        let room = || {
            let mut sim = Sim::new();
            let remotes = std::boxed::Box::leak(vec![RemoteStorage::EMPTY; 16].into_boxed_slice());
            sim.room.join_cluster(remotes);
            sim
        };
        Pair {
            rooms: [room(), room()],
            order: Vec::new(),
            applied: [0, 0],
            claims: HashMap::new(),
            asked: Vec::new(),
            hold_claims: false,
            down: false,
            waiting: [Vec::new(), Vec::new()],
        }
    }

    /// What the frontends and the broker do until nothing is left to do.
    fn settle(&mut self) {
        for _ in 0..100 {
            let mut busy = false;
            for r in 0..2 {
                self.rooms[r].step();
                while let Some(out) = self.rooms[r].room.poll_event() {
                    let owned = match out {
                        Outgoing::Publish(event) => Owned::Publish(event.into()),
                        Outgoing::Claim { id, nick } => Owned::Claim(id, nick.into()),
                        Outgoing::Release(nick) => Owned::Release(nick.into()),
                    };
                    self.waiting[r].push(owned);
                    busy = true;
                }
                if !self.down {
                    for out in core::mem::take(&mut self.waiting[r]) {
                        match out {
                            Owned::Publish(event) => self.order.push(event),
                            Owned::Claim(id, nick) => self.asked.push((r, id, nick)),
                            Owned::Release(nick) => {
                                let held = self.claims.get(&nick.to_ascii_lowercase()) == Some(&r);
                                assert!(held, "room {r} released {nick}, which it does not hold");
                                self.claims.remove(&nick.to_ascii_lowercase());
                            }
                        }
                    }
                }
            }
            if !self.hold_claims && !self.asked.is_empty() {
                self.answer(self.asked.len());
                busy = true;
            }
            if !self.down {
                for r in 0..2 {
                    while self.applied[r] < self.order.len() {
                        let event = self.order[self.applied[r]].clone();
                        let now = self.rooms[r].now;
                        self.rooms[r].room.apply(event.as_bytes(), now).expect("a room event");
                        self.applied[r] += 1;
                        busy = true;
                    }
                }
            }
            if !busy {
                return;
            }
        }
        panic!("the rooms never settled");
    }

    /// Answers the first `n` claims asked, in the order they were asked:
    /// the first to ask for a free nickname gets it.
    fn answer(&mut self, n: usize) {
        for (r, id, nick) in self.asked.drain(..n).collect::<Vec<_>>() {
            let key = nick.to_ascii_lowercase();
            let granted = !self.claims.contains_key(&key);
            if granted {
                self.claims.insert(key, r);
            }
            let now = self.rooms[r].now;
            self.rooms[r].room.claimed(id, &nick, granted, now);
        }
    }

    /// A line client registers on room `r`.
    fn line_client(&mut self, r: usize, nick: &str) -> ClientId {
        let id = self.rooms[r].connect();
        self.rooms[r].send(id, format!("{nick}\n").as_bytes());
        self.settle();
        id
    }

    fn send(&mut self, r: usize, id: ClientId, bytes: &[u8]) {
        self.rooms[r].send(id, bytes);
        self.settle();
    }

    fn recv(&mut self, r: usize, id: ClientId) -> String {
        self.rooms[r].recv(id)
    }
}

#[test]
fn clients_of_two_members_chat_in_one_order() {
    let mut pair = Pair::new();
    let alice = pair.line_client(0, "alice");
    assert_eq!(pair.recv(0, alice), "alice joined!\nConnected to server!\n");
    let bob = pair.line_client(1, "bob");
    assert_eq!(pair.recv(1, bob), "bob joined!\nConnected to server!\n");
    assert_eq!(pair.recv(0, alice), "bob joined!\n");

    // Both speak before either line is in the order: each sees both, in
    // the order's order, its own line included only once it came back.
    pair.rooms[0].send(alice, b"hi bob\n");
    pair.rooms[1].send(bob, b"hi alice\n");
    assert_eq!(pair.recv(0, alice), "", "a member shows nothing before it is in the order");
    pair.settle();
    assert_eq!(pair.order[2..], ["S alice hi bob", "S bob hi alice"]);
    let both = "alice: hi bob\nbob: hi alice\n";
    assert_eq!(pair.recv(0, alice), both);
    assert_eq!(pair.recv(1, bob), both);

    pair.send(1, bob, b"/me waves\n");
    pair.send(0, alice, b"/nick alicia\n");
    let seen = "* bob waves\n*** alice is now known as alicia\n";
    assert_eq!(pair.recv(0, alice), seen);
    assert_eq!(pair.recv(1, bob), seen);
    assert_eq!(pair.rooms[0].room.nick(alice), Some("alicia"));
    assert!(!pair.claims.contains_key("alice"), "the old name is free again");

    pair.send(0, alice, b"/quit bye\n");
    assert_eq!(pair.recv(1, bob), "alicia left! (bye)\n");
    assert_eq!(pair.rooms[0].close(alice), Some(Reason::Quit));
    assert_eq!(pair.claims.keys().collect::<Vec<_>>(), ["bob"]);
}

#[test]
fn a_leaving_client_sees_its_own_left_line_once_it_is_in_the_order() {
    let mut pair = Pair::new();
    let alice = pair.line_client(0, "alice");
    let bob = pair.line_client(1, "bob");
    pair.recv(0, alice);
    pair.recv(1, bob);
    pair.rooms[0].send(alice, b"/quit\n");
    assert_eq!(pair.rooms[0].closed(alice), None, "it waits for its own left! line");
    pair.settle();
    assert_eq!(pair.recv(0, alice), "alice left!\n");
    assert_eq!(pair.rooms[0].closed(alice), Some(Reason::Quit));
    assert_eq!(pair.recv(1, bob), "alice left!\n");
}

#[test]
fn who_and_msg_reach_clients_of_the_other_member() {
    let mut pair = Pair::new();
    let alice = pair.line_client(0, "alice");
    let carol = pair.line_client(0, "carol");
    let bob = pair.line_client(1, "bob");
    for (r, id) in [(0, alice), (0, carol), (1, bob)] {
        pair.recv(r, id);
    }
    pair.send(1, bob, b"/who\n");
    assert_eq!(pair.recv(1, bob), "*** 3 in the room: bob alice carol\n");
    pair.send(0, alice, b"/who\n");
    assert_eq!(pair.recv(0, alice), "*** 3 in the room: alice carol bob\n");

    pair.send(0, alice, b"/msg BOB psst\n");
    assert_eq!(pair.recv(1, bob), "*alice* psst\n");
    assert_eq!(pair.recv(0, alice), "-> *bob* psst\n");
    assert_eq!(pair.recv(0, carol), "", "a private line is for its two ends only");
    pair.send(1, bob, b"/msg nobody hi\n");
    assert_eq!(pair.recv(1, bob), "*** no such nickname: nobody\n");
}

#[test]
fn a_nickname_is_unique_across_members_ignoring_case() {
    let mut pair = Pair::new();
    pair.hold_claims = true;
    // Both ask for it before either is answered: the first asked wins.
    let one = pair.rooms[0].connect();
    let two = pair.rooms[1].connect();
    pair.rooms[0].send(one, b"Alice\n");
    pair.rooms[1].send(two, b"alice\nhello\n");
    pair.settle();
    assert_eq!(pair.asked.len(), 2);
    assert_eq!(pair.recv(0, one), "", "no answer yet: it waits");
    pair.answer(2);
    pair.settle();
    assert_eq!(pair.recv(0, one), "Alice joined!\nConnected to server!\n");
    assert_eq!(
        pair.recv(1, two),
        "*** nickname \"alice\" refused: it is taken\nNICK\n",
        "the loser is asked again, and its next line is not taken for chat"
    );
    // Its typed-ahead `hello` was waiting: it is the next nickname tried.
    assert_eq!(pair.asked.len(), 1);
    pair.answer(1);
    pair.settle();
    assert_eq!(pair.recv(1, two), "hello joined!\nConnected to server!\n");
    assert_eq!(pair.recv(0, one), "hello joined!\n");

    // Known names are refused at once, without asking.
    let three = pair.rooms[1].connect();
    pair.rooms[1].send(three, b"ALICE\n");
    assert_eq!(pair.recv(1, three), "*** nickname \"ALICE\" refused: it is taken\nNICK\n");
    assert!(pair.asked.is_empty());
}

#[test]
fn a_client_gone_while_its_claim_is_out_frees_the_nickname() {
    let mut pair = Pair::new();
    pair.hold_claims = true;
    let one = pair.rooms[0].connect();
    pair.rooms[0].send(one, b"alice\n");
    pair.settle();
    pair.rooms[0].room.disconnect(one, Reason::Io(embedded_io::ErrorKind::ConnectionReset));
    pair.answer(1);
    pair.settle();
    assert!(pair.claims.is_empty(), "granted to nobody, so released: {:?}", pair.claims);
    assert!(pair.order.is_empty(), "nobody joined: {:?}", pair.order);

    // A hang-up waits in the socket like any input until the answer: the
    // room sees the client come and go, and the name is free again.
    let two = pair.rooms[0].connect();
    pair.rooms[0].send(two, b"bob\n");
    pair.settle();
    pair.rooms[0].hang_up(two);
    pair.answer(1);
    pair.settle();
    assert_eq!(pair.order, ["J bob", "L bob"]);
    assert!(pair.claims.is_empty(), "{:?}", pair.claims);
    assert_eq!(pair.rooms[0].close(two), Some(Reason::PeerClosed));
}

#[test]
fn a_seed_client_gets_a_free_variant_claimed() {
    let mut pair = Pair::new();
    let alice = pair.line_client(1, "Neural");
    pair.recv(1, alice);
    let neural = pair.rooms[0].connect();
    pair.rooms[0].send(neural, b"Neural");
    pair.rooms[0].tick(Config::default().seed_grace.millis());
    pair.settle();
    assert_eq!(
        pair.rooms[0].writes(neural),
        ["Neural2 joined!\nConnected to server!\n*** you are Neural2 here: \"Neural\" is taken"]
    );
    assert_eq!(pair.recv(1, alice), "Neural2 joined!\n");
}

#[test]
fn a_pause_holds_every_line_and_loses_none() {
    let mut pair = Pair::new();
    let alice = pair.line_client(0, "alice");
    let bob = pair.line_client(1, "bob");
    pair.recv(0, alice);
    pair.recv(1, bob);

    pair.down = true;
    for r in 0..2 {
        let now = pair.rooms[r].now;
        pair.rooms[r].room.pause(now);
        pair.rooms[r].room.pause(now);
    }
    let paused = std::str::from_utf8(CLUSTER_PAUSED).unwrap();
    assert_eq!(pair.recv(0, alice), paused, "told once");
    // Lines typed meanwhile wait in the socket: nothing is read.
    let typed = b"one\ntwo\n";
    assert_eq!(pair.rooms[0].offer(alice, typed), 0);
    pair.settle();
    assert!(pair.order.len() == 2, "nothing published: {:?}", pair.order);

    // Room 0 hears it is back first; room 1 hears of it from the order
    // (alice's lines) before its own frontend says so: it is back all the same.
    pair.down = false;
    let now = pair.rooms[0].now;
    pair.rooms[0].room.resume(now);
    // Nothing new arrives on its socket: the room itself goes back to it.
    pair.settle();
    let resumed = std::str::from_utf8(CLUSTER_RESUMED).unwrap();
    assert_eq!(pair.recv(0, alice), format!("{resumed}alice: one\nalice: two\n"));
    assert_eq!(lines(&pair.recv(1, bob)), [paused.trim_end(), resumed.trim_end(), "alice: one", "alice: two"]);
}

#[test]
fn a_member_applies_every_event_of_the_order_as_a_room_shows_it() {
    let mut sim = Sim::new();
    let remotes = std::boxed::Box::leak(vec![RemoteStorage::EMPTY; 2].into_boxed_slice());
    sim.room.join_cluster(remotes);
    let id = sim.connect();
    sim.send(id, b"zed\n");
    assert_eq!(sim.room.poll_event(), Some(Outgoing::Claim { id, nick: "zed" }));
    assert_eq!(sim.room.poll_event(), None);
    let now = sim.now;
    sim.room.claimed(id, "zed", true, now);
    assert_eq!(sim.room.poll_event(), Some(Outgoing::Publish("J zed")));
    for event in ["J zed", "J ann", "S ann hi: there", "A ann waves", "R ann anna", "P anna zed psst", "L anna gone"] {
        sim.room.apply(event.as_bytes(), now).unwrap();
    }
    assert_eq!(sim.room.apply(b"S ann two\nlines", now), Err(cluster::BadEvent));
    sim.step();
    assert_eq!(
        lines(&sim.recv(id)),
        [
            "zed joined!",
            "Connected to server!",
            "ann joined!",
            "ann: hi: there",
            "* ann waves",
            "*** ann is now known as anna",
            "*anna* psst",
            "anna left! (gone)",
        ]
    );
}

// ----- a lone member, its broker played by hand ---------------------------
//
// Most cases below come from a review of the seam and failed before its
// fixes (eceb7a3).

/// A lone member (no broker: the test plays it by hand).
fn member(mut sim: Sim) -> Sim {
    let remotes = std::boxed::Box::leak(vec![RemoteStorage::EMPTY; 16].into_boxed_slice());
    sim.room.join_cluster(remotes);
    sim
}

/// What the member asks of the world outside, as `P event`, `C slot nick`
/// or `F nick`.
fn drain(sim: &mut Sim) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(o) = sim.room.poll_event() {
        out.push(match o {
            Outgoing::Publish(e) => format!("P {e}"),
            Outgoing::Claim { id, nick } => format!("C {} {nick}", id.index()),
            Outgoing::Release(n) => format!("F {n}"),
        });
    }
    out
}

/// `n` numbered lines, `00\n`, `01\n`, ….
fn numbered_lines(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| format!("{i:02}\n").into_bytes()).collect()
}

/// Registers `nick` on a lone member, granting its claim and applying its J.
fn registered(sim: &mut Sim, nick: &str) -> ClientId {
    let id = sim.connect();
    sim.send(id, format!("{nick}\n").as_bytes());
    assert_eq!(drain(sim), [format!("C {} {nick}", id.index())]);
    let now = sim.now;
    sim.room.claimed(id, nick, true, now);
    assert_eq!(drain(sim), [format!("P J {nick}")]);
    sim.room.apply(format!("J {nick}").as_bytes(), now).unwrap();
    sim.step();
    sim.recv(id);
    id
}

/// A second rename before the first came back renames from the new name
/// and frees each name once.
#[test]
fn rename_twice_before_r_comes_back() {
    let mut sim = member(Sim::new());
    let a = registered(&mut sim, "alice");
    sim.send(a, b"/nick al\n/nick ally\n");
    let now = sim.now;
    assert_eq!(drain(&mut sim), ["C 0 al"]);
    sim.room.claimed(a, "al", true, now);
    assert_eq!(drain(&mut sim), ["P R alice al", "F alice", "C 0 ally"]);
    sim.room.claimed(a, "ally", true, now);
    assert_eq!(drain(&mut sim), ["P R al ally", "F al"]);
}

/// A `/quit` right after a granted rename leaves and frees under the new
/// name.
#[test]
fn quit_right_after_granted_rename() {
    let mut sim = member(Sim::new());
    let a = registered(&mut sim, "alice");
    sim.send(a, b"/nick al\n/quit\n");
    let now = sim.now;
    drain(&mut sim);
    sim.room.claimed(a, "al", true, now);
    assert_eq!(drain(&mut sim), ["P R alice al", "F alice", "P L al", "F al"]);
}

/// Lines left in the input buffer when the outbox fills are handled once it
/// is taken.
#[test]
fn lines_buffered_when_the_outbox_fills_are_not_lost() {
    let mut sim = member(Sim::unthrottled());
    let a = registered(&mut sim, "alice");
    let typed = numbered_lines(70);
    assert_eq!(sim.offer(a, &typed), typed.len());
    let mut published = 0;
    for _ in 0..20 {
        published += drain(&mut sim).len();
        sim.step();
    }
    assert_eq!(published, 70);
}

/// The same with bytes still in the socket, over several fillings.
#[test]
fn lines_waiting_in_socket_when_the_outbox_fills_are_not_lost() {
    let mut sim = member(Sim::unthrottled());
    let a = registered(&mut sim, "alice");
    let typed = numbered_lines(200);
    sim.offer(a, &typed);
    let mut published = 0;
    for _ in 0..50 {
        published += drain(&mut sim).len();
        sim.step();
    }
    assert_eq!(published, 200, "unread in socket: {}", sim.peers[a.index()].unread.len());
}

/// `poll_event` says `None` only when nothing is left, even when taking the
/// outbox let held clients publish more.
#[test]
fn poll_event_none_means_nothing_left() {
    let mut sim = member(Sim::unthrottled());
    let a = registered(&mut sim, "alice");
    let typed = numbered_lines(200);
    sim.offer(a, &typed);
    drain(&mut sim);
    assert_eq!(drain(&mut sim), Vec::<String>::new(), "poll_event said None with events left");
}

/// An event longer than a client may send is refused, not stored (it would
/// not fit a small log, nor a seed client's write).
#[test]
fn a_long_event_from_a_peer_does_not_panic_the_ring() {
    let mut sim = member(Sim::new());
    let _a = registered(&mut sim, "alice");
    let ev = format!("S bob {}", "x".repeat(5000));
    let now = sim.now;
    assert_eq!(sim.room.apply(ev.as_bytes(), now), Err(cluster::BadEvent));
    sim.step();
}

#[test]
fn a_long_event_from_a_peer_does_not_panic_a_seed_client() {
    let mut sim = member(Sim::new());
    let id = sim.connect();
    sim.send(id, b"Neural");
    sim.tick(Config::default().seed_grace.millis());
    let now = sim.now;
    sim.room.claimed(id, "Neural", true, now);
    sim.room.apply(b"J Neural", now).unwrap();
    let ev = format!("S bob {}", "x".repeat(2000));
    assert_eq!(sim.room.apply(ev.as_bytes(), now), Err(cluster::BadEvent));
    sim.step();
    assert_eq!(sim.writes(id), ["Neural joined!\nConnected to server!"]);
}

/// A client gone after its `joined` went out, its name taken by a newcomer
/// before that `joined` came back: the old `joined` and `left` are a
/// stranger's, and the newcomer enters on its own.
#[test]
fn an_abandoned_join_does_not_leave_a_phantom() {
    let mut sim = member(Sim::new());
    let now = sim.now;
    let one = sim.connect();
    sim.send(one, b"alice\n");
    sim.room.claimed(one, "alice", true, now);
    sim.room.disconnect(one, Reason::PeerClosed);
    let two = sim.connect();
    sim.send(two, b"alice\n");
    sim.room.claimed(two, "alice", true, now);
    assert_eq!(drain(&mut sim), ["C 0 alice", "P J alice", "P L alice", "F alice", "C 1 alice", "P J alice"]);
    for ev in ["J alice", "L alice", "J alice"] {
        sim.room.apply(ev.as_bytes(), now).unwrap();
    }
    sim.step();
    sim.recv(two);
    sim.send(two, b"/who\n");
    assert_eq!(sim.recv(two), "*** 1 in the room: alice\n");
}

/// Only a client's own rename renames it.
#[test]
fn a_peer_cannot_rename_a_local_client() {
    let mut sim = member(Sim::new());
    let a = registered(&mut sim, "alice");
    let now = sim.now;
    sim.room.apply(b"R alice mallory", now).unwrap();
    assert_eq!(sim.room.nick(a), Some("alice"));
    sim.step();
    assert_eq!(sim.recv(a), "", "nor is it shown");
}

/// Lines held by flood control wait through a pause and all go out after.
#[test]
fn throttled_lines_across_a_pause() {
    let mut sim = member(Sim::throttled(1, 1000));
    let a = registered(&mut sim, "alice");
    sim.tick(5000);
    sim.offer(a, b"one\ntwo\nthree\n");
    let mut got = drain(&mut sim);
    let now = sim.now;
    sim.room.pause(now);
    sim.tick(1500);
    got.extend(drain(&mut sim));
    sim.tick(1500);
    let now = sim.now;
    sim.room.resume(now);
    got.extend(drain(&mut sim));
    sim.drive(10_000);
    got.extend(drain(&mut sim));
    assert_eq!(got, ["P S alice one", "P S alice two", "P S alice three"]);
}

/// A nickname cut by a pause is not taken for a seed client's: the rest of
/// it, waiting in the socket, completes it.
#[test]
fn greeting_partial_input_across_a_pause() {
    let mut sim = member(Sim::new());
    let id = sim.connect();
    sim.offer(id, b"ali");
    let now = sim.now;
    sim.room.pause(now);
    sim.offer(id, b"ce\nhello\n");
    sim.drive(1000);
    let now = sim.now;
    sim.room.resume(now);
    sim.step();
    let got = drain(&mut sim);
    assert_eq!(got, ["C 0 alice"], "{:?}", sim.recv(id));
}

/// A client waiting for its own `left!` and dropped as too slow meanwhile
/// is still closed.
#[test]
fn leaving_client_dropped_too_slow_while_left_pending() {
    let mut sim = member(Sim::new());
    let a = registered(&mut sim, "alice");
    let b = registered(&mut sim, "bob");
    sim.send(a, b"/quit\n");
    drain(&mut sim);
    let now = sim.now;
    for i in 0..200 {
        sim.room.apply(format!("S bob line {i} {}", "y".repeat(100)).as_bytes(), now).unwrap();
        drain(&mut sim);
    }
    sim.room.apply(b"L alice", now).unwrap();
    sim.step();
    sim.recv(b);
    sim.drive(5000);
    assert!(sim.closed(a).is_some());
}

#[test]
fn a_client_the_others_saw_leave_is_told_and_closed_freeing_nothing() {
    let mut sim = member(Sim::new());
    let a = registered(&mut sim, "alice");
    let now = sim.now;
    sim.room.apply(b"L alice", now).unwrap();
    sim.step();
    assert_eq!(
        sim.recv(a),
        format!("alice left!\n{}\n", crate::wire::CLUSTER_LOST),
        "it sees what the others saw, and why it goes"
    );
    assert_eq!(sim.close(a), Some(Reason::OutOfTouch));
    assert_eq!(drain(&mut sim), Vec::<String>::new(), "no second left!, and its name is not this server's to free");
}

#[test]
fn a_throttled_flood_in_a_small_log_is_all_published() {
    let storage: &'static mut Storage<4, 64, 2048> = std::boxed::Box::leak(std::boxed::Box::new(Storage::new()));
    let throttle = Throttle { burst: 1, interval: Duration::from_millis(100) };
    let mut sim =
        member(Sim::in_room(storage.room(Config { throttle: Some(throttle), history: 0, ..Config::default() })));
    let a = registered(&mut sim, "alice");
    let mut typed = Vec::new();
    for _ in 0..30 {
        typed.extend_from_slice(b"x\n");
    }
    typed.extend_from_slice(b"~end\n");
    sim.peers[a.index()].unread.extend_from_slice(&typed);
    sim.pump(a);
    let mut published = Vec::new();
    for _ in 0..200 {
        sim.step();
        for event in drain(&mut sim) {
            let now = sim.now;
            let payload = String::from(event.strip_prefix("P ").unwrap_or(&event));
            sim.room.apply(payload.as_bytes(), now).unwrap();
            published.push(payload);
        }
        sim.recv(a);
        match sim.room.poll_timeout() {
            Some(at) => sim.now = at,
            None => break,
        }
    }
    assert_eq!(published.len(), 31, "{published:?}; unread {:?}", sim.peers[a.index()].unread.len());
}
