//! Whole conversations on a simulated clock, in the style of quinn-proto's
//! `Pair` tests: connect clients, let them talk, assert the exact bytes each
//! one received.

extern crate std;

use std::boxed::Box;
use std::string::String;
use std::string::ToString;
use std::vec::Vec;
use std::{format, vec};

use crate::wire::{ROOM_FULL, SLOW_DOWN};
use crate::*;
use std::str;

mod cluster;

/// A room of 8 clients with a 4 KiB log, as on the board.
type Board = Storage<8, 128, 4096>;

/// The client's end of an in-memory connection, as [`Room::pump`] sees it
/// through [`Wire`]. The client reads only when a test says so
/// ([`Sim::writes`]): until then its socket takes nothing, as a socket
/// whose buffer is full, and what the room has for it waits in the log.
#[derive(Default)]
struct Peer {
    /// Sent by the client, not read by the room yet.
    unread: Vec<u8>,
    /// The client closed its side: after `unread`, reads see the end.
    hung_up: bool,
    /// Bytes the client's socket takes in one write before it is full.
    budget: usize,
    /// What each write carried since the test last looked.
    writes: Vec<Vec<u8>>,
    /// Why the room closed the connection, once it has.
    closed: Option<Reason>,
}

/// A [`Peer`] as an `embedded-io` connection.
struct Wire<'p>(&'p mut Peer);

impl embedded_io::ErrorType for Wire<'_> {
    type Error = embedded_io::ErrorKind;
}

impl embedded_io::ReadReady for Wire<'_> {
    fn read_ready(&mut self) -> Result<bool, Self::Error> {
        Ok(!self.0.unread.is_empty() || self.0.hung_up)
    }
}

impl embedded_io::Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(self.0.unread.len());
        buf[..n].copy_from_slice(&self.0.unread[..n]);
        self.0.unread.drain(..n);
        Ok(n)
    }
}

impl embedded_io::WriteReady for Wire<'_> {
    fn write_ready(&mut self) -> Result<bool, Self::Error> {
        Ok(self.0.budget > 0)
    }
}

impl embedded_io::Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(self.0.budget);
        self.0.budget -= n;
        self.0.writes.push(buf[..n].to_vec());
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// A room and its clients on a simulated clock, driven as a frontend drives
/// it: every byte goes through [`Room::pump`], and after each event the
/// room's deadlines are handled and every client it names is pumped.
struct Sim {
    room: Room<'static>,
    now: Instant,
    peers: Vec<Peer>,
}

impl Sim {
    /// A room with the protocol's defaults, but no history on join: the
    /// tests of history say so.
    fn new() -> Sim {
        Sim::with(Config::default())
    }

    fn with(config: Config) -> Sim {
        let storage: &'static mut Board = Box::leak(Box::new(Board::new()));
        Sim::in_room(storage.room(Config { history: 0, ..config }))
    }

    fn with_history(lines: u16) -> Sim {
        Sim::with_all_of(Config { history: lines, ..Config::default() })
    }

    /// A room with exactly `config`, history included.
    fn with_all_of(config: Config) -> Sim {
        let storage: &'static mut Board = Box::leak(Box::new(Board::new()));
        Sim::in_room(storage.room(config))
    }

    fn in_room(room: Room<'static>) -> Sim {
        let peers = (0..room.capacity()).map(|_| Peer::default()).collect();
        Sim { room, now: Instant::ZERO, peers }
    }

    fn unthrottled() -> Sim {
        Sim::with(Config { throttle: None, ..Config::default() })
    }

    fn throttled(burst: u16, interval_ms: u64) -> Sim {
        let throttle = Throttle { burst, interval: Duration::from_millis(interval_ms) };
        Sim::with(Config { throttle: Some(throttle), ..Config::default() })
    }

    /// The frontend pumps one connection (it had a readiness event).
    fn pump(&mut self, id: ClientId) {
        let peer = &mut self.peers[id.index()];
        if peer.closed.is_some() {
            return;
        }
        if let Status::Closed(reason) = self.room.pump(id, &mut Wire(peer), self.now) {
            peer.closed = Some(reason);
        }
    }

    /// The rest of a frontend's wake-up: deadlines, then every client the
    /// room names. Fails if the frontend would spin: a deadline due now
    /// left after the room did all it had to do.
    fn step(&mut self) {
        self.room.handle_timeout(self.now);
        let mut pumps = 0;
        while let Some(id) = self.room.poll_ready(self.now) {
            self.pump(id);
            pumps += 1;
            assert!(pumps < 10_000, "poll_ready never ran dry");
        }
        let next = self.room.poll_timeout();
        assert!(next.is_none_or(|at| at > self.now), "the loop would spin: deadline {next:?} at {:?}", self.now);
    }

    /// Jumps the clock to the room's next deadline and wakes up there, as
    /// quinn-proto's `Pair::drive` does, until the room has none left or
    /// `limit` has passed.
    fn drive(&mut self, limit_ms: u64) {
        let limit = self.now + Duration::from_millis(limit_ms);
        self.step();
        while let Some(at) = self.room.poll_timeout().filter(|&at| at <= limit) {
            self.now = at;
            self.step();
        }
    }

    fn tick(&mut self, ms: u64) {
        self.now = self.now + Duration::from_millis(ms);
        self.step();
    }

    fn connect(&mut self) -> ClientId {
        self.connect_from(None)
    }

    fn connect_from(&mut self, peer: Option<core::net::IpAddr>) -> ClientId {
        let id = self.room.accept(self.now, peer).expect("room has space");
        self.peers[id.index()] = Peer::default();
        self.pump(id);
        self.step();
        assert_eq!(self.writes(id), vec!["NICK"], "greeting");
        id
    }

    /// The client sends `bytes`, in one segment; returns how many the room
    /// read (the rest waits in the socket, as for flood control).
    fn offer(&mut self, id: ClientId, bytes: &[u8]) -> usize {
        let peer = &mut self.peers[id.index()];
        let before = peer.unread.len();
        peer.unread.extend_from_slice(bytes);
        self.pump(id);
        self.step();
        before + bytes.len() - self.peers[id.index()].unread.len()
    }

    /// The client sends `bytes`, and the room reads them all.
    fn send(&mut self, id: ClientId, bytes: &[u8]) {
        assert_eq!(self.offer(id, bytes), bytes.len(), "room left input unread");
    }

    /// The client closes its side.
    fn hang_up(&mut self, id: ClientId) {
        self.peers[id.index()].hung_up = true;
        self.pump(id);
        self.step();
    }

    /// The client reads, `piece` bytes a write at most, until nothing more
    /// comes; returns what each write carried.
    fn read_in_pieces(&mut self, id: ClientId, piece: usize) -> Vec<Vec<u8>> {
        loop {
            self.peers[id.index()].budget = piece;
            let before = self.peers[id.index()].writes.len();
            self.pump(id);
            self.step();
            if self.peers[id.index()].writes.len() == before {
                break;
            }
        }
        self.peers[id.index()].budget = 0;
        std::mem::take(&mut self.peers[id.index()].writes)
    }

    /// Everything pending for a client, one entry per write.
    fn writes(&mut self, id: ClientId) -> Vec<String> {
        self.read_in_pieces(id, usize::MAX)
            .into_iter()
            .map(|write| String::from_utf8(write).expect("server sent UTF-8"))
            .collect()
    }

    /// Everything pending for a client, as one string.
    fn recv(&mut self, id: ClientId) -> String {
        self.writes(id).concat()
    }

    /// A line client joining a room that may have history for it.
    fn line_client_after_history(&mut self, nick: &str) -> ClientId {
        let id = self.connect();
        self.send(id, format!("{nick}\n").as_bytes());
        let got = self.recv(id);
        assert!(got.starts_with(&format!("{nick} joined!\nConnected to server!\n")), "{got}");
        id
    }

    fn line_client(&mut self, nick: &str) -> ClientId {
        let id = self.connect();
        self.send(id, format!("{nick}\n").as_bytes());
        assert_eq!(self.recv(id), format!("{nick} joined!\nConnected to server!\n"));
        id
    }

