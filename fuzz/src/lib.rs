//! The harness of the `room` fuzz target.
//!
//! An [`Input`] is a throttle setting and a sequence of [`Op`]s, decoded with
//! the `arbitrary` crate's [`Unstructured`] (one tag byte per operation,
//! little-endian fields, see [`Op::decode`]; [`Input::encode`] is its exact
//! inverse, which is how the seed corpus is written). [`run`] plays the
//! operations against a room of 4 slots whose log keeps 64 lines in 2 KiB
//! (`Storage<4, 64, 2048>`), with up to [`CONNS`] = 6 connections so that a
//! full room, refused connections and log overruns (slow readers) are all
//! reachable, and checks the invariants listed in `README.md` after every
//! operation. It is deterministic: the clock is simulated and nothing else
//! is read from outside, except two optional environment variables:
//!
//! - `CHAT_FUZZ_IGNORE=tag,tag`: do not fail on these invariant tags (to let
//!   a long run look past a known, reported bug);
//! - `CHAT_FUZZ_TRACE=1`: print every operation and every received line.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use chat_core::wire::{CONNECTED, GREETING, HISTORY_END};
use chat_core::{
    ClientId, Config, Dialect, Duration, Instant, Nick, Reason, Room, Status, Storage, Throttle, MAX_LINE, MAX_NICK,
};
use embedded_io::{ErrorKind, ErrorType, Read, ReadReady, Write, WriteReady};

pub mod member;
pub mod web;

/// Connections the harness can address; the room has 4 slots.
pub const CONNS: usize = 6;

/// The room's storage: 4 clients, a log of 64 lines in 2 KiB.
pub type FuzzStorage = Storage<4, 64, 2048>;

/// At most this many operations are decoded from one input.
pub const MAX_OPS: usize = 4096;

/// The longest line the server stores, without its `\n`:
/// `-> *{nick}* {text}` with a 32-byte nick and 512 bytes of text.
pub const MAX_OUT_LINE: usize = 3 + 1 + MAX_NICK + 2 + MAX_LINE;

/// A seed-dialect client never gets a larger write.
const SEED_WRITE: usize = 1024;

const TOO_SLOW: &str = "*** disconnected: you read more slowly than the room talks and missed lines";
const SHUTTING_DOWN: &str = "*** the server is shutting down";

/// Byte strings the `Say` operation glues together: nicknames, commands,
/// separators, hostile text. They make the interesting states (registered
/// clients, renames, private messages, seed prefixes, long lines) cheap to
/// reach; raw bytes come from `Send`.
pub const TOKENS: &[&[u8]] = &[
    b"alice\n",
    b"bob\n",
    b"Alice\n",
    b"alice",
    b"Neural",
    b"Neural: ",
    b"\n",
    b"\r\n",
    b"hello",
    b"hello\n",
    b"/nick ",
    b"/nick bob\n",
    b"/nick alice\n",
    b"/NICK Carol\n",
    b"/who\n",
    b"/me waves\n",
    b"/msg ",
    b"/msg alice hi\n",
    b"/msg bob hi\n",
    b"/quit\n",
    b"/quit bye: now\n",
    b"/help\n",
    b"//not a command\n",
    b"/bogus\n",
    b"/me\n",
    "\u{e9}".as_bytes(),
    "\u{202e}".as_bytes(),
    b"\x1b[31m",
    b"\x1b]52;c;ZXZpbA==\x07",
    b": ",
    b" ",
    b"\t",
    b"\xff",
    b"\xc3",
    "\u{65e5}\u{672c}".as_bytes(),
    b"*** fake notice\n",
    b"guest",
    b"carol\n",
    "\u{fc}\n".as_bytes(),
    b"\r",
    &[b'x'; 510],
    &[b'y'; 600],
    &[0xff; 200],
    b"alice: forged\n",
    b"bob: ",
    "\u{9b}31m".as_bytes(),
    b"a\0b",
    b"/msg Alice ",
    b"NeuralNeural: Hello",
    b"x\n",
];

/// How the room limits input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ThrottleMode {
    /// No flood control.
    Off,
    /// The protocol's default: burst 5, 2 lines/s.
    Default,
    /// Burst 1, one line per 100 ms.
    Tight,
}

impl ThrottleMode {
    /// The mode an input's first byte picks (modulo 3).
    pub fn from_byte(b: u8) -> ThrottleMode {
        match b % 3 {
            0 => ThrottleMode::Off,
            1 => ThrottleMode::Default,
            _ => ThrottleMode::Tight,
        }
    }

    /// The byte [`ThrottleMode::from_byte`] reads back as this mode.
    pub fn byte(self) -> u8 {
        self as u8
    }

    fn config(self) -> Config {
        let throttle = match self {
            ThrottleMode::Off => None,
            ThrottleMode::Default => Some(Throttle::default()),
            ThrottleMode::Tight => Some(Throttle { burst: 1, interval: Duration::from_millis(100) }),
        };
        Config { throttle, ..Config::default() }
    }
}

