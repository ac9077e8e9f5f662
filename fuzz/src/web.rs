//! The harness of the `web` fuzz target: browsers on the web listener
//! (`Room::accept_web`) and line clients in one room.
//!
//! A [`WebInput`] is a room setting and a sequence of [`WebOp`]s: every
//! operation of the `room` target (on line clients, tags 0 to 15, decoded by
//! [`Op::decode_tag`]), and operations on up to [`WEBS`] web connections
//! (tags 16 to 31): HTTP request pieces and pre-built frames from
//! [`WEB_TOKENS`], frames built from the `room` target's [`TOKENS`] with an
//! arbitrary opcode, FIN bit and mask, pumps, short writes, closes. A
//! frontend's loop here is `handle_timeout`, then `pump` every client
//! `poll_ready` names, line or web. The line clients keep every invariant of
//! the `room` target; each web connection's bytes are checked as an HTTP
//! response, then (after a `101`) as server frames. See `README.md`.

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine as _;
use chat_core::web::{PAGE, PAGE_HEAD};
use chat_core::wire::{GREETING, HISTORY_END};
use chat_core::{ClientId, Dialect, Reason, Refused, Status};
use embedded_io::ErrorKind;

use super::{
    byte, is_bidi, parse_line, take, tracing, word, Fault, FuzzStorage, Harness, Known, Op, Said, ThrottleMode, Wire,
    CONNS, MAX_OPS, MAX_OUT_LINE, OPS, SHUTTING_DOWN, TOKENS, TOO_SLOW,
};

/// Web connections the harness can address (besides [`CONNS`] line ones).
pub const WEBS: usize = 4;

/// The key of RFC 6455's example, and the accept key it gets.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The other origin the room may be told to allow.
pub const OTHER_ORIGIN: &str = "http://evil.example";

const ORIGINS: &[&str] = &[OTHER_ORIGIN];

/// A browser's frame: `first` is its first byte (FIN, opcode), `mask`
/// `None` for an unmasked (forbidden) frame.
pub fn frame(first: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        len @ 0..=125 => out.push(bit | len as u8),
        len => {
            out.push(bit | 126);
            out.extend((len.min(0xFFFF) as u16).to_be_bytes());
        }
    }
    match mask {
        Some(mask) => {
            out.extend(mask);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        None => out.extend(payload),
    }
    out
}

fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    frame(first, Some([0x11, 0x22, 0x33, 0x44]), payload)
}

/// A browser's whole upgrade request, from the page's own origin.
pub fn upgrade_request() -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:8080\r\n\r\n"
    )
}

/// Byte strings the `WebSay` operation glues together: request lines,
/// headers (the upgrade's, with a valid key; `Host`/`Origin` pairs that
/// match or not), whole requests, and pre-built frames (text, fragments,
/// ping, pong, close, binary, unmasked, oversize, reserved bits).
pub fn web_tokens() -> &'static [Vec<u8>] {
    static TOKENS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let mut t: Vec<Vec<u8>> = [
            "GET / HTTP/1.1\r\n",
            "GET /ws HTTP/1.1\r\n",
            "GET /ws?room=1 HTTP/1.1\r\n",
            "GET /index.html HTTP/1.1\r\n",
            "POST / HTTP/1.1\r\n",
            "GET /favicon.ico HTTP/1.1\r\n",
            "GET / HTTP/1.0\r\n",
            "Host: 127.0.0.1:8080\r\n",
            "Origin: http://127.0.0.1:8080\r\n",
            "Host: chat.example\r\n",
            "Origin: http://chat.example\r\n",
            "Origin: http://evil.example\r\n",
            "Upgrade: websocket\r\n",
            "Connection: Upgrade\r\n",
            "Connection: keep-alive, Upgrade\r\n",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
            "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n",
            "Sec-WebSocket-Key: short\r\n",
            "Sec-WebSocket-Version: 13\r\n",
            "Sec-WebSocket-Version: 8\r\n",
            "Accept: text/html\r\n",
            "bad header\r\n",
            "\r\n",
            "\n",
            "\r",
            ": \r\n",
            "GET / HTTP/1.1\r\nHost: 192.168.69.1\r\n\r\n",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        t.push(upgrade_request().into_bytes());
        t.push(format!("X-Filler: {}\r\n", "f".repeat(480)).into_bytes());
        t.push([b'h'; 600].to_vec());
        for text in
            ["alice", "bob", "carol", "dave", "hello", "/who", "/nick carol", "/quit bye", "/me waves", "/msg bob hi"]
        {
            t.push(masked(0x81, text.as_bytes()));
        }
        for (first, payload) in [
            (0x01, &b"hel"[..]),
            (0x00, b"l"),
            (0x80, b"o"),
            (0x89, b"are you there"),
            (0x8A, b"pong"),
            (0x88, &1000u16.to_be_bytes()),
            (0x88, &1001u16.to_be_bytes()),
            (0x88, &4000u16.to_be_bytes()),
            (0x88, b""),
            (0x88, b"\x03"),
            (0x82, b"\x00\x01"),
            (0x81, b"bad \xff"),
            (0x81, b"\x1b[31m red \xe2\x80\xae"),
            (0x81, b"alice: forged"),
            (0x81, b"one\nbob: forged"),
            (0x81, "h\u{e9}llo \u{2713}".as_bytes()),
            (0x81, b""),
            (0x83, b"reserved"),
            (0xC1, b"extension"),
            (0x09, b"fragmented ping"),
            (0x89, &[b'p'; 126]),
            (0x81, &[b'x'; 512]),
            (0x81, &[b'z'; 513]),
            (0x01, &[b'x'; 300]),
            (0x80, &[b'y'; 213]),
            (0x80, &[b'y'; 200]),
        ] {
            t.push(masked(first, payload));
        }
        t.push(frame(0x81, None, b"hi"));
        // Eight bytes of length.
        t.push(vec![0x81, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4]);
        t
    })
}