    /// The tutorial's client: a bare nickname, then silence until the grace
    /// period tells the server which dialect this is.
    fn seed_client(&mut self, nick: &str) -> ClientId {
        let id = self.connect();
        self.send(id, nick.as_bytes());
        assert_eq!(self.writes(id), Vec::<String>::new(), "no answer within the grace period");
        self.tick(Config::default().seed_grace.millis());
        id
    }

    /// The client reads one write of at most `n` bytes.
    fn read_some(&mut self, id: ClientId, n: usize) -> Vec<u8> {
        self.peers[id.index()].budget = n;
        self.pump(id);
        self.peers[id.index()].budget = 0;
        self.step();
        std::mem::take(&mut self.peers[id.index()].writes).concat()
    }

    /// The client reads what is left; why the room then closed its
    /// connection, if it did.
    fn close(&mut self, id: ClientId) -> Option<Reason> {
        self.writes(id);
        self.closed(id)
    }

    /// Why the room closed the client's connection, if it has.
    fn closed(&mut self, id: ClientId) -> Option<Reason> {
        self.step();
        self.peers[id.index()].closed
    }
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

/// Whether a line could be read as `{valid nick}: text`.
fn parses_as_chat(line: &str) -> bool {
    line.split_once(": ").is_some_and(|(nick, _)| Nick::parse(nick).is_ok())
}

// ----- the seed tutorial ------------------------------------------------------

#[test]
fn seed_tutorial_conversation_byte_for_byte() {
    let mut sim = Sim::new();
    let neural = sim.seed_client("Neural");
    assert_eq!(sim.writes(neural), ["Neural joined!\nConnected to server!"]);

    let nine = sim.seed_client("Nine");
    assert_eq!(sim.writes(neural), ["Nine joined!"]);
    assert_eq!(sim.writes(nine), ["Nine joined!\nConnected to server!"]);

    let script = [
        (neural, "Neural: Hello"),
        (nine, "Nine: What's up?"),
        (neural, "Neural: Not much! How about you?"),
        (nine, "Nine: Same! Gotta Go! Bye!"),
    ];
    for (who, said) in script {
        sim.tick(1000);
        sim.send(who, said.as_bytes());
        assert_eq!(sim.writes(neural), [said]);
        assert_eq!(sim.writes(nine), [said]);
    }

    sim.hang_up(nine);
    assert_eq!(sim.writes(neural), ["Nine left!"]);
    assert_eq!(sim.close(nine), Some(Reason::PeerClosed));
}

#[test]
fn seed_client_coalesced_messages_are_split_at_its_prefix() {
    let mut sim = Sim::new();
    let neural = sim.seed_client("Neural");
    let alice = sim.line_client("alice");
    sim.writes(neural);
    sim.send(neural, b"Neural: HelloNeural: again");
    assert_eq!(sim.recv(alice), "Neural: Hello\nNeural: again\n");
    assert_eq!(sim.writes(neural), ["Neural: Hello\nNeural: again"]);
}

#[test]
fn seed_first_message_glued_to_nickname_is_split() {
    let mut sim = Sim::new();
    let alice = sim.line_client("alice");
    let neural = sim.connect();
    sim.send(neural, b"Neural");
    sim.tick(100);
    sim.send(neural, b"Neural: Hello");
    sim.tick(250);
    assert_eq!(sim.recv(alice), "Neural joined!\nNeural: Hello\n");
    assert_eq!(sim.room.nick(neural), Some("Neural"));
}

#[test]
fn seed_client_gets_ascii_and_lines_joined_without_trailing_newline() {
    let mut sim = Sim::new();
    let neural = sim.seed_client("Neural");
    let alice = sim.line_client("alice");
    assert_eq!(sim.writes(neural), ["Neural joined!\nConnected to server!\nalice joined!"]);
    sim.send(alice, "héllo wörld ✓\nsecond\n".as_bytes());
    assert_eq!(sim.writes(neural), ["alice: h?llo w?rld ?\nalice: second"]);
    assert_eq!(sim.recv(alice), "alice: héllo wörld ✓\nalice: second\n");
}

#[test]
fn a_burst_of_joins_reaches_a_client_in_one_write() {
    let mut sim = Sim::new();
    let alice = sim.line_client("alice");
    for nick in ["b", "c", "d", "e", "f"] {
        sim.line_client(nick);
    }
    // Each newcomer's private `Connected to server!` sits between the
    // `joined!` lines in the log; alice still gets them in one write.
    assert_eq!(sim.writes(alice), ["b joined!\nc joined!\nd joined!\ne joined!\nf joined!\n"]);
}

#[test]
fn seed_partial_writes_resume_where_they_stopped() {
    let mut sim = Sim::new();
    let neural = sim.seed_client("Neural");
    let alice = sim.line_client("alice");
    sim.writes(neural);
    sim.send(alice, "one\ntw\u{f6}\nthree\n".as_bytes());
    let pieces = sim.read_in_pieces(neural, 3);
    assert!(pieces.iter().all(|piece| piece.len() <= 3));
    assert_eq!(pieces.concat(), b"alice: one\nalice: tw?\nalice: three");
}

#[test]
fn seed_writes_never_exceed_1024_bytes() {
    let mut sim = Sim::unthrottled();
    let neural = sim.seed_client("Neural");
    let alice = sim.line_client("alice");
    sim.writes(neural);
    let text = "x".repeat(300);
    for _ in 0..10 {
        sim.send(alice, format!("{text}\n").as_bytes());
    }
    let writes = sim.writes(neural);
    assert!(writes.iter().all(|w| w.len() <= 1024), "{:?}", writes.iter().map(String::len).collect::<Vec<_>>());
    let joined = writes.join("\n");
    assert_eq!(joined.split('\n').count(), 10);
    assert!(joined.split('\n').all(|l| l == format!("alice: {text}")));
}

#[test]
fn seed_client_gets_unique_variant_of_taken_nick() {
    let mut sim = Sim::new();
    let first = sim.seed_client("alice");
    assert_eq!(sim.writes(first), ["alice joined!\nConnected to server!"]);
    let second = sim.seed_client("alice");
    assert_eq!(
        sim.writes(second),
        ["alice2 joined!\nConnected to server!\n*** you are alice2 here: \"alice\" is taken"]
    );
    assert_eq!(sim.writes(first), ["alice2 joined!"]);
    // It still prefixes with the name it chose; the server strips that.
    sim.send(second, b"alice: hi");
    assert_eq!(sim.writes(first), ["alice2: hi"]);
    let third = sim.seed_client("ALICE");
    assert_eq!(sim.room.nick(third), Some("ALICE3"));
}

#[test]
fn seed_client_with_invalid_nick_gets_a_valid_one() {
    let mut sim = Sim::new();
    let id = sim.seed_client("*** Neural Net");
    assert_eq!(
        sim.writes(id),
        ["Neural_Net joined!\nConnected to server!\n*** you are Neural_Net here: \"*** Neural Net\" is not a valid nickname"]
    );
    sim.send(id, b"*** Neural Net: hi");
    assert_eq!(sim.writes(id), ["Neural_Net: hi"]);
}

// ----- line clients and mixed rooms --------------------------------------------

#[test]
fn line_clients_chat_with_echo_and_attribution() {
    let mut sim = Sim::new();
    let alice = sim.line_client("alice");
    let bob = sim.line_client("bob");
    assert_eq!(sim.recv(alice), "bob joined!\n");
    sim.send(alice, b"hi bob\r\n");
    sim.send(bob, b"hi alice\n");
    assert_eq!(sim.recv(alice), "alice: hi bob\nbob: hi alice\n");
    assert_eq!(sim.recv(bob), "alice: hi bob\nbob: hi alice\n");
    sim.hang_up(bob);
    assert_eq!(sim.recv(alice), "bob left!\n");
}

#[test]
fn mixed_room_converts_between_dialects() {
    let mut sim = Sim::new();
    let alice = sim.line_client("alice");
    let neural = sim.seed_client("Neural");
    assert_eq!(sim.recv(alice), "Neural joined!\n");
    assert_eq!(sim.writes(neural), ["Neural joined!\nConnected to server!"]);
    sim.send(neural, b"Neural: Hello");
    sim.send(alice, "¡hola!\n".as_bytes());
    assert_eq!(sim.recv(alice), "Neural: Hello\nalice: ¡hola!\n");
    assert_eq!(sim.writes(neural), ["Neural: Hello\nalice: ?hola!"]);
    // Impersonation does not work: attribution is the server's.
    sim.send(neural, b"Neural: alice: I owe you 100");
    assert_eq!(sim.recv(alice), "Neural: alice: I owe you 100\n");
}

#[test]
fn a_terminator_split_from_the_nickname_still_means_line_client() {
    let mut sim = Sim::new();
    let id = sim.connect();
    sim.send(id, b"ali");
    sim.tick(100);
    sim.send(id, b"ce\r\n");
    assert_eq!(sim.recv(id), "alice joined!\nConnected to server!\n");
    assert_eq!(sim.room.dialect(id), Dialect::Line);
}

#[test]
fn nickname_and_first_lines_in_one_read() {
    let mut sim = Sim::new();
    let id = sim.connect();
    sim.send(id, b"alice\nhello\nworld\n");
    assert_eq!(sim.recv(id), "alice joined!\nConnected to server!\nalice: hello\nalice: world\n");
}

// ----- nicknames --------------------------------------------------------------

#[test]
fn line_client_offering_a_taken_nick_is_asked_again() {
    let mut sim = Sim::new();
    let alice = sim.line_client("alice");
    let other = sim.connect();
    sim.send(other, b"ALICE\n");
    assert_eq!(sim.recv(other), "*** nickname \"ALICE\" refused: it is taken\nNICK\n");
    assert_eq!(sim.recv(alice), "", "nobody else notices");
    sim.send(other, b"bob\n");
    assert_eq!(sim.recv(other), "bob joined!\nConnected to server!\n");
}

#[test]
fn line_client_offering_an_invalid_nick_is_told_why() {
    let mut sim = Sim::new();
    let id = sim.connect();
    let cases: [(&[u8], &str); 5] = [
        (b"\n", "*** nickname \"\" refused: it is empty\nNICK\n"),
        (b"a b\n", "*** nickname \"a b\" refused: it has a space, ':' or a control character\nNICK\n"),
        (b"a:b\n", "*** nickname \"a:b\" refused: it has a space, ':' or a control character\nNICK\n"),
        (b"*star\n", "*** nickname \"*star\" refused: it starts with '/', '*', '!' or '#'\nNICK\n"),
        (
            b"abcdefghijabcdefghijabcdefghijabc\n",
            "*** nickname \"abcdefghijabcdefghijabcdefghijabc\" refused: it is longer than 32 bytes\nNICK\n",
        ),
    ];
    for (offer, answer) in cases {
        sim.tick(1000);
        sim.send(id, offer);
        assert_eq!(sim.recv(id), answer);
    }
    sim.send(id, b"abcdefghijabcdefghijabcdefghijab\n");
    assert_eq!(sim.room.nick(id), Some("abcdefghijabcdefghijabcdefghijab"));
}

#[test]
fn nick_is_cleaned_before_it_is_checked() {
    let mut sim = Sim::new();
    let id = sim.connect();
    sim.send(id, "\u{1b}[31mal\u{202e}ice\u{7}\n".as_bytes());
    assert_eq!(sim.room.nick(id), Some("alice"));
}

// ----- commands ---------------------------------------------------------------

#[test]
fn nick_command_renames_and_refuses_taken_names() {
    let mut sim = Sim::new();
    let alice = sim.line_client("alice");
    let bob = sim.line_client("bob");
    sim.recv(alice);
    sim.send(alice, b"/nick carol\n");
    assert_eq!(sim.recv(bob), "*** alice is now known as carol\n");
    assert_eq!(sim.recv(alice), "*** alice is now known as carol\n");
    sim.send(alice, b"/nick BOB\n");
    assert_eq!(sim.recv(alice), "*** nickname \"BOB\" refused: it is taken\n");
    sim.send(alice, b"/nick\n");
    assert_eq!(sim.recv(alice), "*** usage: /nick NEW\n");
    sim.send(alice, b"hi\n");
    assert_eq!(sim.recv(bob), "carol: hi\n");
}

#[test]
fn who_lists_registered_clients_only() {
    let mut sim = Sim::new();
    let alice = sim.line_client("alice");
    let _bob = sim.line_client("bob");
    let _greeting = sim.connect();
    sim.recv(alice);
    sim.send(alice, b"/who\n");
    assert_eq!(sim.recv(alice), "*** 2 in the room: alice bob\n");
}

#[test]
fn who_reply_stays_within_the_line_limit() {
    let storage: &'static mut Storage<100, 512, 65536> = Box::leak(Box::new(Storage::new()));
    let mut sim = Sim::in_room(storage.room(Config { history: 0, ..Config::default() }));
    let ids: Vec<_> = (0..100).map(|i| sim.line_client(&format!("somebody_with_a_long_name_{i:03}"))).collect();
    sim.recv(ids[0]);
    sim.send(ids[0], b"/who\n");
    let reply = sim.recv(ids[0]);
    assert!(reply.len() <= MAX_LINE + 1, "{}", reply.len());
    assert!(reply.starts_with("*** 100 in the room: somebody_with_a_long_name_000 "));
    assert!(reply.ends_with(" more\n"), "{reply}");
}

#[test]
fn me_and_msg() {
    let mut sim = Sim::new();
    let alice = sim.line_client("alice");
    let bob = sim.line_client("bob");
    let carol = sim.line_client("carol");
    sim.recv(alice);
    sim.recv(bob);
    sim.send(alice, b"/me waves\n");
    assert_eq!(sim.recv(carol), "* alice waves\n");
    sim.send(alice, b"/msg BOB psst: a secret\n");
    assert_eq!(sim.recv(bob), "* alice waves\n*alice* psst: a secret\n");
    assert_eq!(sim.recv(alice), "* alice waves\n-> *bob* psst: a secret\n");
    assert_eq!(sim.recv(carol), "", "a private message stays private");
    sim.send(alice, b"/msg dave hi\n/msg bob\n/me\n");
    assert_eq!(sim.recv(alice), "*** no such nickname: dave\n*** usage: /msg NICK TEXT\n*** usage: /me ACTION\n");
}

#[test]
fn quit_with_and_without_reason() {
    let mut sim = Sim::new();
    let alice = sim.line_client("alice");
    let bob = sim.line_client("bob");
    let carol = sim.line_client("carol");
    sim.recv(alice);
    sim.recv(bob);
    sim.send(bob, b"/quit gone fishing\nthis is never said\n");
    assert_eq!(sim.recv(bob), "bob left! (gone fishing)\n");
    assert_eq!(sim.close(bob), Some(Reason::Quit));
    sim.send(carol, b"/QUIT\n");
    assert_eq!(sim.recv(alice), "bob left! (gone fishing)\ncarol left!\n");
    assert_eq!(sim.close(carol), Some(Reason::Quit));
    assert_eq!(sim.room.len(), 1);
}

#[test]
fn help_unknown_commands_and_escaped_slash() {
    let mut sim = Sim::new();
    let alice = sim.line_client("alice");
    sim.send(alice, b"/help\n");
    let help = sim.recv(alice);
    assert_eq!(lines(&help).len(), 8);
    assert!(lines(&help).iter().all(|l| l.starts_with("*** ")));
    for command in ["/nick", "/who", "/me", "/msg", "/quit", "/help"] {
        assert!(help.contains(command), "{command} missing from /help");
    }
    sim.send(alice, b"/dance now\n");
    assert_eq!(sim.recv(alice), "*** unknown command /dance, /help lists them\n");
    sim.send(alice, b"//dance is a command\n");
    assert_eq!(sim.recv(alice), "alice: /dance is a command\n");
}

#[test]
fn no_notice_parses_as_a_chat_line() {
    let mut sim = Sim::new();
    let watcher = sim.line_client("watcher");
    let seed = sim.seed_client("seedy");
    let alice = sim.connect();
    // Everything that makes the server speak, short of chatting.
    sim.send(alice, b"a: b\n*x\nwatcher\nalice\n");
    for command in [
        "/help",
        "/who",
        "/me waves: hello",
        "/msg watcher x: y",
        "/msg nobody: x",
        "/msg",
        "/nick a:b",
        "/nick watcher",
        "/nick bob",
        "/unknown: x",
        "/me",
    ] {
        sim.tick(1000);
        sim.send(alice, format!("{command}\n").as_bytes());
    }
    sim.send(alice, format!("{}\n", "x".repeat(600)).as_bytes());
    sim.tick(1000);
    sim.send(seed, b"seedy: /who");
    sim.tick(60_000);
    let late = sim.connect();
    sim.tick(60_000);
    let mut seen = sim.recv(watcher) + &sim.recv(alice) + &sim.writes(seed).join("\n") + &sim.recv(late);
    sim.room.shutdown(sim.now);
    sim.step();
    seen += &sim.recv(watcher);
    let heard: Vec<_> = lines(&seen).into_iter().filter(|l| parses_as_chat(l)).collect();
    assert_eq!(heard, Vec::<&str>::new());
    for kind in [
        "refused",
        "NICK",
        "*** commands:",
        "*** 3 in the room",
        "* alice waves: hello",
        "*alice* x: y",
        "-> *watcher* x: y",
        "no such nickname",
        "usage",
        "is now known as",
        "unknown command",
        "too long",
        "no nickname after",
        "shutting down",
    ] {
        assert!(seen.contains(kind), "the session produced no {kind:?} line");
    }
}

// ----- limits -----------------------------------------------------------------

#[test]
fn overlong_line_gets_a_notice_and_the_connection_stays() {
    let mut sim = Sim::unthrottled();
    let alice = sim.line_client("alice");
    let max = "m".repeat(MAX_LINE);
    sim.send(alice, format!("{max}\n").as_bytes());
    assert_eq!(sim.recv(alice), format!("alice: {max}\n"));
    sim.send(alice, format!("{max}x\nafter\n").as_bytes());
    assert_eq!(sim.recv(alice), "*** line too long (over 512 bytes), not sent\nalice: after\n");
    // A megabyte without a newline, in pieces: one notice, then back to normal.
    for _ in 0..1024 {
        sim.send(alice, &[b'z'; 1024]);
    }
    sim.send(alice, b"zzz\nfine\n");
    assert_eq!(sim.recv(alice), "*** line too long (over 512 bytes), not sent\nalice: fine\n");
}

#[test]
fn registration_timeout_closes_silent_connections() {
    let mut sim = Sim::new();
    let alice = sim.line_client("alice");
    let silent = sim.connect();
    sim.tick(29_999);
    assert_eq!(sim.close(silent), None);
    sim.tick(1);
    assert_eq!(sim.recv(silent), "*** no nickname after 30 s, closing\n");
    assert_eq!(sim.close(silent), Some(Reason::RegistrationTimeout));
    assert_eq!(sim.recv(alice), "", "the room does not notice");
    assert!(sim.room.accept(sim.now, None).is_ok(), "the slot is free again");
}

#[test]
fn poll_timeout_reports_the_next_deadline() {
    let mut sim = Sim::new();
    assert_eq!(sim.room.poll_timeout(), None);
    let id = sim.connect();
    assert_eq!(sim.room.poll_timeout(), Some(Instant::from_millis(30_000)));
    sim.tick(1000);
    sim.send(id, b"Neural");
    assert_eq!(sim.room.poll_timeout(), Some(Instant::from_millis(1250)));
}

#[test]
fn a_quiet_client_with_an_empty_bucket_sets_no_deadline() {
    let mut sim = Sim::new();
    let alice = sim.line_client("alice");
    sim.send(alice, b"1\n2\n3\n4\n5\n");
    sim.recv(alice);
    assert_eq!(sim.room.poll_timeout(), None, "nothing is waiting for a token");
    assert_eq!(sim.offer(alice, b"6\n"), 0, "no token: left in the socket");
    assert_eq!(sim.room.poll_timeout(), Some(Instant::from_millis(500)));
    sim.tick(500);
    assert_eq!(sim.recv(alice), format!("{}alice: 6\n", str::from_utf8(SLOW_DOWN).unwrap()));
    assert_eq!(sim.room.poll_timeout(), None);
}

#[test]
fn flooder_is_throttled_not_dropped() {
    let mut sim = Sim::new();
    let alice = sim.line_client("alice");
    let flood = sim.line_client("flood");
    sim.recv(alice);
    let all: String = (0..12).map(|i| format!("line {i}\n")).collect();
    sim.send(flood, all.as_bytes());
    let mut heard = String::new();
    let mut rounds = 0;
    while heard.lines().count() < 12 {
        heard += &sim.recv(alice);
        sim.tick(100);
        rounds += 1;
        assert!(rounds < 100, "flood never drained");
    }
    let expected: String = (0..12).map(|i| format!("flood: line {i}\n")).collect();
    assert_eq!(heard, expected, "every line arrives, in order");
    // Burst 5, then 2 lines/s: the last of 12 needs 3.5 s.
    assert!((35..=37).contains(&rounds), "took {rounds} rounds of 100 ms");
    // The flooder is told once why its lines are slow, and sees them all.
    let told = sim.recv(flood);
    assert_eq!(told.matches("*** slow down").count(), 1, "{told}");
    assert_eq!(told.replace(str::from_utf8(SLOW_DOWN).unwrap(), ""), expected);
}

#[test]
fn a_full_room_refuses_politely() {
    let mut sim = Sim::new();
    let ids: Vec<_> = (0..8).map(|i| sim.line_client(&format!("u{i}"))).collect();
    assert_eq!(sim.room.accept(sim.now, None), Err(Refused::Full));
    assert_eq!(ROOM_FULL, b"*** the room is full, try again later\n");
    assert!(ids.iter().skip(1).all(|&id| sim.recv(id).lines().all(|l| l.ends_with("joined!"))));
}

#[test]
fn slow_reader_is_disconnected_with_reason_and_nobody_else_misses_a_line() {
    let mut sim = Sim::unthrottled();
    let slow = sim.line_client("slow");
    let alice = sim.line_client("alice");
    let bob = sim.line_client("bob");
    let mut alice_heard = String::new();
    let mut said = String::new();
    // About 40 bytes a line: the 4 KiB log wraps after ~100 lines.
    for i in 0..200 {
        let line = format!("line number {i:04} from bob\n");
        sim.send(bob, line.as_bytes());
        said += &format!("bob: {line}");
        alice_heard += &sim.recv(alice);
        sim.recv(bob);
    }
    assert_eq!(
        sim.recv(slow),
        "*** disconnected: you read more slowly than the room talks and missed lines\n",
        "dropped: only the farewell is left"
    );
    assert_eq!(sim.closed(slow), Some(Reason::TooSlow));
    let expected_alice = format!("bob joined!\n{said}");
    let (before, after) = alice_heard.split_once("slow left!\n").expect("room saw slow leave");
    assert_eq!(format!("{before}{after}"), expected_alice);
}

#[test]
fn slow_reader_gets_the_reason_as_its_last_line() {
    let mut sim = Sim::unthrottled();
    let slow = sim.line_client("slow");
    let bob = sim.line_client("bob");
    // `slow` reads the first bytes of a line, then stops.
    sim.send(bob, b"first\n");
    assert_eq!(sim.read_some(slow, 5), b"bob j");
    for _ in 0..200 {
        sim.send(bob, b"filling the log with forty bytes .....\n");
        sim.recv(bob);
    }
    assert_eq!(sim.recv(slow), "\n*** disconnected: you read more slowly than the room talks and missed lines\n");
    assert_eq!(sim.closed(slow), Some(Reason::TooSlow));
}

#[test]
fn silent_unregistered_connections_do_not_block_the_log() {
    let mut sim = Sim::unthrottled();
    let lurkers: Vec<_> = (0..4).map(|_| sim.connect()).collect();
    let alice = sim.line_client("alice");
    for i in 0..300 {
        sim.send(alice, format!("line {i:04} to wrap the log around\n").as_bytes());
        sim.recv(alice);
    }
    for id in lurkers {
        assert_eq!(sim.close(id), None, "still waiting for a nickname");
    }
}

#[test]
fn shutdown_tells_everyone_and_closes() {
    let mut sim = Sim::new();
    let alice = sim.line_client("alice");
    let seed = sim.seed_client("Neural");
    let greeting = sim.connect();
    sim.recv(alice);
    sim.writes(seed);
    sim.room.shutdown(sim.now);
    sim.step();
    assert_eq!(sim.recv(alice), "*** the server is shutting down\n");
    assert_eq!(sim.writes(seed), ["*** the server is shutting down"]);
    assert_eq!(sim.recv(greeting), "*** the server is shutting down\n");
    for id in [alice, seed, greeting] {
        assert_eq!(sim.close(id), Some(Reason::Shutdown));
    }
    assert!(sim.room.is_empty());
}

#[test]
fn leaving_client_is_closed_at_the_drain_deadline() {
    let mut sim = Sim::new();
    let alice = sim.line_client("alice");
    sim.send(alice, b"/quit\n");
    // It never reads its `left!` line.
    sim.tick(1999);
    assert_eq!(sim.closed(alice), None);
    sim.tick(1);
    assert_eq!(sim.closed(alice), Some(Reason::Quit));
}

// ----- cleaning ---------------------------------------------------------------

#[test]
fn text_is_cleaned_before_broadcast() {
    let mut sim = Sim::new();
    let alice = sim.line_client("alice");
    let bob = sim.line_client("bob");
    sim.recv(bob);
    let cases: [(&[u8], &str); 5] = [
        (b"\x1b]52;c;cm0gLXJmIH4=\x07copy me\n", "alice: copy me\n"),
        (b"\x1b[2J\x1b[31mred\x1b[0m \x1b]0;title\x1b\\x\n", "alice: red x\n"),
        ("abc\u{202e}fed\u{2066}\n".as_bytes(), "alice: abcfed\n"),
        (b"bell\x07 nul\x00 tab\tok\n", "alice: bell nul tab\tok\n"),
        (b"bad \xff\xfe utf8\n", "alice: bad \u{fffd}\u{fffd} utf8\n"),
    ];
    for (said, heard) in cases {
        sim.tick(1000);
        sim.send(alice, said);
        assert_eq!(sim.recv(bob), heard);
    }
    // A bare \r inside a line never reaches anyone: no overwriting.
    sim.tick(1000);
    sim.send(alice, b"I owe you 100\rbob: I owe you 0\r\n");
    assert_eq!(sim.recv(bob), "alice: I owe you 100bob: I owe you 0\n");
}

#[test]
fn replacement_characters_cannot_stretch_a_line_past_512_bytes() {
    let mut sim = Sim::new();
    let alice = sim.line_client("alice");
    sim.send(alice, &[&[0xff; 400][..], b"\n"].concat());
    let expected = format!("alice: {}\n", "\u{fffd}".repeat(170));
    assert_eq!(sim.recv(alice), expected);
}

// ----- memory -----------------------------------------------------------------

#[test]
fn board_room_fits_16_kib() {
    let storage = core::mem::size_of::<Board>();
    let room = core::mem::size_of::<Room<'static>>();
    std::println!(
        "8 clients, 4 KiB log: {} B storage ({} B a client, {} B the log index) + {} B room = {} B",
        storage,
        core::mem::size_of::<ClientStorage>(),
        128 * core::mem::size_of::<LineStorage>(),
        room,
        storage + room
    );
    assert!(storage + room <= 16 * 1024);
}

// ----- what the fuzzer found ------------------------------------------------------

// Bugs the `room` fuzz target (`fuzz/`) found, each reproduced here and kept
// as a regression test.

/// A line ending exactly at the end of the byte ring looked contiguous with
/// the next line, stored at offset 0, and the run sliced past the ring: any
/// client choosing its line lengths could crash the server.
#[test]
fn a_run_of_lines_across_the_exact_end_of_the_log_does_not_panic() {
    let mut sim = Sim::unthrottled();
    // `alice joined!\n` + `Connected to server!\n`: 35 bytes of the log.
    let alice = sim.line_client("alice");
    // 7 lines of 520 bytes and one of 421: 35 + 3640 + 421 = 4096, the log
    // full to its last byte; the next line goes to offset 0.
    for _ in 0..7 {
        sim.send(alice, format!("{}\n", "x".repeat(512)).as_bytes());
    }
    sim.send(alice, format!("{}\n", "y".repeat(413)).as_bytes());
    sim.send(alice, b"z\n");
    assert!(sim.recv(alice).ends_with("alice: z\n"));
}

/// A throttled client with an empty bucket and the start of a line waiting
/// left `poll_timeout` in the past: the frontend's loop spun.
#[test]
fn a_partial_line_behind_an_empty_bucket_does_not_make_the_frontend_spin() {
    let mut sim = Sim::throttled(1, 100);
    let alice = sim.line_client("alice");
    // A line, which takes the only token, and the start of the next one.
    sim.send(alice, b"hi\ntyping");
    sim.recv(alice);
    // Nothing waits for the token: only more input can end the line.
    assert_eq!(sim.room.poll_timeout(), None);
    sim.tick(100);
    assert!(!sim.room.needs_pump(alice, sim.now));
    // The end of the line and another, with the token back: one goes out.
    sim.send(alice, b" done\nnext\n");
    assert_eq!(sim.recv(alice), format!("alice: typing done\n{}", str::from_utf8(SLOW_DOWN).unwrap()));
    assert_eq!(sim.room.poll_timeout(), Some(Instant::from_millis(200)));
    sim.tick(100);
    assert_eq!(sim.recv(alice), "alice: next\n");
    assert_eq!(sim.room.poll_timeout(), None);
}

/// Without flood control, a client with the start of a line waiting made
/// `poll_timeout` 0 ms until its line ended.
#[test]
fn an_unthrottled_client_with_a_partial_line_does_not_make_the_frontend_spin() {
    let mut sim = Sim::unthrottled();
    let alice = sim.line_client("alice");
    sim.send(alice, b"typing");
    sim.tick(1000);
    assert!(!sim.room.needs_pump(alice, sim.now));
    assert!(sim.room.poll_timeout().is_none_or(|at| at > sim.now), "the loop would spin");
}

/// Reads `id`'s output `size` bytes at a time, as a nearly full socket
/// would take it.
fn recv_in_pieces(sim: &mut Sim, id: ClientId, size: usize) -> Vec<u8> {
    sim.read_in_pieces(id, size).concat()
}

/// A short write ended the too-slow notice after its first piece: the slow
/// reader's socket is full by definition.
#[test]
fn the_too_slow_notice_survives_a_short_write() {
    let mut sim = Sim::unthrottled();
    let alice = sim.line_client("alice");
    let bob = sim.line_client("bob");
    sim.recv(alice);
    for _ in 0..3 {
        sim.send(bob, "x\n".repeat(100).as_bytes());
        sim.recv(bob);
    }
    let got = recv_in_pieces(&mut sim, alice, 20);
    assert_eq!(
        String::from_utf8_lossy(&got),
        "*** disconnected: you read more slowly than the room talks and missed lines\n"
    );
    assert_eq!(sim.closed(alice), Some(Reason::TooSlow));
}

/// A line cut by a short write inside a multi-byte character, then ended by
/// the too-slow notice, was not UTF-8.
#[test]
fn a_line_cut_by_the_too_slow_notice_is_still_utf8() {
    let mut sim = Sim::unthrottled();
    let alice = sim.line_client("alice");
    let bob = sim.line_client("bob");
    sim.recv(alice);
    sim.send(alice, "\u{e9}\u{e9}\u{e9}\n".as_bytes());
    sim.recv(alice);
    // Bob's socket takes `alice: ` and the first byte of the first `é`.
    let mut got = sim.read_some(bob, 8);
    assert_eq!(got.len(), 8);
    for _ in 0..3 {
        sim.send(alice, "x\n".repeat(100).as_bytes());
        sim.recv(alice);
    }
    got.extend(recv_in_pieces(&mut sim, bob, 4096));
    assert_eq!(
        String::from_utf8(got).expect("UTF-8"),
        "alice: \u{e9}\n*** disconnected: you read more slowly than the room talks and missed lines\n"
    );
}

// ----- chunking -----------------------------------------------------------------

mod chunking {
    use super::*;
    use proptest::prelude::*;