/// One step of a scenario. `conn` picks one of [`CONNS`] connections
/// (modulo); an operation on a connection that is not open does nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A new connection asks for a slot (`Room::accept`).
    Connect,
    /// The peer sends bytes; everything in its socket is offered as one read.
    Send { conn: u8, data: Vec<u8> },
    /// Like `Send`, with 1 to 4 entries of [`TOKENS`] glued together.
    Say { conn: u8, tokens: Vec<u8> },
    /// Offers at most `max` bytes of the socket as one read (what a
    /// throttled room did not take earlier).
    Feed { conn: u8, max: u16 },
    /// One `Room::transmit` into a buffer of `cap % 2049` bytes (a short
    /// write when smaller than what is pending).
    Transmit { conn: u8, cap: u16 },
    /// `transmit` into buffers of `1 + cap % 2048` bytes until nothing is
    /// pending.
    Drain { conn: u8, cap: u16 },
    /// The peer closed (`Room::peer_closed`); unread socket bytes are lost.
    PeerClose { conn: u8 },
    /// The peer shut down its writing side: a later pump reads the socket's
    /// bytes, then end of file.
    Fin { conn: u8 },
    /// The frontend gives up on the connection (`Room::disconnect`).
    Disconnect { conn: u8 },
    /// `Drain`, then `Room::poll_close`: what a frontend does.
    Close { conn: u8, cap: u16 },
    /// `Room::poll_close` alone.
    PollClose { conn: u8 },
    /// `Room::pump` over a simulated connection that accepts `write_cap`
    /// bytes, reads at most `1 + read_chunk % 1024` bytes at a time, and may
    /// fail (`fault % 8`: 4 write error, 5 read error, 6 write interrupted,
    /// 7 read interrupted, else none).
    Pump { conn: u8, write_cap: u16, read_chunk: u16, fault: u8 },
    /// Time passes, then `Room::handle_timeout`.
    Tick { ms: u16 },
    /// The clock jumps to `Room::poll_timeout` (if later), then
    /// `Room::handle_timeout`.
    Wake,
    /// One iteration of a frontend's loop after its events:
    /// `handle_timeout`, then `pump` every connection `needs_pump` names.
    Frontend { write_cap: u16 },
    /// `Room::shutdown`.
    Shutdown,
}

/// How many operation tags there are (`Op::encode` writes tags below it).
pub const OPS: u8 = 16;

fn byte(u: &mut Unstructured<'_>) -> u8 {
    u8::arbitrary(u).unwrap_or(0)
}

fn word(u: &mut Unstructured<'_>) -> u16 {
    u16::from_le_bytes([byte(u), byte(u)])
}

fn take(u: &mut Unstructured<'_>, n: usize) -> Vec<u8> {
    let n = n.min(u.len());
    u.bytes(n).map(<[u8]>::to_vec).unwrap_or_default()
}

impl Op {
    /// Decodes one operation; missing bytes read as zero.
    pub fn decode(u: &mut Unstructured<'_>) -> Op {
        let tag = byte(u);
        Op::decode_tag(tag, u)
    }

    /// Decodes the fields of the operation whose tag byte is `tag`.
    pub fn decode_tag(tag: u8, u: &mut Unstructured<'_>) -> Op {
        match tag % OPS {
            0 => Op::Connect,
            1 => {
                let conn = byte(u);
                let len = usize::from(byte(u));
                Op::Send { conn, data: take(u, len) }
            }
            2 => {
                let conn = byte(u);
                let n = byte(u) % 4 + 1;
                Op::Say { conn, tokens: (0..n).map(|_| byte(u)).collect() }
            }
            3 => Op::Feed { conn: byte(u), max: word(u) },
            4 => Op::Transmit { conn: byte(u), cap: word(u) },
            5 => Op::Drain { conn: byte(u), cap: word(u) },
            6 => Op::PeerClose { conn: byte(u) },
            7 => Op::Fin { conn: byte(u) },
            8 => Op::Disconnect { conn: byte(u) },
            9 => Op::Close { conn: byte(u), cap: word(u) },
            10 => Op::PollClose { conn: byte(u) },
            11 => Op::Pump { conn: byte(u), write_cap: word(u), read_chunk: word(u), fault: byte(u) },
            12 => Op::Tick { ms: word(u) },
            13 => Op::Wake,
            14 => Op::Frontend { write_cap: word(u) },
            _ => Op::Shutdown,
        }
    }

    /// The bytes [`Op::decode`] reads back as this operation. `Send` data
    /// must be at most 255 bytes, `Say` must have 1 to 4 tokens.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Op::Connect => out.push(0),
            Op::Send { conn, data } => {
                assert!(data.len() <= 255, "Send carries at most 255 bytes");
                out.extend([1, *conn, data.len() as u8]);
                out.extend(data);
            }
            Op::Say { conn, tokens } => {
                assert!((1..=4).contains(&tokens.len()), "Say has 1 to 4 tokens");
                out.extend([2, *conn, tokens.len() as u8 - 1]);
                out.extend(tokens);
            }
            Op::Feed { conn, max } => {
                out.extend([3, *conn]);
                out.extend(max.to_le_bytes());
            }
            Op::Transmit { conn, cap } => {
                out.extend([4, *conn]);
                out.extend(cap.to_le_bytes());
            }
            Op::Drain { conn, cap } => {
                out.extend([5, *conn]);
                out.extend(cap.to_le_bytes());
            }
            Op::PeerClose { conn } => out.extend([6, *conn]),
            Op::Fin { conn } => out.extend([7, *conn]),
            Op::Disconnect { conn } => out.extend([8, *conn]),
            Op::Close { conn, cap } => {
                out.extend([9, *conn]);
                out.extend(cap.to_le_bytes());
            }
            Op::PollClose { conn } => out.extend([10, *conn]),
            Op::Pump { conn, write_cap, read_chunk, fault } => {
                out.extend([11, *conn]);
                out.extend(write_cap.to_le_bytes());
                out.extend(read_chunk.to_le_bytes());
                out.push(*fault);
            }
            Op::Tick { ms } => {
                out.push(12);
                out.extend(ms.to_le_bytes());
            }
            Op::Wake => out.push(13),
            Op::Frontend { write_cap } => {
                out.push(14);
                out.extend(write_cap.to_le_bytes());
            }
            Op::Shutdown => out.push(15),
        }
    }
}

/// A whole scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    pub throttle: ThrottleMode,
    pub ops: Vec<Op>,
}

impl Input {
    /// Decodes a fuzzer input (never fails: missing bytes read as zero).
    pub fn decode(data: &[u8]) -> Input {
        let mut u = Unstructured::new(data);
        let throttle = ThrottleMode::from_byte(byte(&mut u));
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < MAX_OPS {
            ops.push(Op::decode(&mut u));
        }
        Input { throttle, ops }
    }

    /// The bytes [`Input::decode`] reads back as this input.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.throttle.byte()];
        for op in &self.ops {
            op.encode(&mut out);
        }
        out
    }
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let rest = take(u, u.len());
        Ok(Input::decode(&rest))
    }

    fn arbitrary_take_rest(u: Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Input::decode(u.take_rest()))
    }
}