/// Opcodes (with FIN) a `WebFrame` picks from.
const FRAME_FIRSTS: [u8; 8] = [0x81, 0x01, 0x80, 0x00, 0x89, 0x8A, 0x88, 0x82];

/// One step: an operation of the `room` target on the line clients, or one
/// on a web connection (`web` modulo [`WEBS`]; nothing if it is not open).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebOp {
    /// A `room` target operation (line clients; `Frontend` pumps both kinds).
    Line(Op),
    /// A connection to the web listener (`Room::accept_web`).
    Connect,
    /// The browser sends raw bytes.
    Send { web: u8, data: Vec<u8> },
    /// The browser sends 1 to 4 entries of [`web_tokens`] glued together.
    Say { web: u8, tokens: Vec<u8> },
    /// The browser sends one frame: opcode and FIN from
    /// `FRAME_FIRSTS[kind % 8]`, masked unless `mask` is 0, its payload 1
    /// to 4 entries of the `room` target's [`TOKENS`].
    Frame { web: u8, kind: u8, mask: u8, tokens: Vec<u8> },
    /// `Room::pump` as in the `room` target's `Pump`.
    Pump { web: u8, write_cap: u16, read_chunk: u16, fault: u8 },
    /// One `transmit` into a buffer of `cap % 2049` bytes.
    Transmit { web: u8, cap: u16 },
    /// `transmit` until nothing is pending, then `poll_close`.
    Close { web: u8, cap: u16 },
    /// `peer_closed` (`fin` false) or end of file after the socket's bytes.
    PeerClose { web: u8, fin: bool },
    /// `Room::disconnect`.
    Disconnect { web: u8 },
}

/// A whole scenario of the `web` target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebInput {
    pub throttle: ThrottleMode,
    /// The room allows [`OTHER_ORIGIN`]'s pages (not its own).
    pub other_origin: bool,
    pub ops: Vec<WebOp>,
}

fn tokens(u: &mut Unstructured<'_>) -> Vec<u8> {
    let n = byte(u) % 4 + 1;
    (0..n).map(|_| byte(u)).collect()
}

fn push_tokens(out: &mut Vec<u8>, tokens: &[u8]) {
    assert!((1..=4).contains(&tokens.len()), "1 to 4 tokens");
    out.push(tokens.len() as u8 - 1);
    out.extend(tokens);
}

impl WebOp {
    /// Decodes one operation; missing bytes read as zero.
    pub fn decode(u: &mut Unstructured<'_>) -> WebOp {
        let tag = byte(u) % (2 * OPS);
        if tag < OPS {
            return WebOp::Line(Op::decode_tag(tag, u));
        }
        match tag - OPS {
            0..=2 => WebOp::Connect,
            3 => {
                let web = byte(u);
                let len = usize::from(byte(u));
                WebOp::Send { web, data: take(u, len) }
            }
            4..=6 => WebOp::Say { web: byte(u), tokens: tokens(u) },
            7..=9 => WebOp::Frame { web: byte(u), kind: byte(u), mask: byte(u), tokens: tokens(u) },
            10 | 11 => WebOp::Pump { web: byte(u), write_cap: word(u), read_chunk: word(u), fault: byte(u) },
            12 => WebOp::Transmit { web: byte(u), cap: word(u) },
            13 => WebOp::Close { web: byte(u), cap: word(u) },
            14 => {
                let web = byte(u);
                WebOp::PeerClose { web, fin: byte(u) & 1 == 1 }
            }
            _ => WebOp::Disconnect { web: byte(u) },
        }
    }