    /// Runs two line clients; `alice` sends `input` split at `cuts`. Returns
    /// what each client received.
    fn run(input: &[u8], cuts: &[usize]) -> (String, String) {
        let mut sim = Sim::unthrottled();
        let alice = sim.line_client("alice");
        let bob = sim.line_client("bob");
        let mut at = 0;
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        points.sort_unstable();
        points.push(input.len());
        for point in points {
            sim.send(alice, &input[at..point]);
            at = point;
        }
        (sim.recv(alice), sim.recv(bob))
    }

    fn line() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            "[ -~]{0,30}".prop_map(String::into_bytes),
            Just(b"/who".to_vec()),
            Just(b"/me waves".to_vec()),
            Just(b"\x1b]0;x\x07y\r".to_vec()),
            proptest::collection::vec(Just(b'x'), 500..600),
        ]
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_output(
            script in proptest::collection::vec(line(), 1..12),
            cuts in proptest::collection::vec(any::<usize>(), 0..20),
        ) {
            let mut input = Vec::new();
            for line in &script {
                // A line client never sends a bare \n inside a line.
                input.extend(line.iter().filter(|&&b| b != b'\n'));
                input.push(b'\n');
            }
            let whole = run(&input, &[]);
            prop_assert_eq!(run(&input, &cuts), whole);
        }
    }
}