// ----- failures ---------------------------------------------------------------

fn ignored(tag: &str) -> bool {
    static IGNORED: OnceLock<Vec<String>> = OnceLock::new();
    IGNORED
        .get_or_init(|| {
            std::env::var("CHAT_FUZZ_IGNORE")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .iter()
        .any(|t| t == tag)
}

fn tracing() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("CHAT_FUZZ_TRACE").is_some())
}

/// Fails the run: an invariant, tagged so that `CHAT_FUZZ_IGNORE` can
/// silence it, does not hold after step `step` (`usize::MAX`: the final
/// shutdown).
fn fail(step: usize, tag: &str, msg: impl Display) {
    if ignored(tag) {
        return;
    }
    if step == usize::MAX {
        panic!("invariant [{tag}] broken in the final shutdown: {msg}");
    }
    panic!("invariant [{tag}] broken at step {step}: {msg}");
}

// ----- what the harness knows -------------------------------------------------

fn valid_nick(text: &str) -> bool {
    Nick::parse(text).is_ok()
}

/// What a seed-dialect client is shown of a text: one `?` per non-ASCII
/// character.
fn as_seed_sees(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii() { c } else { '?' }).collect()
}

fn is_bidi(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// What a line tells about nicknames, if anything. Every server line that is
/// not a chat line has a space or a leading `*`/`-` before its first `: `
/// (PROTOCOL.md, "Nicknames"), and nicknames have neither, so these parses
/// cannot be fooled by chat text.
enum Said<'a> {
    Chat(&'a str, &'a str),
    Joined(&'a str),
    Left(&'a str),
    Renamed(&'a str, &'a str),
    Other,
}

fn parse_line(line: &str) -> Said<'_> {
    if let Some(rest) = line.strip_prefix("*** ") {
        if let Some((old, new)) = rest.split_once(" is now known as ") {
            if valid_nick(old) && valid_nick(new) {
                return Said::Renamed(old, new);
            }
        }
        return Said::Other;
    }
    if let Some((nick, text)) = line.split_once(": ") {
        if valid_nick(nick) {
            return Said::Chat(nick, text);
        }
    }
    if let Some(nick) = line.strip_suffix(" joined!") {
        if valid_nick(nick) {
            return Said::Joined(nick);
        }
    }
    if let Some((nick, rest)) = line.split_once(" left!") {
        if valid_nick(nick) && (rest.is_empty() || (rest.starts_with(" (") && rest.ends_with(')'))) {
            return Said::Left(nick);
        }
    }
    Said::Other
}

/// Whether a line a line-dialect client received may be private (to it
/// alone). The pairwise broadcast check compares only the other lines; it
/// also drops some broadcast lines (renames, `X joined!` for a nick
/// starting `-> `...), which keeps it sound: both sides drop the same ones.
fn maybe_private(line: &str) -> bool {
    (line.starts_with('*') && !line.starts_with("* ")) || line.starts_with("-> ") || line == CONNECTED || line == "NICK"
}

/// Nicknames known to have been registered, exactly and as a seed client
/// is shown them. Filled from `Room::nick` after every step and from the
/// `joined!` / `is now known as` lines clients receive (a nickname may be
/// registered and changed within one step).
#[derive(Default)]
struct Known {
    step: usize,
    ever: HashSet<String>,
    ever_seed: HashSet<String>,
    /// The `member` target: a hostile peer's events were shown here, which
    /// may name anyone in any order: who speaks is not checked.
    hostile: bool,
}

impl Known {
    fn add(&mut self, nick: &str) {
        if !self.ever.contains(nick) {
            self.ever.insert(nick.to_string());
            self.ever_seed.insert(as_seed_sees(nick));
        }
    }

    fn fail(&self, tag: &str, msg: impl Display) {
        if self.hostile && matches!(tag, "attribution" | "left-twice") {
            return;
        }
        fail(self.step, tag, msg)
    }
}

/// One connection, as its peer sees it.
struct Conn {
    /// Unique over the run (connection indices are reused).
    serial: u64,
    id: ClientId,
    /// Everything the room sent it.
    rx: Vec<u8>,
    /// `rx[..checked]` has been checked.
    checked: usize,
    /// Seed dialect: `rx[checked..]` may hold two writes glued together
    /// with no separator (a transmit filled its buffer exactly, so where the
    /// write ended is unknown).
    glued: bool,
    /// Bytes the peer sent that the room has not taken yet.
    socket: Vec<u8>,
    /// The peer sends nothing more.
    fin: bool,
    /// The room knows the peer closed.
    eof: bool,
    dialect: Dialect,
    /// Registered after the last step.
    registered: bool,
    /// Registered after some step.
    ever_registered: bool,
    /// Was registered, is no longer.
    gone_from_room: bool,
    /// Closed as too slow.
    too_slow: bool,
    /// Line dialect: the lines received that may be broadcast.
    broadcast: Vec<String>,
    /// Line dialect: nicknames this client saw leave (or be renamed away)
    /// and not come back: none of them may say anything.
    departed: HashSet<String>,
    /// Line dialect: between `*** history: …` and `*** end of history`,
    /// the replay of lines said before this client joined (after its own
    /// `joined!`): who left then says nothing about who speaks now, and a
    /// speaker may be unknown to the harness (registered and dropped as too
    /// slow within one operation, its lines seen live by no one), so those
    /// lines are checked for form only.
    in_history: bool,
}

impl Conn {
    /// The dialect is found out once: unknown, then line or seed for good.
    fn observe(&mut self, known: &Known, dialect: Dialect) {
        if self.dialect != Dialect::Unknown && dialect != self.dialect {
            known.fail("dialect", format!("dialect went from {:?} to {dialect:?}", self.dialect));
        }
        self.dialect = dialect;
    }

    /// Checks the greeting; whether it is all there.
    fn greeted(&mut self, known: &Known, at_close: bool) -> bool {
        if self.checked >= GREETING.len() {
            return true;
        }
        let n = self.rx.len().min(GREETING.len());
        if self.rx[..n] != GREETING[..n] {
            known.fail("greeting", format!("stream starts {:?}, not NICK", String::from_utf8_lossy(&self.rx[..n])));
        }
        if n < GREETING.len() {
            if !at_close {
                known.fail("greeting", "nothing pending but the greeting was not all sent");
            }
            return false;
        }
        self.checked = GREETING.len();
        true
    }

    /// Checks what arrived since the last check. Called when nothing is
    /// pending for a client still in the room (`at_close` false: the stream
    /// must end at a line end), and when the connection is closed
    /// (`at_close`: a last line may be cut, by the drain timeout or because
    /// the client was dropped while leaving).
    fn check_stream(&mut self, known: &mut Known, at_close: bool) {
        if !self.greeted(known, at_close) {
            return;
        }
        if self.dialect == Dialect::Seed {
            self.check_seed(known);
        } else {
            self.check_lines(known, at_close);
        }
        self.checked = self.rx.len();
        self.glued = false;
    }

    /// Line dialect (or not known yet, which is framed as lines): complete
    /// `\n`-terminated lines of UTF-8 without control characters but tab.
    fn check_lines(&mut self, known: &mut Known, at_close: bool) {
        let text = std::mem::take(&mut self.rx);
        let new = &text[self.checked..];
        let complete = new.iter().rposition(|&b| b == b'\n').map_or(0, |at| at + 1);
        if complete < new.len() && !at_close {
            known.fail(
                "framing",
                format!("nothing pending but the stream ends in a cut line: {:?}", String::from_utf8_lossy(new)),
            );
        }
        if complete > 0 {
            let lines: Vec<&[u8]> = new[..complete - 1].split(|&b| b == b'\n').collect();
            // A line right before the too-slow notice (whole, or itself cut
            // short at the end of the stream) may have been cut by it: a
            // short write, then the rest overwritten. Tagged apart.
            // When the notice itself was cut to its leading `\n` (a short
            // write, see `too-slow-notice`), the line it ended is the last.
            let tail = &new[complete..];
            let farewell = if !tail.is_empty() && TOO_SLOW.as_bytes().starts_with(tail) {
                lines.len().checked_sub(1)
            } else if lines.last() == Some(&TOO_SLOW.as_bytes()) {
                lines.len().checked_sub(2)
            } else if at_close && self.too_slow && tail.is_empty() {
                lines.len().checked_sub(1)
            } else {
                None
            };
            for (k, line) in lines.into_iter().enumerate() {
                self.check_line(known, line, true, Some(k) == farewell);
            }
        }
        if complete < new.len() {
            self.check_line(known, &new[complete..], false, false);
        }
        self.rx = text;
    }

    fn check_line(&mut self, known: &mut Known, bytes: &[u8], mut complete: bool, before_farewell: bool) {
        let line = match std::str::from_utf8(bytes) {
            Ok(line) => line,
            Err(e) if !complete && e.error_len().is_none() => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap(),
            Err(e) if before_farewell && e.error_len().is_none() => {
                known.fail(
                    "farewell-cut",
                    format!(
                        "the too-slow notice ends a line cut inside a character, not UTF-8: {:?}",
                        String::from_utf8_lossy(bytes)
                    ),
                );
                complete = false;
                std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap()
            }
            Err(e) => {
                return known.fail("utf8", format!("line is not UTF-8 ({e}): {:?}", String::from_utf8_lossy(bytes)));
            }
        };
        if tracing() {
            eprintln!("    conn #{} <- {line:?}{}", self.serial, if complete { "" } else { " (cut)" });
        }
        if complete && line.is_empty() {
            known.fail("empty-line", "an empty line");
        }
        if let Some(c) = line.chars().find(|&c| (c.is_control() && c != '\t') || is_bidi(c)) {
            known.fail("control", format!("character {c:?} in line {line:?}"));
        }
        if bytes.len() > MAX_OUT_LINE {
            known.fail("long-line", format!("a line of {} bytes (at most {MAX_OUT_LINE}): {line:?}", bytes.len()));
        }
        if complete && line.starts_with("*** history: ") {
            self.in_history = true;
        } else if complete && line.as_bytes() == HISTORY_END.trim_ascii_end() {
            self.in_history = false;
        }
        let history = self.in_history;
        match parse_line(line) {
            Said::Chat(nick, text) => {
                if !known.ever.contains(nick) && !history {
                    known.fail("attribution", format!("{line:?} is attributed to {nick:?}, never registered"));
                }
                if self.departed.contains(nick) && !history {
                    known.fail(
                        "attribution",
                        format!("{line:?} is attributed to {nick:?}, who left (or was renamed) before it"),
                    );
                }
                if complete && text.len() > MAX_LINE {
                    known.fail("long-text", format!("a chat text of {} bytes (at most {MAX_LINE})", text.len()));
                }
            }
            // A cut line says nothing reliable about nicknames, nor does
            // the history.
            _ if !complete || history => {}
            Said::Joined(nick) => {
                known.add(nick);
                self.departed.remove(nick);
            }
            Said::Renamed(old, new) => {
                known.add(old);
                known.add(new);
                self.departed.insert(old.to_string());
                self.departed.remove(new);
            }
            Said::Left(nick) => {
                if !self.departed.insert(nick.to_string()) {
                    known.fail("left-twice", format!("{nick:?} left twice with no join in between"));
                }
            }
            Said::Other => {}
        }
        if complete && !history && !maybe_private(line) {
            self.broadcast.push(line.to_string());
        }
    }

    /// Seed dialect: ASCII, no control characters but tab and the `\n`
    /// between the lines of one write, and no line attributed to a name
    /// that was never registered (as a seed client is shown it).
    ///
    /// Writes follow each other with no separator, so where one write's last
    /// line meets the next write's first, the two read as one piece. A chat
    /// check on such a piece stays sound: if the first line has a `: `, the
    /// prefix is its own; if not, it is a server line, which has a space or
    /// a leading `*` before any `: ` (so the prefix is no valid nickname).
    /// Nicknames announced in glued pieces are added loosely (every
    /// candidate), so they cannot cause a false alarm either.
    fn check_seed(&mut self, known: &mut Known) {
        let new = &self.rx[self.checked..];
        if let Some(&b) = new.iter().find(|&&b| !b.is_ascii() || (b.is_ascii_control() && b != b'\n' && b != b'\t')) {
            return known.fail(
                "seed-ascii",
                format!("byte {b:#04x} sent to a seed client: {:?}", String::from_utf8_lossy(new)),
            );
        }
        let text = std::str::from_utf8(new).unwrap();
        if tracing() {
            eprintln!("    conn #{} <- seed {text:?}{}", self.serial, if self.glued { " (glued)" } else { "" });
        }
        for piece in text.split('\n') {
            if self.glued {
                harvest_loosely(known, piece);
            } else {
                match parse_line(piece) {
                    Said::Joined(nick) => known.ever_seed.extend([nick.to_string()]),
                    Said::Renamed(old, new) => known.ever_seed.extend([old.to_string(), new.to_string()]),
                    _ => {}
                }
            }
        }
        for piece in text.split('\n') {
            if let Said::Chat(nick, _) = parse_line(piece) {
                if !known.ever_seed.contains(nick) {
                    known.fail(
                        "attribution",
                        format!("seed client got {piece:?}, attributed to {nick:?}, never registered"),
                    );
                }
            }
        }
    }

    /// Bytes the room sent. `offered`: the size of the transmit buffer, or
    /// for a pump, of the write the room attempted.
    fn received(&mut self, known: &mut Known, bytes: &[u8], offered: usize, pumped: bool, dialect: Dialect) {
        self.observe(known, dialect);
        if bytes.is_empty() {
            return;
        }
        if tracing() {
            let how = if pumped { "pump write" } else { "transmit" };
            eprintln!(
                "    conn #{} {how} {} of {offered} bytes: {:?}",
                self.serial,
                bytes.len(),
                String::from_utf8_lossy(bytes)
            );
        }
        let in_greeting = self.rx.len() < GREETING.len();
        self.rx.extend_from_slice(bytes);
        if dialect != Dialect::Seed || in_greeting {
            return;
        }
        if offered > SEED_WRITE && pumped {
            known.fail("seed-write", format!("a write of {offered} bytes to a seed client (at most {SEED_WRITE})"));
        }
        if bytes.len() > SEED_WRITE {
            known.fail("seed-write", format!("{} bytes in one write to a seed client", bytes.len()));
        }
        // Where a seed write ends is known when the room's write was taken
        // whole (pump) or the buffer was not filled (transmit).
        let ended = if pumped { bytes.len() == offered } else { bytes.len() < offered };
        if ended {
            self.check_stream(known, false);
        } else if !pumped {
            self.glued = true;
        }
    }
}

/// Adds every nickname a glued seed piece may announce: each valid suffix
/// before ` joined!` / ` is now known as `, each valid prefix after the
/// latter.
fn harvest_loosely(known: &mut Known, piece: &str) {
    fn add_suffixes(known: &mut Known, head: &str) {
        for start in 0..head.len() {
            if head.len() - start <= 32 && valid_nick(&head[start..]) {
                known.ever_seed.insert(head[start..].to_string());
            }
        }
    }
    for (at, _) in piece.match_indices(" joined!") {
        add_suffixes(known, &piece[..at]);
    }
    for (at, m) in piece.match_indices(" is now known as ") {
        add_suffixes(known, &piece[..at]);
        let tail = &piece[at + m.len()..];
        for end in 1..=tail.len().min(32) {
            if valid_nick(&tail[..end]) {
                known.ever_seed.insert(tail[..end].to_string());
            }
        }
    }
}

// ----- a simulated connection for `Room::pump` ----------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    WriteError,
    ReadError,
    WriteInterrupted,
    ReadInterrupted,
}