    /// The bytes [`WebOp::decode`] reads back as this operation.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            WebOp::Line(op) => op.encode(out),
            WebOp::Connect => out.push(OPS),
            WebOp::Send { web, data } => {
                assert!(data.len() <= 255, "Send carries at most 255 bytes");
                out.extend([OPS + 3, *web, data.len() as u8]);
                out.extend(data);
            }
            WebOp::Say { web, tokens } => {
                out.extend([OPS + 4, *web]);
                push_tokens(out, tokens);
            }
            WebOp::Frame { web, kind, mask, tokens } => {
                out.extend([OPS + 7, *web, *kind, *mask]);
                push_tokens(out, tokens);
            }
            WebOp::Pump { web, write_cap, read_chunk, fault } => {
                out.extend([OPS + 10, *web]);
                out.extend(write_cap.to_le_bytes());
                out.extend(read_chunk.to_le_bytes());
                out.push(*fault);
            }
            WebOp::Transmit { web, cap } => {
                out.extend([OPS + 12, *web]);
                out.extend(cap.to_le_bytes());
            }
            WebOp::Close { web, cap } => {
                out.extend([OPS + 13, *web]);
                out.extend(cap.to_le_bytes());
            }
            WebOp::PeerClose { web, fin } => out.extend([OPS + 14, *web, u8::from(*fin)]),
            WebOp::Disconnect { web } => out.extend([OPS + 15, *web]),
        }
    }
}

impl WebInput {
    /// Decodes a fuzzer input (never fails: missing bytes read as zero).
    pub fn decode(data: &[u8]) -> WebInput {
        let mut u = Unstructured::new(data);
        let first = byte(&mut u);
        let throttle = ThrottleMode::from_byte(first);
        let other_origin = (first / 3) % 2 == 1;
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < MAX_OPS {
            ops.push(WebOp::decode(&mut u));
        }
        WebInput { throttle, other_origin, ops }
    }

    /// The bytes [`WebInput::decode`] reads back as this input.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.throttle.byte() + 3 * u8::from(self.other_origin)];
        for op in &self.ops {
            op.encode(&mut out);
        }
        out
    }
}

impl<'a> Arbitrary<'a> for WebInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let rest = take(u, u.len());
        Ok(WebInput::decode(&rest))
    }

    fn arbitrary_take_rest(u: Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(WebInput::decode(u.take_rest()))
    }
}

// ----- a browser, as it sees its connection ----------------------------------------

/// How far a web connection's stream has been read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stream {
    /// An HTTP response's head is expected.
    Head,
    /// The body of a non-101 answer: this many bytes to come, then nothing.
    Body { left: usize, page: bool },
    /// The answer is whole: nothing may follow.
    Answered,
    /// After a `101`: server frames.
    Frames,
    /// After the server's close frame: nothing may follow.
    Closed,
}

struct WebConn {
    serial: u64,
    id: ClientId,
    /// Everything the room sent it.
    rx: Vec<u8>,
    /// `rx[..parsed]` has been checked.
    parsed: usize,
    stream: Stream,
    /// Where the page's body starts in `rx`.
    body_at: usize,
    /// Everything the browser sent (for the keys its 101 may answer).
    tx: Vec<u8>,
    /// Bytes the browser sent that the room has not taken.
    socket: Vec<u8>,
    fin: bool,
    eof: bool,
    /// The text frames received.
    texts: Vec<String>,
    /// The close code received.
    close: Option<u16>,
    registered: bool,
    ever_registered: bool,
    /// Between `*** history: …` and `*** end of history` (see the line
    /// clients' `in_history`): checked for form only.
    in_history: bool,
}

fn fail(known: &Known, tag: &str, msg: impl std::fmt::Display) {
    known.fail(tag, msg)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `Sec-WebSocket-Accept` for a key (RFC 6455, 4.2.2).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = sha1_smol::Sha1::new();
    sha1.update(key);
    sha1.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha1.digest().bytes())
}

/// The statuses the room (or a frontend, for a refused connection) answers.
const STATUSES: [u16; 10] = [101, 200, 400, 403, 404, 405, 408, 426, 431, 503];