// ----- driven by the room's own deadlines -------------------------------------------

#[test]
fn a_flood_drains_by_itself_on_the_room_s_deadlines() {
    let mut sim = Sim::new();
    let alice = sim.line_client("alice");
    let flood = sim.line_client("flood");
    sim.recv(alice);
    let all: String = (0..12).map(|i| format!("line {i}\n")).collect();
    sim.send(flood, all.as_bytes());
    sim.drive(60_000);
    let expected: String = (0..12).map(|i| format!("flood: line {i}\n")).collect();
    assert_eq!(sim.recv(alice), expected);
    // Burst 5, then one line per 500 ms: the 12th went out at 3.5 s, and
    // then the room had nothing left to wait for.
    assert_eq!(sim.now, Instant::from_millis(3500));
    assert_eq!(sim.room.poll_timeout(), None);
}

#[test]
fn lines_of_only_whitespace_are_ignored_like_empty_ones() {
    let mut sim = Sim::new();
    let alice = sim.line_client("alice");
    sim.send(alice, b"\n \t \n\r\n   \r\nstill here\n");
    assert_eq!(sim.recv(alice), "alice: still here\n");
}

#[test]
fn the_slow_down_notice_comes_once_per_episode() {
    let mut sim = Sim::throttled(2, 1000);
    let alice = sim.line_client("alice");
    let slow_down = str::from_utf8(SLOW_DOWN).unwrap();
    sim.send(alice, b"1\n2\n3\n4\n");
    assert_eq!(sim.recv(alice), format!("alice: 1\nalice: 2\n{slow_down}"));
    sim.drive(10_000);
    assert_eq!(sim.recv(alice), "alice: 3\nalice: 4\n", "held, not lost, and told once");
    // Quiet long enough for a full bucket: a new flood is a new episode.
    sim.tick(5_000);
    sim.send(alice, b"5\n6\n7\n");
    assert_eq!(sim.recv(alice), format!("alice: 5\nalice: 6\n{slow_down}"));
}