impl Fault {
    /// A `Pump` operation's fault byte: modulo 8, 4 to 7 are faults.
    fn from_byte(fault: u8) -> Fault {
        match fault % 8 {
            4 => Fault::WriteError,
            5 => Fault::ReadError,
            6 => Fault::WriteInterrupted,
            7 => Fault::ReadInterrupted,
            _ => Fault::None,
        }
    }
}

struct Wire<'c> {
    socket: &'c mut Vec<u8>,
    fin: bool,
    eof_read: bool,
    budget: usize,
    read_chunk: usize,
    fault: Fault,
    /// Each write: the bytes taken, and how many the room offered.
    writes: Vec<(Vec<u8>, usize)>,
}

impl ErrorType for Wire<'_> {
    type Error = ErrorKind;
}

impl Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        match self.fault {
            Fault::ReadError => return Err(ErrorKind::ConnectionReset),
            Fault::ReadInterrupted => return Err(ErrorKind::Interrupted),
            _ => {}
        }
        if self.socket.is_empty() {
            if self.fin {
                self.eof_read = true;
                return Ok(0);
            }
            // Not ready: `read_ready` said so.
            return Err(ErrorKind::Interrupted);
        }
        let n = buf.len().min(self.read_chunk).min(self.socket.len());
        buf[..n].copy_from_slice(&self.socket[..n]);
        self.socket.drain(..n);
        Ok(n)
    }
}