/// Checks an HTTP response's head (without its blank line); returns its
/// status and `Content-Length`.
fn check_head(known: &Known, head: &[u8]) -> (u16, Option<usize>) {
    let Ok(head) = std::str::from_utf8(head) else {
        fail(known, "http-head", format!("a response head that is not UTF-8: {:?}", String::from_utf8_lossy(head)));
        return (0, None);
    };
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .filter(|code| STATUSES.contains(code));
    let Some(status) = status else {
        fail(known, "http-head", format!("status line {status_line:?}"));
        return (0, None);
    };
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(": ") else {
            fail(known, "http-head", format!("header line {line:?} in {head:?}"));
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
            if length.is_none() {
                fail(known, "http-length", format!("Content-Length {value:?}"));
            }
        }
    }
    (status, length)
}

/// A response to a refused connection (`Refused::http_response`) is a whole
/// answer whose body is as long as it says.
fn check_refusal(known: &Known, response: &[u8]) {
    let Some(end) = find(response, b"\r\n\r\n") else {
        return fail(known, "http-head", "a refusal with no end of head");
    };
    let (_, length) = check_head(known, &response[..end]);
    if length != Some(response.len() - end - 4) {
        fail(known, "http-length", format!("refusal says {length:?} bytes, has {}", response.len() - end - 4));
    }
}

impl WebConn {
    fn new(serial: u64, id: ClientId) -> WebConn {
        WebConn {
            serial,
            id,
            rx: Vec::new(),
            parsed: 0,
            stream: Stream::Head,
            body_at: 0,
            tx: Vec::new(),
            socket: Vec::new(),
            fin: false,
            eof: false,
            texts: Vec::new(),
            close: None,
            registered: false,
            ever_registered: false,
            in_history: false,
        }
    }

    fn upgraded(&self) -> bool {
        matches!(self.stream, Stream::Frames | Stream::Closed)
    }