#[test]
fn the_smallest_log_holds_two_of_the_longest_lines() {
    let longest = format!("-> *{}* {}\n", "n".repeat(MAX_NICK), "t".repeat(MAX_LINE));
    assert_eq!(Room::MIN_LOG_BYTES, 2 * longest.len());
    assert_eq!(NickError::TooLong.to_string(), format!("it is longer than {MAX_NICK} bytes"));
}

// ----- history on join ----------------------------------------------------------

#[test]
fn a_line_client_joining_is_replayed_the_room_s_last_lines_between_two_notices() {
    let mut sim = Sim::with_history(3);
    let alice = sim.line_client("alice");
    let bob = sim.connect();
    sim.send(bob, b"bob\n");
    sim.send(alice, b"one\n/me waves\n/msg bob a secret\ntwo\n");
    sim.recv(bob);
    let carol = sim.connect();
    sim.send(carol, b"carol\n");
    assert_eq!(
        sim.recv(carol),
        "carol joined!\nConnected to server!\n\
         *** history: the last 3 lines of the room\n\
         alice: one\n* alice waves\nalice: two\n\
         *** end of history\n",
        "broadcast lines only: the private line to bob is not replayed"
    );
    assert_eq!(sim.recv(alice).lines().last(), Some("carol joined!"), "others see no replay");
}