impl ReadReady for Wire<'_> {
    fn read_ready(&mut self) -> Result<bool, ErrorKind> {
        Ok(!self.socket.is_empty() || self.fin || matches!(self.fault, Fault::ReadError | Fault::ReadInterrupted))
    }
}

impl Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        match self.fault {
            Fault::WriteError => return Err(ErrorKind::BrokenPipe),
            Fault::WriteInterrupted => return Err(ErrorKind::Interrupted),
            _ => {}
        }
        let n = buf.len().min(self.budget);
        self.budget -= n;
        self.writes.push((buf[..n].to_vec(), buf.len()));
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

impl WriteReady for Wire<'_> {
    fn write_ready(&mut self) -> Result<bool, ErrorKind> {
        Ok(self.budget > 0 || matches!(self.fault, Fault::WriteError | Fault::WriteInterrupted))
    }
}

// ----- the harness ------------------------------------------------------------

struct Harness<'r> {
    room: Room<'r>,
    now: Instant,
    conns: Vec<Option<Conn>>,
    serials: u64,
    known: Known,
    /// For two line clients (by serial, smaller first): how many broadcast
    /// lines each had at the last step after which both were registered
    /// and had nothing pending.
    synced: HashMap<(u64, u64), (usize, usize)>,
    /// Slots held by web connections (the `web` target's; empty in `room`).
    web_ids: Vec<ClientId>,
}