    /// The accept keys a `101` may carry: one for each key the browser sent.
    fn accept_keys(&self) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.tx);
        text.split(['\r', '\n'])
            .filter_map(|line| line.split_once(':'))
            .filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-key"))
            .map(|(_, value)| accept_key(value.trim_matches([' ', '\t']).as_bytes()))
            .collect()
    }

    /// Checks what arrived since the last check, a whole unit (head, body,
    /// frame) at a time. `settled`: nothing is pending for the connection
    /// and it is open, so no unit may be cut.
    fn check(&mut self, known: &mut Known, settled: bool) {
        loop {
            let new = &self.rx[self.parsed..];
            if new.is_empty() {
                return;
            }
            let used = match self.stream {
                Stream::Head => {
                    let Some(end) = find(new, b"\r\n\r\n") else { break };
                    let head = &new[..end];
                    let (status, length) = check_head(known, head);
                    if tracing() {
                        eprintln!("    web #{} <- HTTP {status} {:?}", self.serial, String::from_utf8_lossy(head));
                    }
                    if status == 101 {
                        let text = String::from_utf8_lossy(head);
                        let accept = text
                            .split("\r\n")
                            .find_map(|line| line.strip_prefix("Sec-WebSocket-Accept: "))
                            .unwrap_or("");
                        if !self.accept_keys().iter().any(|key| key == accept) {
                            fail(known, "ws-accept", format!("101 with accept {accept:?} for no key sent"));
                        }
                        for needed in ["\r\nUpgrade: websocket", "\r\nConnection: Upgrade"] {
                            if !text.contains(needed) {
                                fail(known, "ws-accept", format!("101 without {needed:?}: {text:?}"));
                            }
                        }
                        self.stream = Stream::Frames;
                    } else {
                        let Some(left) = length else {
                            fail(known, "http-length", format!("HTTP {status} without a Content-Length"));
                            return;
                        };
                        let page = status == 200;
                        if page && head != &PAGE_HEAD[..PAGE_HEAD.len() - 4] {
                            fail(known, "http-page", "a 200 whose head is not the page's");
                        }
                        self.stream = Stream::Body { left, page };
                        self.body_at = self.parsed + end + 4;
                    }
                    end + 4
                }
                Stream::Body { left, page } => {
                    let take = left.min(new.len());
                    self.stream = Stream::Body { left: left - take, page };
                    if left == take {
                        self.stream = Stream::Answered;
                        if page && self.rx[self.body_at..self.parsed + take] != *PAGE {
                            fail(known, "http-page", "a 200 whose body is not the page");
                        }
                    }
                    take
                }
                Stream::Answered => {
                    fail(known, "http-after", format!("{} bytes after a whole HTTP answer", new.len()));
                    return;
                }
                Stream::Closed => {
                    fail(known, "ws-after-close", format!("{} bytes after the close frame", new.len()));
                    return;
                }
                Stream::Frames => match self.frame(known) {
                    Some(used) => used,
                    None => break,
                },
            };
            self.parsed += used;
        }
        if settled {
            let what = match self.stream {
                Stream::Head => "HTTP head",
                Stream::Body { .. } => "HTTP body",
                _ => "frame",
            };
            fail(
                known,
                "web-framing",
                format!(
                    "nothing pending but the stream ends in a cut {what}: {:?}",
                    String::from_utf8_lossy(&self.rx[self.parsed..])
                ),
            );
        }
    }

    /// Checks the server frame at `rx[parsed..]`; its size, or `None` if it
    /// is not all there.
    fn frame(&mut self, known: &mut Known) -> Option<usize> {
        let new = &self.rx[self.parsed..];
        let [first, second, ..] = *new else { return None };
        if first & 0xF0 != 0x80 {
            fail(
                known,
                "ws-frame",
                format!("first byte {first:#04x}: not FIN alone (the server sends whole messages)"),
            );
        }
        if second & 0x80 != 0 {
            fail(known, "ws-frame", "a masked server frame");
        }
        let (len, at) = match second & 0x7F {
            126 => {
                let &[hi, lo] = new.get(2..4)? else { return None };
                let len = usize::from(u16::from_be_bytes([hi, lo]));
                if len < 126 {
                    fail(known, "ws-frame", format!("a {len}-byte payload in the long form"));
                }
                (len, 4)
            }
            127 => {
                fail(known, "ws-frame", "a 64-bit payload length");
                return Some(new.len());
            }
            len => (usize::from(len), 2),
        };
        let payload = new.get(at..at + len)?.to_vec();
        match first & 0x0F {
            0x1 => self.text(known, &payload),
            0xA => {
                if tracing() {
                    eprintln!("    web #{} <- pong {:?}", self.serial, String::from_utf8_lossy(&payload));
                }
                if len > 125 {
                    fail(known, "ws-frame", format!("a pong of {len} bytes"));
                }
            }
            0x8 => {
                if tracing() {
                    eprintln!("    web #{} <- close {payload:?}", self.serial);
                }
                match payload[..] {
                    [hi, lo] => self.close = Some(u16::from_be_bytes([hi, lo])),
                    _ => fail(known, "ws-close", format!("a close frame with payload {payload:?}, not a code")),
                }
                self.stream = Stream::Closed;
            }
            op => fail(known, "ws-frame", format!("opcode {op:#x} from the server")),
        }
        Some(at + len)
    }

    /// A text frame: one line of the room.
    fn text(&mut self, known: &mut Known, payload: &[u8]) {
        let Ok(line) = std::str::from_utf8(payload) else {
            return fail(
                known,
                "ws-utf8",
                format!("a text frame that is not UTF-8: {:?}", String::from_utf8_lossy(payload)),
            );
        };
        if tracing() {
            eprintln!("    web #{} <- text {line:?}", self.serial);
        }
        if self.texts.is_empty() && line.as_bytes() != GREETING {
            fail(known, "ws-greeting", format!("first text frame {line:?}, not NICK"));
        }
        if line.is_empty() {
            fail(known, "empty-line", "an empty text frame");
        }
        if let Some(c) = line.chars().find(|&c| (c.is_control() && c != '\t') || is_bidi(c)) {
            fail(known, "control", format!("character {c:?} in text frame {line:?}"));
        }
        if payload.len() > MAX_OUT_LINE {
            fail(known, "long-line", format!("a text frame of {} bytes (at most {MAX_OUT_LINE})", payload.len()));
        }
        if line.starts_with("*** history: ") {
            self.in_history = true;
        } else if line.as_bytes() == HISTORY_END.trim_ascii_end() {
            self.in_history = false;
        }
        match parse_line(line) {
            _ if self.in_history => {}
            Said::Chat(nick, _) if !known.ever.contains(nick) => {
                fail(known, "attribution", format!("{line:?} is attributed to {nick:?}, never registered"));
            }
            Said::Joined(nick) => known.add(nick),
            Said::Renamed(old, new) => {
                known.add(old);
                known.add(new);
            }
            _ => {}
        }
        self.texts.push(line.to_string());
    }
}

// ----- the harness ------------------------------------------------------------

struct WebHarness<'r> {
    h: Harness<'r>,
    webs: Vec<Option<WebConn>>,
}

/// Plays a scenario of the `web` target, checking the invariants after
/// every step; panics on the first one broken.
pub(crate) fn play(input: &WebInput) {
    let mut storage = Box::new(FuzzStorage::new());
    let mut room = storage.room(input.throttle.config());
    if input.other_origin {
        room.set_web_origins(Some(ORIGINS));
    }
    let mut w = WebHarness { h: Harness::new(room), webs: (0..WEBS).map(|_| None).collect() };
    if tracing() {
        eprintln!("throttle {:?}, other origin {}", input.throttle, input.other_origin);
    }
    for (step, op) in input.ops.iter().enumerate() {
        w.h.known.step = step;
        if tracing() {
            eprintln!("step {step} @{} ms: {op:?}", w.h.now.millis());
        }
        w.apply(op);
        w.check();
    }
    w.h.known.step = usize::MAX;
    w.teardown();
}