#[test]
fn history_replays_what_there_is_and_nothing_in_an_empty_room() {
    let mut sim = Sim::with_history(20);
    let alice = sim.connect();
    sim.send(alice, b"alice\n");
    assert_eq!(sim.recv(alice), "alice joined!\nConnected to server!\n", "nothing to replay, no notices");
    sim.send(alice, b"hello\n");
    let bob = sim.connect();
    sim.send(bob, b"bob\n");
    assert_eq!(
        sim.recv(bob),
        "bob joined!\nConnected to server!\n*** history: the last 2 lines of the room\n\
         alice joined!\nalice: hello\n*** end of history\n"
    );
}

#[test]
fn seed_clients_get_no_history_and_history_0_turns_it_off() {
    let mut sim = Sim::with_history(20);
    let alice = sim.line_client_after_history("alice");
    sim.send(alice, b"hello\n");
    let neural = sim.seed_client("Neural");
    assert_eq!(sim.writes(neural), ["Neural joined!\nConnected to server!"]);

    let mut quiet = Sim::new();
    let alice = quiet.line_client("alice");
    quiet.send(alice, b"hello\n");
    let bob = quiet.connect();
    quiet.send(bob, b"bob\n");
    assert_eq!(quiet.recv(bob), "bob joined!\nConnected to server!\n");
}

#[test]
fn history_never_parses_as_chat_framing() {
    for notice in ["*** history: the last 3 lines of the room", "*** history: the last line of the room"] {
        assert!(!parses_as_chat(notice));
    }
    assert!(!parses_as_chat(str::from_utf8(crate::wire::HISTORY_END).unwrap().trim_end()));
}

// ----- passwords and operators ------------------------------------------------------

fn guarded(password: Option<&'static [u8]>, op: Option<&'static [u8]>) -> Sim {
    let mut sim = Sim::new();
    sim.room.set_password(password);
    sim.room.set_op_password(op);
    sim
}

fn ask() -> &'static str {
    str::from_utf8(crate::wire::PASSWORD_ASK).unwrap()
}

fn addr(text: &str) -> Option<core::net::IpAddr> {
    Some(text.parse().unwrap())
}

/// A line client that gives its nickname and the room's password.
fn enter(sim: &mut Sim, nick: &str, password: &str) -> ClientId {
    let id = sim.connect();
    sim.send(id, format!("{nick}\n").as_bytes());
    assert_eq!(sim.recv(id), ask());
    sim.send(id, format!("{password}\n").as_bytes());
    assert_eq!(sim.recv(id), format!("{nick} joined!\nConnected to server!\n"));
    id
}

#[test]
fn the_room_s_password_is_asked_after_the_nickname_and_never_repeated() {
    let mut sim = guarded(Some(b"open sesame"), None);
    let alice = enter(&mut sim, "alice", "open sesame");
    let bob = sim.connect();
    sim.send(bob, b"bob\n");
    assert_eq!(sim.recv(bob), ask());
    assert_eq!(sim.recv(alice), "", "nobody sees a newcomer before it is in");
    sim.send(bob, b"open says me\n");
    assert_eq!(sim.recv(bob), "*** wrong password, 2 tries left\n");
    sim.send(bob, b"open sesame\n");
    assert_eq!(sim.recv(bob), "bob joined!\nConnected to server!\n");
    assert_eq!(sim.recv(alice), "bob joined!\n", "the password went nowhere");
}

#[test]
fn three_wrong_passwords_close_the_connection() {
    let mut sim = guarded(Some(b"sesame"), None);
    let mallory = sim.connect();
    sim.send(mallory, b"mallory\n");
    sim.recv(mallory);
    sim.send(mallory, b"a\nb\nc\nsesame\n");
    assert_eq!(
        sim.recv(mallory),
        "*** wrong password, 2 tries left\n*** wrong password, 1 try left\n*** wrong password, closing\n"
    );
    assert_eq!(sim.closed(mallory), Some(Reason::WrongPassword));
    assert_eq!(sim.room.nick(mallory), None, "never in the room");
}