/// Panics whose location or message contains one of these
/// (`CHAT_FUZZ_IGNORE=panic:TEXT`) end the run quietly instead of failing it.
fn ignored_panics() -> Vec<String> {
    std::env::var("CHAT_FUZZ_IGNORE")
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| s.trim().strip_prefix("panic:").map(str::to_string))
        .filter(|s| !s.is_empty())
        .collect()
}

fn panic_is_ignored(patterns: &[String], text: &str) -> bool {
    patterns.iter().any(|p| text.contains(p.as_str()))
}

/// Plays a scenario, checking the invariants after every step; panics on
/// the first one broken.
///
/// With `CHAT_FUZZ_IGNORE=panic:TEXT`, a panic (of the core or of the
/// harness) whose location or message contains TEXT ends the run without a
/// failure: it lets an exploration run look past a known, reported crash.
/// libFuzzer's panic hook aborts the process, so the hook is wrapped once
/// to pass such panics on to `catch_unwind`.
pub fn run(input: &Input) {
    guarded(|| play(input));
}

/// Plays a scenario of the `web` target (see [`web`]), as [`run`] does.
pub fn run_web(input: &web::WebInput) {
    guarded(|| web::play(input));
}

/// Plays a scenario of the `member` target (see [`member`]), as [`run`] does.
pub fn run_member(input: &member::MemberInput) {
    guarded(|| member::play(input));
}

fn guarded(play: impl FnOnce()) {
    static PATTERNS: OnceLock<Vec<String>> = OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| {
        let patterns = ignored_panics();
        if !patterns.is_empty() {
            let previous = std::panic::take_hook();
            let ours = patterns.clone();
            std::panic::set_hook(Box::new(move |info| {
                let text = format!("{info}");
                let ignore = panic_is_ignored(&ours, &text);
                IGNORED_PANIC.with(|flag| flag.set(ignore));
                if !ignore {
                    previous(info);
                }
            }));
        }
        patterns
    });
    if patterns.is_empty() {
        return play();
    }
    if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(play)) {
        if !IGNORED_PANIC.with(|flag| flag.replace(false)) {
            std::panic::resume_unwind(payload);
        }
    }
}