impl WebHarness<'_> {
    fn web(&self, web: u8) -> Option<usize> {
        let i = usize::from(web) % WEBS;
        self.webs[i].is_some().then_some(i)
    }

    fn apply(&mut self, op: &WebOp) {
        match *op {
            WebOp::Line(Op::Frontend { write_cap }) => self.frontend(usize::from(write_cap)),
            WebOp::Line(ref op) => self.h.apply(op),
            WebOp::Connect => self.connect(),
            WebOp::Send { web, ref data } => {
                if let Some(i) = self.web(web) {
                    self.send(i, data);
                }
            }
            WebOp::Say { web, ref tokens } => {
                if let Some(i) = self.web(web) {
                    let all = web_tokens();
                    let data: Vec<u8> = tokens.iter().flat_map(|&t| all[usize::from(t) % all.len()].clone()).collect();
                    self.send(i, &data);
                }
            }
            WebOp::Frame { web, kind, mask, ref tokens } => {
                if let Some(i) = self.web(web) {
                    let payload: Vec<u8> =
                        tokens.iter().flat_map(|&t| TOKENS[usize::from(t) % TOKENS.len()].iter().copied()).collect();
                    let mask = (mask != 0).then(|| [mask, mask ^ 0x5A, mask.wrapping_add(1), !mask]);
                    let bytes = frame(FRAME_FIRSTS[usize::from(kind) % 8], mask, &payload);
                    self.send(i, &bytes);
                }
            }
            WebOp::Pump { web, write_cap, read_chunk, fault } => {
                if let Some(i) = self.web(web) {
                    self.pump(i, usize::from(write_cap), 1 + usize::from(read_chunk) % 1024, Fault::from_byte(fault));
                }
            }
            WebOp::Transmit { web, cap } => {
                if let Some(i) = self.web(web) {
                    self.transmit(i, usize::from(cap) % 2049);
                }
            }
            WebOp::Close { web, cap } => {
                if let Some(i) = self.web(web) {
                    self.drain(i, 1 + usize::from(cap) % 2048);
                    let id = self.webs[i].as_ref().unwrap().id;
                    if let Some(reason) = self.h.room.poll_close(id, self.h.now) {
                        self.close(i, Some(reason), true);
                    }
                }
            }
            WebOp::PeerClose { web, fin } => {
                if let Some(i) = self.web(web) {
                    let c = self.webs[i].as_mut().unwrap();
                    if fin {
                        c.fin = true;
                    } else if !c.eof {
                        c.eof = true;
                        c.fin = true;
                        c.socket.clear();
                        self.h.room.peer_closed(c.id, self.h.now);
                    }
                }
            }
            WebOp::Disconnect { web } => {
                if let Some(i) = self.web(web) {
                    let id = self.webs[i].as_ref().unwrap().id;
                    self.h.room.disconnect(id, Reason::Io(ErrorKind::ConnectionReset));
                    self.close(i, None, false);
                }
            }
        }
    }

    fn connect(&mut self) {
        let before = self.h.room.len();
        match self.h.room.accept_web(self.h.now, None) {
            Ok(id) => {
                if self.h.holds(id) {
                    self.h.known.fail("accept", format!("slot {} given out twice", id.index()));
                }
                if self.h.room.len() != before + 1 {
                    self.h.known.fail("len", "accept_web did not count the new connection");
                }
                if self.h.room.dialect(id) != Dialect::Web {
                    self.h.known.fail("dialect", "a web connection not of the web dialect");
                }
                let Some(i) = self.webs.iter().position(Option::is_none) else {
                    // Every web connection the harness addresses is open:
                    // the frontend turns this one away.
                    self.h.room.disconnect(id, Reason::Io(ErrorKind::ConnectionReset));
                    return;
                };
                self.h.serials += 1;
                self.webs[i] = Some(WebConn::new(self.h.serials, id));
                self.h.web_ids.push(id);
                if tracing() {
                    eprintln!("    web #{} is slot {}", self.h.serials, id.index());
                }
            }
            Err(refused) => {
                check_refusal(&self.h.known, refused.http_response());
                if refused == Refused::Full && self.h.live() != self.h.room.capacity() {
                    self.h.known.fail(
                        "room-full",
                        format!("refused with {} of {} slots taken", self.h.live(), self.h.room.capacity()),
                    );
                }
            }
        }
    }

    fn send(&mut self, i: usize, data: &[u8]) {
        let c = self.webs[i].as_mut().unwrap();
        if c.fin {
            return;
        }
        c.tx.extend_from_slice(data);
        c.socket.extend_from_slice(data);
        if c.eof {
            return;
        }
        let taken = self.h.room.receive(c.id, &c.socket, self.h.now);
        if taken > c.socket.len() {
            self.h.known.fail("receive", format!("took {taken} of {} bytes", c.socket.len()));
        }
        c.socket.drain(..taken.min(c.socket.len()));
    }

    fn received(&mut self, i: usize, bytes: &[u8]) {
        let c = self.webs[i].as_mut().unwrap();
        if !bytes.is_empty() && tracing() {
            eprintln!("    web #{} got {} bytes", c.serial, bytes.len());
        }
        c.rx.extend_from_slice(bytes);
    }

    fn transmit(&mut self, i: usize, cap: usize) -> usize {
        let id = self.webs[i].as_ref().unwrap().id;
        let mut buf = vec![0; cap];
        let n = self.h.room.transmit(id, &mut buf);
        if n > cap {
            self.h.known.fail("transmit", format!("{n} bytes into a buffer of {cap}"));
        }
        self.received(i, &buf[..n.min(cap)]);
        n
    }

    fn drain(&mut self, i: usize, cap: usize) {
        let mut rounds = 0;
        while self.transmit(i, cap) > 0 {
            rounds += 1;
            if rounds > 100_000 {
                return self.h.known.fail("drain", "output never runs out");
            }
        }
    }

    fn pump(&mut self, i: usize, write_cap: usize, read_chunk: usize, fault: Fault) {
        let c = self.webs[i].as_mut().unwrap();
        let mut wire = Wire {
            socket: &mut c.socket,
            fin: c.fin,
            eof_read: false,
            budget: write_cap,
            read_chunk,
            fault,
            writes: Vec::new(),
        };
        let status = self.h.room.pump(c.id, &mut wire, self.h.now);
        let (writes, eof_read) = (std::mem::take(&mut wire.writes), wire.eof_read);
        c.eof |= eof_read;
        for (bytes, _) in writes {
            self.received(i, &bytes);
        }
        if let Status::Closed(reason) = status {
            self.close(i, Some(reason), false);
        }
    }

    /// A frontend's loop: `handle_timeout`, then pump every client
    /// `poll_ready` names (line or web) until it names none; then the next
    /// sleep must not be due already.
    fn frontend(&mut self, write_cap: usize) {
        let now = self.h.now;
        self.h.room.handle_timeout(now);
        let mut pumps = 0;
        while let Some(id) = self.h.room.poll_ready(now) {
            pumps += 1;
            if pumps > 10_000 {
                return self.h.known.fail("poll-ready", "poll_ready never runs dry");
            }
            if let Some(i) = self.h.conns.iter().position(|c| c.as_ref().is_some_and(|c| c.id == id)) {
                self.h.pump(i, write_cap, 1024, Fault::None);
            } else if let Some(i) = self.webs.iter().position(|c| c.as_ref().is_some_and(|c| c.id == id)) {
                self.pump(i, write_cap, 1024, Fault::None);
            } else {
                return self
                    .h
                    .known
                    .fail("poll-ready", format!("poll_ready named slot {}, which no one holds", id.index()));
            }
        }
        if let Some(at) = self.h.room.poll_timeout() {
            if at <= now {
                self.h.known.fail(
                    "spin",
                    format!(
                        "after handle_timeout and pumping what poll_ready names, poll_timeout is {} ms, not after now ({} ms)",
                        at.millis(),
                        now.millis()
                    ),
                );
            }
        }
    }

    /// The web connection is closed and its slot free: final checks.
    fn close(&mut self, i: usize, reason: Option<Reason>, drained: bool) {
        let mut c = self.webs[i].take().unwrap();
        self.h.web_ids.retain(|&id| id != c.id);
        if tracing() {
            eprintln!("    web #{} closed: {reason:?}; {} bytes received", c.serial, c.rx.len());
        }
        c.check(&mut self.h.known, false);
        // Cut off inside a frame whose payload is gone, a browser can be
        // sent no further frame: the core just closes (farewell.rs).
        let cut = c.stream == Stream::Frames && c.parsed < c.rx.len();
        if drained && reason == Some(Reason::TooSlow) && c.ever_registered && !cut {
            let told = c.texts.last().is_some_and(|t| t.as_bytes() == TOO_SLOW.as_bytes()) && c.close == Some(1008);
            if !told {
                self.h.known.fail(
                    "too-slow-notice",
                    format!(
                        "a browser dropped as too slow was not told: last frames {:?}, close {:?}",
                        &c.texts[c.texts.len().saturating_sub(2)..],
                        c.close
                    ),
                );
            }
        }
    }

    /// After every step: the `room` target's checks (line clients, slots,
    /// nicknames), then each web connection's stream.
    fn check(&mut self) {
        self.h.check();
        let now = self.h.now;
        for i in 0..WEBS {
            let Some(c) = self.webs[i].as_mut() else { continue };
            let known = &mut self.h.known;
            if self.h.room.dialect(c.id) != Dialect::Web {
                known.fail("dialect", format!("a web connection is now {:?}", self.h.room.dialect(c.id)));
            }
            let registered = self.h.room.nick(c.id).is_some();
            // Bytes received so far, checked before the registration is.
            let settled = !self.h.room.needs_pump(c.id, now);
            if settled {
                let mut probe = [0u8; 64];
                let n = self.h.room.transmit(c.id, &mut probe);
                if n > 0 {
                    known.fail("needs-pump", format!("needs_pump is false but transmit sent {:?}", &probe[..n]));
                }
            }
            c.check(known, settled);
            if registered && !c.upgraded() {
                known.fail("ws-register", "a browser joined the room before its 101 was sent");
            }
            if registered && !c.registered && c.ever_registered {
                known.fail("nick", "a browser registered again after leaving the room");
            }
            if tracing() && registered != c.registered {
                eprintln!("    web #{} {}", c.serial, if registered { "registered" } else { "no longer registered" });
            }
            c.ever_registered |= registered;
            c.registered = registered;
        }
    }

    /// At the end of every run: a shutdown empties the room within the drain
    /// timeout; every registered client, line or web, is told.
    fn teardown(&mut self) {
        let lines: Vec<(usize, usize)> = (0..CONNS)
            .filter_map(|i| self.h.conns[i].as_ref().filter(|c| c.registered).map(|c| (i, c.rx.len())))
            .collect();
        let webs: Vec<(usize, usize)> = (0..WEBS)
            .filter_map(|i| self.webs[i].as_ref().filter(|c| c.registered).map(|c| (i, c.texts.len())))
            .collect();
        let now = self.h.now;
        self.h.room.shutdown(now);
        for i in 0..CONNS {
            if self.h.conns[i].is_some() {
                self.h.drain(i, 4096);
            }
        }
        for i in 0..WEBS {
            if self.webs[i].is_some() {
                self.drain(i, 4096);
                let c = self.webs[i].as_mut().unwrap();
                c.check(&mut self.h.known, false);
            }
        }
        for (i, from) in lines {
            let c = self.h.conns[i].as_ref().unwrap();
            let tail = String::from_utf8_lossy(&c.rx[from..]);
            if !tail.contains(SHUTTING_DOWN) && !tail.trim_end().ends_with(TOO_SLOW) {
                self.h.known.fail("shutdown-notice", format!("a registered client was not told; it got {tail:?}"));
            }
        }
        for (i, from) in webs {
            let c = self.webs[i].as_ref().unwrap();
            let tail = &c.texts[from..];
            // Dropped as too slow inside a frame, a browser can be sent no
            // further frame (see `close`).
            let cut = c.stream == Stream::Frames && c.parsed < c.rx.len();
            if !cut && !tail.iter().any(|t| t == SHUTTING_DOWN || t == TOO_SLOW) {
                self.h.known.fail("shutdown-notice", format!("a registered browser was not told; it got {tail:?}"));
            }
        }
        self.h.now = now + self.h.room.config().drain_timeout;
        let now = self.h.now;
        self.h.room.handle_timeout(now);
        for i in 0..CONNS {
            let Some(c) = &self.h.conns[i] else { continue };
            match self.h.room.poll_close(c.id, now) {
                Some(reason) => self.h.close(i, Some(reason), true),
                None => {
                    self.h.known.fail("shutdown", "a connection is still open after shutdown and the drain timeout");
                    self.h.conns[i] = None;
                }
            }
        }
        for i in 0..WEBS {
            let Some(c) = &self.webs[i] else { continue };
            match self.h.room.poll_close(c.id, now) {
                Some(reason) => self.close(i, Some(reason), true),
                None => {
                    self.h.known.fail("shutdown", "a browser is still open after shutdown and the drain timeout");
                    let id = c.id;
                    self.webs[i] = None;
                    self.h.web_ids.retain(|&x| x != id);
                }
            }
        }
        if !self.h.room.is_empty() {
            self.h.known.fail("shutdown", format!("{} connections left after shutdown", self.h.room.len()));
        }
    }
}