#[test]
fn the_tutorial_s_client_cannot_send_a_password_and_is_told_so() {
    let mut sim = guarded(Some(b"sesame"), None);
    let neural = sim.seed_client("Neural");
    assert_eq!(sim.writes(neural), ["*** this room has a password, which this client cannot send; closing"]);
    assert_eq!(sim.close(neural), Some(Reason::NoPassword));
}

#[test]
fn a_nickname_taken_while_its_owner_typed_the_password_is_asked_again() {
    let mut sim = guarded(Some(b"pw"), None);
    let first = sim.connect();
    sim.send(first, b"alice\n");
    sim.recv(first);
    enter(&mut sim, "alice", "pw");
    sim.send(first, b"pw\n");
    assert_eq!(sim.recv(first), "*** nickname \"alice\" refused: it is taken\nNICK\n");
}

#[test]
fn op_makes_an_operator_who_can_kick_and_who_marks_them() {
    let mut sim = guarded(None, Some(b"root"));
    let alice = sim.line_client("alice");
    let bob = sim.line_client("bob");
    sim.recv(alice);
    sim.send(alice, b"/kick bob\n");
    assert_eq!(sim.recv(alice), "*** /kick is for operators\n");
    sim.send(bob, b"/op guess\n/op root\n/who\n");
    assert_eq!(
        sim.recv(bob),
        "*** wrong operator password, 2 tries left\n*** you are an operator now\n*** 2 in the room: alice @bob\n"
    );
    sim.send(bob, b"/kick alice flooding\n");
    assert_eq!(sim.recv(bob), "alice left! (kicked by bob: flooding)\n");
    assert_eq!(sim.recv(alice), "alice left! (kicked by bob: flooding)\n", "it is told why, too");
    assert_eq!(sim.closed(alice), Some(Reason::Kicked));
}

#[test]
fn op_tries_are_limited() {
    let mut sim = guarded(None, Some(b"root"));
    let eve = sim.line_client("eve");
    sim.send(eve, b"/op a\n/op b\n/op c\n/op root\n");
    assert_eq!(
        sim.recv(eve),
        "*** wrong operator password, 2 tries left\n*** wrong operator password, 1 try left\n\
         *** wrong operator password, 0 tries left\n*** no more /op tries on this connection\n"
    );
}

#[test]
fn a_ban_refuses_the_address_until_an_unban() {
    let mut sim = guarded(None, Some(b"root"));
    let op = sim.line_client("op");
    let troll = sim.connect_from(addr("127.0.0.9"));
    sim.send(troll, b"troll\n");
    sim.recv(troll);
    sim.send(op, b"/op root\n/ban troll\n");
    assert_eq!(
        sim.recv(op),
        "troll joined!\n*** you are an operator now\n*** banned 127.0.0.9\ntroll left! (banned by op)\n"
    );
    assert_eq!(sim.close(troll), Some(Reason::Banned));
    assert_eq!(sim.room.accept(sim.now, addr("127.0.0.9")), Err(Refused::Banned));
    assert_eq!(Refused::Banned.notice(), b"*** you are banned from this room\n");
    assert!(sim.connect_from(addr("127.0.0.10")) != op, "other addresses still get in");
    sim.send(op, b"/unban 127.0.0.9\n/unban 127.0.0.9\n/unban nowhere\n");
    assert_eq!(
        sim.recv(op),
        "*** unbanned 127.0.0.9\n*** 127.0.0.9 is not banned\n*** usage: /unban ADDRESS (an IPv4 or IPv6 address)\n"
    );
    assert!(sim.room.accept(sim.now, addr("127.0.0.9")).is_ok());
}

#[test]
fn operator_commands_without_operators_or_rights_are_refused() {
    let mut sim = Sim::new();
    let alice = sim.line_client("alice");
    sim.send(alice, b"/op x\n/ban bob\n/unban 127.0.0.1\n");
    assert_eq!(
        sim.recv(alice),
        "*** this room has no operators\n*** /ban is for operators\n*** /unban is for operators\n"
    );
}

// ----- the web dialect ----------------------------------------------------------------

/// A browser's frame: masked, as browsers must.
fn masked(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mask = [0x11, 0x22, 0x33, 0x44];
    let mut frame = vec![(u8::from(fin) << 7) | opcode];
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len => {
            frame.push(0x80 | 126);
            frame.extend((len as u16).to_be_bytes());
        }
    }
    frame.extend(mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// The server's frames in `bytes`: (opcode, payload); the frames must be
/// whole and unmasked.
fn frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while let [first, second, rest @ ..] = bytes {
        assert_eq!(second & 0x80, 0, "a server frame is never masked");
        assert_eq!(first & 0x80, 0x80, "the server sends whole messages");
        let (len, rest) = match second & 0x7F {
            126 => (usize::from(u16::from_be_bytes([rest[0], rest[1]])), &rest[2..]),
            len => (usize::from(len), rest),
        };
        out.push((first & 0x0F, rest[..len].to_vec()));
        bytes = &rest[len..];
    }
    out
}

/// The text frames in `bytes`, as strings.
fn texts(bytes: &[u8]) -> Vec<String> {
    frames(bytes)
        .into_iter()
        .map(|(op, payload)| {
            assert_eq!(op, 1, "a text frame");
            String::from_utf8(payload).expect("UTF-8")
        })
        .collect()
}

const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
                       Origin: http://127.0.0.1:8080\r\n\r\n";

const SWITCHED: &str = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                        Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

impl Sim {
    /// A connection to the web listener; nothing is sent before its request.
    fn connect_web(&mut self) -> ClientId {
        let id = self.room.accept_web(self.now, None).expect("room has space");
        self.peers[id.index()] = Peer::default();
        self.pump(id);
        self.step();
        assert_eq!(self.recv_bytes(id), b"", "a browser speaks first");
        id
    }

    fn recv_bytes(&mut self, id: ClientId) -> Vec<u8> {
        self.read_in_pieces(id, usize::MAX).concat()
    }

    /// A browser that upgraded and is asked for its nickname.
    fn websocket(&mut self) -> ClientId {
        let id = self.connect_web();
        self.send(id, UPGRADE.as_bytes());
        let got = self.recv_bytes(id);
        let (head, rest) = got.split_at(SWITCHED.len().min(got.len()));
        assert_eq!(str::from_utf8(head).unwrap(), SWITCHED);
        assert_eq!(texts(rest), ["NICK"]);
        id
    }

    fn web_client(&mut self, nick: &str) -> ClientId {
        let id = self.websocket();
        self.send(id, &masked(1, true, nick.as_bytes()));
        assert_eq!(texts(&self.recv_bytes(id)), [format!("{nick} joined!"), "Connected to server!".to_string()]);
        id
    }
}

#[test]
fn get_slash_serves_the_gzipped_page_and_closes() {
    let mut sim = Sim::new();
    let browser = sim.connect_web();
    sim.send(browser, b"GET / HTTP/1.1\r\nHost: 192.168.69.1\r\nAccept: text/html\r\n\r\n");
    let got = sim.recv_bytes(browser);
    assert_eq!(got, [crate::web::PAGE_HEAD, crate::web::PAGE].concat());
    let head = str::from_utf8(crate::web::PAGE_HEAD).unwrap();
    for needed in [
        "HTTP/1.1 200 OK\r\n",
        "Content-Type: text/html; charset=utf-8\r\n",
        "Content-Encoding: gzip\r\n",
        &format!("Content-Length: {}\r\n", crate::web::PAGE.len()),
        "Content-Security-Policy: default-src 'none'; script-src ",
        "connect-src 'self'",
        "X-Content-Type-Options: nosniff\r\n",
        "Cache-Control: no-cache\r\n",
    ] {
        assert!(head.contains(needed), "{needed:?} not in\n{head}");
    }
    assert_eq!(crate::web::PAGE[..2], [0x1f, 0x8b], "gzip");
    assert_eq!(sim.closed(browser), Some(Reason::Answered));
}