thread_local! {
    static IGNORED_PANIC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn play(input: &Input) {
    let mut storage = Box::new(FuzzStorage::new());
    let mut h = Harness::new(storage.room(input.throttle.config()));
    if tracing() {
        eprintln!("throttle {:?}", input.throttle);
    }
    for (step, op) in input.ops.iter().enumerate() {
        h.known.step = step;
        if tracing() {
            eprintln!("step {step} @{} ms: {op:?}", h.now.millis());
        }
        h.apply(op);
        h.check();
    }
    h.known.step = usize::MAX;
    h.teardown();
}

impl<'r> Harness<'r> {
    fn new(room: Room<'r>) -> Self {
        Harness {
            room,
            now: Instant::ZERO,
            conns: (0..CONNS).map(|_| None).collect(),
            serials: 0,
            known: Known::default(),
            synced: HashMap::new(),
            web_ids: Vec::new(),
        }
    }

    fn conn(&mut self, conn: u8) -> Option<usize> {
        let i = usize::from(conn) % CONNS;
        self.conns[i].is_some().then_some(i)
    }

    fn live(&self) -> usize {
        self.conns.iter().flatten().count() + self.web_ids.len()
    }

    /// Whether a connection the harness holds (line or web) has this slot.
    fn holds(&self, id: ClientId) -> bool {
        self.conns.iter().flatten().any(|c| c.id == id) || self.web_ids.contains(&id)
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Connect => self.connect(),
            Op::Send { conn, ref data } => {
                if let Some(i) = self.conn(conn) {
                    self.send(i, data);
                }
            }
            Op::Say { conn, ref tokens } => {
                if let Some(i) = self.conn(conn) {
                    let data: Vec<u8> =
                        tokens.iter().flat_map(|&t| TOKENS[usize::from(t) % TOKENS.len()].iter().copied()).collect();
                    self.send(i, &data);
                }
            }
            Op::Feed { conn, max } => {
                if let Some(i) = self.conn(conn) {
                    self.offer(i, usize::from(max));
                }
            }
            Op::Transmit { conn, cap } => {
                if let Some(i) = self.conn(conn) {
                    self.transmit(i, usize::from(cap) % 2049);
                }
            }
            Op::Drain { conn, cap } => {
                if let Some(i) = self.conn(conn) {
                    self.drain(i, 1 + usize::from(cap) % 2048);
                }
            }
            Op::PeerClose { conn } => {
                if let Some(i) = self.conn(conn) {
                    let c = self.conns[i].as_mut().unwrap();
                    if !c.eof {
                        c.eof = true;
                        c.fin = true;
                        c.socket.clear();
                        self.room.peer_closed(c.id, self.now);
                    }
                }
            }
            Op::Fin { conn } => {
                if let Some(i) = self.conn(conn) {
                    self.conns[i].as_mut().unwrap().fin = true;
                }
            }
            Op::Disconnect { conn } => {
                if let Some(i) = self.conn(conn) {
                    let id = self.conns[i].as_ref().unwrap().id;
                    self.room.disconnect(id, Reason::Io(ErrorKind::ConnectionReset));
                    self.close(i, None, false);
                }
            }
            Op::Close { conn, cap } => {
                if let Some(i) = self.conn(conn) {
                    self.drain(i, 1 + usize::from(cap) % 2048);
                    let id = self.conns[i].as_ref().unwrap().id;
                    if let Some(reason) = self.room.poll_close(id, self.now) {
                        self.close(i, Some(reason), true);
                    }
                }
            }
            Op::PollClose { conn } => {
                if let Some(i) = self.conn(conn) {
                    let id = self.conns[i].as_ref().unwrap().id;
                    if let Some(reason) = self.room.poll_close(id, self.now) {
                        self.close(i, Some(reason), false);
                    }
                }
            }
            Op::Pump { conn, write_cap, read_chunk, fault } => {
                if let Some(i) = self.conn(conn) {
                    self.pump(i, usize::from(write_cap), 1 + usize::from(read_chunk) % 1024, Fault::from_byte(fault));
                }
            }
            Op::Tick { ms } => {
                self.now = self.now + Duration::from_millis(u64::from(ms));
                self.room.handle_timeout(self.now);
            }
            Op::Wake => {
                if let Some(at) = self.room.poll_timeout() {
                    self.now = self.now.max(at);
                }
                self.room.handle_timeout(self.now);
            }
            Op::Frontend { write_cap } => self.frontend(usize::from(write_cap)),
            Op::Shutdown => self.room.shutdown(self.now),
        }
    }

    fn connect(&mut self) {
        let before = self.room.len();
        match self.room.accept(self.now, None) {
            Ok(id) => {
                if self.holds(id) {
                    self.known.fail("accept", format!("slot {} given out twice", id.index()));
                }
                if self.room.len() != before + 1 {
                    self.known.fail("len", "accept did not count the new connection");
                }
                let Some(i) = self.conns.iter().position(Option::is_none) else {
                    return self.known.fail("capacity", "more connections than the room has slots");
                };
                self.serials += 1;
                self.conns[i] = Some(Conn {
                    serial: self.serials,
                    id,
                    rx: Vec::new(),
                    checked: 0,
                    glued: false,
                    socket: Vec::new(),
                    fin: false,
                    eof: false,
                    dialect: Dialect::Unknown,
                    registered: false,
                    ever_registered: false,
                    gone_from_room: false,
                    too_slow: false,
                    broadcast: Vec::new(),
                    departed: HashSet::new(),
                    in_history: false,
                });
                if tracing() {
                    eprintln!("    conn #{} is slot {}", self.serials, id.index());
                }
            }
            Err(_) => {
                if self.live() != self.room.capacity() {
                    self.known.fail(
                        "room-full",
                        format!("refused with {} of {} slots taken", self.live(), self.room.capacity()),
                    );
                }
            }
        }
    }

    fn send(&mut self, i: usize, data: &[u8]) {
        let c = self.conns[i].as_mut().unwrap();
        if c.fin {
            return;
        }
        c.socket.extend_from_slice(data);
        self.offer(i, usize::MAX);
    }

    /// Hands the room at most `max` bytes of the socket as one read.
    fn offer(&mut self, i: usize, max: usize) {
        let c = self.conns[i].as_mut().unwrap();
        if c.eof {
            return;
        }
        let n = c.socket.len().min(max);
        let taken = self.room.receive(c.id, &c.socket[..n], self.now);
        if taken > n {
            self.known.fail("receive", format!("took {taken} of {n} bytes"));
        }
        c.socket.drain(..taken.min(n));
    }

    fn transmit(&mut self, i: usize, cap: usize) -> usize {
        let c = self.conns[i].as_mut().unwrap();
        let dialect = self.room.dialect(c.id);
        let mut buf = vec![0; cap];
        let n = self.room.transmit(c.id, &mut buf);
        if n > cap {
            self.known.fail("transmit", format!("{n} bytes into a buffer of {cap}"));
        }
        c.received(&mut self.known, &buf[..n.min(cap)], cap, false, dialect);
        n
    }

    fn drain(&mut self, i: usize, cap: usize) {
        let mut rounds = 0;
        while self.transmit(i, cap) > 0 {
            rounds += 1;
            if rounds > 100_000 {
                return self.known.fail("drain", "output never runs out");
            }
        }
    }

    fn pump(&mut self, i: usize, write_cap: usize, read_chunk: usize, fault: Fault) {
        let c = self.conns[i].as_mut().unwrap();
        let dialect = self.room.dialect(c.id);
        let mut wire = Wire {
            socket: &mut c.socket,
            fin: c.fin,
            eof_read: false,
            budget: write_cap,
            read_chunk,
            fault,
            writes: Vec::new(),
        };
        let status = self.room.pump(c.id, &mut wire, self.now);
        let (writes, eof_read) = (std::mem::take(&mut wire.writes), wire.eof_read);
        c.eof |= eof_read;
        for (bytes, offered) in writes {
            c.received(&mut self.known, &bytes, offered, true, dialect);
        }
        if let Status::Closed(reason) = status {
            self.close(i, Some(reason), false);
        }
    }

    /// What a frontend does after handling its events; then its next sleep
    /// must not be due already, or it would spin.
    fn frontend(&mut self, write_cap: usize) {
        self.room.handle_timeout(self.now);
        for i in 0..CONNS {
            let Some(c) = &self.conns[i] else { continue };
            if self.room.needs_pump(c.id, self.now) {
                self.pump(i, write_cap, 1024, Fault::None);
            }
        }
        if let Some(at) = self.room.poll_timeout() {
            if at <= self.now {
                self.known.fail(
                    "spin",
                    format!(
                        "after handle_timeout and pumping, poll_timeout is {} ms, not after now ({} ms): the frontend's loop would not sleep",
                        at.millis(),
                        self.now.millis()
                    ),
                );
            }
        }
    }

    /// The connection is closed and its slot free: final checks.
    /// `drained`: everything pending was transmitted before `poll_close`.
    fn close(&mut self, i: usize, reason: Option<Reason>, drained: bool) {
        let mut c = self.conns[i].take().unwrap();
        if tracing() {
            eprintln!(
                "    conn #{} closed: {reason:?}; its whole stream: {:?}",
                c.serial,
                String::from_utf8_lossy(&c.rx)
            );
        }
        c.too_slow = reason == Some(Reason::TooSlow);
        c.check_stream(&mut self.known, true);
        if drained && reason == Some(Reason::TooSlow) && c.ever_registered {
            let notice = match c.dialect {
                Dialect::Seed => TOO_SLOW.to_string(),
                _ => format!("{TOO_SLOW}\n"),
            };
            if !c.rx.ends_with(notice.as_bytes()) {
                self.known.fail(
                    "too-slow-notice",
                    format!(
                        "a client dropped as too slow did not get the notice; its stream ends {:?}",
                        String::from_utf8_lossy(&c.rx[c.rx.len().saturating_sub(120)..])
                    ),
                );
            }
        }
    }

    /// After every step.
    fn check(&mut self) {
        let live = self.live();
        if self.room.len() != live {
            self.known.fail("len", format!("room.len() is {}, {live} connections are open", self.room.len()));
        }
        if self.room.len() > self.room.capacity() {
            self.known
                .fail("capacity", format!("room.len() {} over capacity {}", self.room.len(), self.room.capacity()));
        }
        let mut nicks: HashMap<String, String> = HashMap::new();
        for slot in 0..self.room.capacity() {
            let Some(id) = ClientId::new(slot) else { continue };
            let Some(nick) = self.room.nick(id) else { continue };
            if !valid_nick(nick) {
                self.known.fail("nick", format!("registered nickname {nick:?} is not valid"));
            }
            if let Some(other) = nicks.insert(nick.to_ascii_lowercase(), nick.to_string()) {
                self.known.fail("nick-unique", format!("{other:?} and {nick:?} are both registered"));
            }
            if !self.holds(id) {
                self.known.fail("nick", format!("slot {slot} is registered as {nick:?} but no connection holds it"));
            }
            let nick = nick.to_string();
            self.known.add(&nick);
        }
        let now = self.now;
        let mut settled = Vec::new();
        for i in 0..CONNS {
            let Some(c) = self.conns[i].as_mut() else { continue };
            let dialect = self.room.dialect(c.id);
            c.observe(&self.known, dialect);
            let registered = self.room.nick(c.id).is_some();
            if registered && c.gone_from_room {
                self.known.fail("nick", "a client registered again after leaving the room");
            }
            if registered && dialect == Dialect::Unknown {
                self.known.fail("dialect", "a registered client of unknown dialect");
            }
            c.gone_from_room |= c.registered && !registered;
            c.ever_registered |= registered;
            c.registered = registered;
            if !self.room.needs_pump(c.id, now) {
                // Nothing pending: transmit must agree, and the stream so far
                // must be complete.
                let mut probe = [0u8; 64];
                let n = self.room.transmit(c.id, &mut probe);
                if n > 0 {
                    self.known.fail(
                        "needs-pump",
                        format!("needs_pump is false but transmit sent {:?}", String::from_utf8_lossy(&probe[..n])),
                    );
                }
                c.check_stream(&mut self.known, false);
                if registered && dialect == Dialect::Line {
                    settled.push(i);
                }
            }
        }
        self.sync(&settled);
    }

    /// Two line clients that were both registered with nothing pending
    /// after an earlier step, and are again now, have been registered all
    /// along (a connection registers once at most), so both saw every
    /// broadcast line pushed in between, and nothing else was pending at
    /// either end: their broadcast lines since then must be the same.
    /// `settled`: the line clients registered with nothing pending now.
    fn sync(&mut self, settled: &[usize]) {
        for (k, &i) in settled.iter().enumerate() {
            for &j in &settled[k + 1..] {
                let (a, b) = (self.conns[i].as_ref().unwrap(), self.conns[j].as_ref().unwrap());
                let (a, b) = if a.serial < b.serial { (a, b) } else { (b, a) };
                let key = (a.serial, b.serial);
                if let Some(&(pa, pb)) = self.synced.get(&key) {
                    if tracing() {
                        eprintln!(
                            "    broadcast lines of #{} and #{} since they last had nothing pending: {} and {}",
                            a.serial,
                            b.serial,
                            a.broadcast.len() - pa,
                            b.broadcast.len() - pb
                        );
                    }
                    if a.broadcast[pa..] != b.broadcast[pb..] {
                        self.known.fail(
                            "broadcast",
                            format!(
                                "two clients in the room all along got different broadcast lines:\n  #{}: {:?}\n  #{}: {:?}",
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

    /// At the end of every run: a shutdown must empty the room within the
    /// drain timeout, and every registered client must be told (or have
    /// been dropped as too slow, with the notice).
    fn teardown(&mut self) {
        let registered: Vec<(usize, usize)> = (0..CONNS)
            .filter_map(|i| self.conns[i].as_ref().filter(|c| c.registered).map(|c| (i, c.rx.len())))
            .collect();
        self.room.shutdown(self.now);
        for i in 0..CONNS {
            if self.conns[i].is_some() {
                self.drain(i, 4096);
            }
        }
        for (i, from) in registered {
            let c = self.conns[i].as_ref().unwrap();
            let tail = String::from_utf8_lossy(&c.rx[from..]);
            if !tail.contains(SHUTTING_DOWN) && !tail.trim_end().ends_with(TOO_SLOW) {
                self.known.fail("shutdown-notice", format!("a registered client was not told; it got {tail:?}"));
            }
        }
        self.now = self.now + self.room.config().drain_timeout;
        self.room.handle_timeout(self.now);
        for i in 0..CONNS {
            let Some(c) = &self.conns[i] else { continue };
            match self.room.poll_close(c.id, self.now) {
                Some(reason) => self.close(i, Some(reason), true),
                None => {
                    self.known.fail("shutdown", "a connection is still open after shutdown and the drain timeout");
                    self.conns[i] = None;
                }
            }
        }
        if !self.room.is_empty() {
            self.known.fail("shutdown", format!("{} connections left after shutdown", self.room.len()));
        }
    }
}