#[test]
fn a_browser_chats_with_a_line_client_one_frame_per_line() {
    let mut sim = Sim::new();
    let bob = sim.line_client("bob");
    let alice = sim.web_client("alice");
    assert_eq!(sim.recv(bob), "alice joined!\n");
    sim.send(alice, &masked(1, true, "héllo ✓".as_bytes()));
    sim.send(bob, b"hi alice\n");
    assert_eq!(sim.recv(bob), "alice: héllo ✓\nbob: hi alice\n");
    assert_eq!(texts(&sim.recv_bytes(alice)), ["alice: héllo ✓", "bob: hi alice"]);
    sim.send(alice, &masked(1, true, b"/who"));
    assert_eq!(texts(&sim.recv_bytes(alice)), ["*** 2 in the room: bob alice"]);
}

#[test]
fn fragments_are_reassembled_within_the_line_limit() {
    let mut sim = Sim::new();
    let bob = sim.line_client("bob");
    let alice = sim.web_client("alice");
    sim.recv(bob);
    // A ping between two fragments is answered at once.
    let mut bytes = masked(1, false, b"hel");
    bytes.extend(masked(9, true, b"are you there"));
    bytes.extend(masked(0, false, b"l"));
    sim.send(alice, &bytes);
    assert_eq!(frames(&sim.recv_bytes(alice)), [(0xA, b"are you there".to_vec())], "the pong, same payload");
    sim.send(alice, &masked(0, true, b"o"));
    assert_eq!(sim.recv(bob), "alice: hello\n");
    // 300 + 213 bytes: one over the limit.
    let mut long = masked(1, false, &[b'x'; 300]);
    long.extend(masked(0, true, &[b'y'; 213]));
    // Refused at the second header: its payload is never read.
    assert!(sim.offer(alice, &long) < long.len());
    assert_eq!(
        frames(&sim.recv_bytes(alice)),
        [(1, b"alice: hello".to_vec()), (1, b"alice left!".to_vec()), (8, vec![0x03, 0xF1])],
        "1009"
    );
    assert_eq!(sim.recv(bob), "alice left!\n");
}

#[test]
fn each_broken_rule_closes_with_its_code_and_the_room_sees_the_browser_leave() {
    let cases: [(&str, Vec<u8>, u16); 5] = [
        ("binary", masked(2, true, b"\x00\x01"), 1003),
        ("not UTF-8", masked(1, true, b"bad \xff"), 1007),
        ("too long", masked(1, true, &[b'z'; 513]), 1009),
        ("unmasked", vec![0x81, 0x02, b'h', b'i'], 1002),
        ("a continuation of nothing", masked(0, true, b"x"), 1002),
    ];
    for (what, bytes, code) in cases {
        let mut sim = Sim::new();
        let bob = sim.line_client("bob");
        let alice = sim.web_client("alice");
        sim.recv(bob);
        // What follows a refused frame header stays unread.
        sim.offer(alice, &bytes);
        let got = frames(&sim.recv_bytes(alice));
        assert_eq!(got.last(), Some(&(8, code.to_be_bytes().to_vec())), "{what}");
        assert_eq!(sim.recv(bob), "alice left!\n", "{what}");
        assert_eq!(sim.closed(alice), Some(Reason::Protocol), "{what}");
    }
}

#[test]
fn a_browser_s_close_is_answered_with_its_code_and_it_leaves() {
    let mut sim = Sim::new();
    let bob = sim.line_client("bob");
    let alice = sim.web_client("alice");
    sim.recv(bob);
    sim.send(alice, &masked(8, true, &1001u16.to_be_bytes()));
    assert_eq!(frames(&sim.recv_bytes(alice)), [(1, b"alice left!".to_vec()), (8, vec![0x03, 0xE9])]);
    assert_eq!(sim.closed(alice), Some(Reason::PeerClosed));
    assert_eq!(sim.recv(bob), "alice left!\n");
}

#[test]
fn requests_other_than_the_page_and_the_socket_get_short_answers() {
    let cases: [(&str, &str); 5] = [
        ("GET /favicon.ico HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found\r\n"),
        ("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 405 Method Not Allowed\r\n"),
        ("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 426 Upgrade Required\r\n"),
        ("hello there\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"),
        (
            "GET /ws HTTP/1.1\r\nHost: chat.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Origin: http://evil.example\r\n\r\n",
            "HTTP/1.1 403 Forbidden\r\n",
        ),
    ];
    for (request, status) in cases {
        let mut sim = Sim::new();
        let browser = sim.connect_web();
        sim.send(browser, request.as_bytes());
        let got = String::from_utf8(sim.recv_bytes(browser)).unwrap();
        assert!(got.starts_with(status), "{request:?} got {got:?}");
        assert_eq!(sim.closed(browser), Some(Reason::Answered), "{request:?}");
    }
}

#[test]
fn an_oversized_or_slow_request_is_refused() {
    let mut sim = Sim::unthrottled();
    let browser = sim.connect_web();
    sim.send(browser, b"GET / HTTP/1.1\r\n");
    for _ in 0..20 {
        if sim.peers[browser.index()].closed.is_some() || sim.room.needs_pump(browser, sim.now) {
            break;
        }
        sim.send(browser, format!("X-Filler: {}\r\n", "f".repeat(480)).as_bytes());
    }
    let got = String::from_utf8(sim.recv_bytes(browser)).unwrap();
    assert!(got.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "{got}");

    let slow = sim.connect_web();
    sim.send(slow, b"GET / HT");
    sim.tick(30_000);
    let got = String::from_utf8(sim.recv_bytes(slow)).unwrap();
    assert!(got.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{got}");
    assert_eq!(sim.closed(slow), Some(Reason::Answered));
}

#[test]
fn a_browser_gets_history_and_a_too_slow_browser_is_told_in_a_frame() {
    let mut sim = Sim::with_all_of(Config { history: 2, throttle: None, ..Config::default() });
    let bob = sim.line_client("bob");
    sim.send(bob, b"one\ntwo\n");
    sim.recv(bob);
    let alice = sim.websocket();
    sim.send(alice, &masked(1, true, b"alice"));
    assert_eq!(
        texts(&sim.recv_bytes(alice)),
        [
            "alice joined!",
            "Connected to server!",
            "*** history: the last 2 lines of the room",
            "bob: one",
            "bob: two",
            "*** end of history"
        ]
    );
    // alice stops reading; bob fills the 4 KiB log.
    for i in 0..200 {
        sim.send(bob, format!("line {i:03} to fill the room's log\n").as_bytes());
        sim.recv(bob);
    }
    let got = frames(&sim.recv_bytes(alice));
    assert_eq!(got[got.len() - 2..], [(1, TOO_SLOW_TEXT.to_vec()), (8, vec![0x03, 0xF0])]);
    assert_eq!(sim.closed(alice), Some(Reason::TooSlow));
}

const TOO_SLOW_TEXT: &[u8] = b"*** disconnected: you read more slowly than the room talks and missed lines";

/// Found by the fuzzer: a client whose connection failed while its cursor
/// was on the log's oldest line was dropped as too slow by its own `left!`
/// line, and the room saw it leave twice.
#[test]
fn a_client_disconnected_while_it_is_the_slowest_reader_leaves_once() {
    for lines in 110..130 {
        let mut sim = Sim::unthrottled();
        let alice = sim.line_client("alice");
        let bob = sim.line_client("bob");
        sim.recv(alice);
        let mut heard = String::new();
        for _ in 0..lines {
            sim.send(bob, b"x\n");
            heard += &sim.recv(alice);
        }
        sim.room.disconnect(bob, Reason::Io(embedded_io::ErrorKind::ConnectionReset));
        sim.step();
        heard += &sim.recv(alice);
        assert_eq!(heard.matches("bob left!").count(), 1, "after {lines} lines");
    }
}

#[test]
fn a_tls_client_on_the_plain_port_is_told_and_never_joins() {
    let mut sim = Sim::new();
    let alice = sim.line_client("alice");
    let tls = sim.connect();
    // The start of a ClientHello, with a `\n` in it as there may be.
    sim.send(tls, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\x8f\x11");
    assert_eq!(sim.recv(tls), "*** this port speaks plain text, not TLS\n");
    assert_eq!(sim.closed(tls), Some(Reason::Protocol));
    sim.tick(1000);
    assert_eq!(sim.recv(alice), "", "nobody joined");
}
