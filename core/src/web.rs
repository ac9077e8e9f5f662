//! The web dialect: the chat page, and the WebSocket over which a browser
//! joins the room.
//!
//! A frontend's web listener hands its connections to the room with
//! [`Room::accept_web`](crate::Room::accept_web). The room reads an
//! HTTP/1.1 request from it, a line at a time (each checked by `httparse`:
//! a board has a 520-byte input buffer per client, not room for a whole
//! request): `GET /` gets [`PAGE`]; `GET /ws` with a valid WebSocket
//! upgrade gets `101 Switching Protocols`, and from then on each line is
//! one text frame both ways (RFC 6455); anything else gets a short error
//! and a close. This module has the parts that need no room: the request's
//! headers as they arrive, the handshake's accept key, frame headers.
//! `room::web` drives them. PROTOCOL.md has every byte.

use base64::Engine as _;
use heapless::Vec;

/// The chat page, gzipped at build time from `core/web/chat.html`.
pub const PAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/chat.html.gz"));

/// The page's Content-Security-Policy, made at build time: its own inline
/// script and style (by hash) and connections to its own origin only.
pub const PAGE_POLICY: &str = include_str!(concat!(env!("OUT_DIR"), "/chat.csp"));

/// The head of the answer to `GET /`: status, type, `Content-Encoding:
/// gzip`, length, [`PAGE_POLICY`], `nosniff`, no referrer, `no-cache` (the
/// page is small; a browser asks again rather than keep an old one).
pub const PAGE_HEAD: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/chat.head"));

/// Where the page opens its WebSocket.
pub const WS_PATH: &str = "/ws";

/// The most bytes a request may have, headers included: far more than a
/// browser sends, far less than a slot should read for nothing.
pub const MAX_REQUEST: usize = 8192;

/// The longest `Host` or `Origin` kept for the origin check.
const MAX_HOST: usize = 64;

/// The WebSocket close codes the room sends (RFC 6455, 7.4.1).
pub mod close {
    /// A normal close, answering the browser's.
    pub const NORMAL: u16 = 1000;
    /// The browser leaves the page.
    pub const GOING_AWAY: u16 = 1001;
    /// The browser broke the protocol (an unmasked frame, a bad opcode).
    pub const PROTOCOL: u16 = 1002;
    /// A binary frame: the room speaks text.
    pub const UNSUPPORTED: u16 = 1003;
    /// A text message that is not UTF-8.
    pub const INVALID: u16 = 1007;
    /// Too slow a reader: the lines it missed are gone.
    pub const POLICY: u16 = 1008;
    /// A message longer than a line.
    pub const TOO_BIG: u16 = 1009;
}

/// HTTP answers that are always the same.
pub(crate) mod answer {
    macro_rules! plain {
        ($status:literal, $body:literal) => {
            concat!(
                "HTTP/1.1 ",
                $status,
                "\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n\
                 Connection: close\r\nContent-Length: ",
                // The bodies below are short ASCII: their length is written out.
                $body
            )
            .as_bytes()
        };
    }
    pub const BAD_REQUEST: &[u8] = plain!("400 Bad Request", "12\r\n\r\nbad request\n");
    pub const FORBIDDEN: &[u8] = plain!("403 Forbidden", "19\r\n\r\norigin not allowed\n");
    pub const NOT_FOUND: &[u8] = plain!("404 Not Found", "10\r\n\r\nnot found\n");
    pub const METHOD: &[u8] = plain!("405 Method Not Allowed", "19\r\n\r\nonly GET is served\n");
    pub const TIMEOUT: &[u8] = plain!("408 Request Timeout", "17\r\n\r\nrequest too slow\n");
    pub const UPGRADE: &[u8] = plain!("426 Upgrade Required", "32\r\n\r\nthis is a WebSocket, version 13\n");
    pub const TOO_LARGE: &[u8] = plain!("431 Request Header Fields Too Large", "18\r\n\r\nrequest too large\n");
}

/// What a request asks for, once its headers are in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// `GET /`: the page.
    Page,
    /// A WebSocket upgrade of `GET /ws`; the accept key for the `101`.
    Upgrade([u8; 28]),
    /// Anything else: this response, then close.
    Refuse(&'static [u8]),
}

/// Which path a request line asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Page,
    Socket,
    Elsewhere,
}

/// A request being read, a line at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Request {
    /// Bytes read so far (lines and their terminators).
    size: usize,
    /// The request line, once read; `None` before it.
    target: Option<Result<Target, &'static [u8]>>,
    upgrade: bool,
    connection_upgrade: bool,
    version_13: bool,
    key: Option<[u8; 24]>,
    host: Option<Vec<u8, MAX_HOST>>,
    origin: Option<Vec<u8, MAX_HOST>>,
    /// A header broke the rules: answer 400 at the end.
    malformed: bool,
}

impl Request {
    pub const NEW: Request = Request {
        size: 0,
        target: None,
        upgrade: false,
        connection_upgrade: false,
        version_13: false,
        key: None,
        host: None,
        origin: None,
        malformed: false,
    };

    /// Takes one line of the request (without its `\r\n`; `size` with
    /// it). Returns the answer once the empty line ends the headers.
    pub fn line(&mut self, line: &[u8], size: usize, origins: Option<&[&str]>) -> Option<Answer> {
        self.size += size;
        if self.size > MAX_REQUEST {
            return Some(Answer::Refuse(answer::TOO_LARGE));
        }
        let Some(target) = self.target else {
            self.target = Some(request_line(line));
            return None;
        };
        if !line.is_empty() {
            self.header(line);
            return None;
        }
        Some(match target {
            Err(refusal) => Answer::Refuse(refusal),
            Ok(_) if self.malformed => Answer::Refuse(answer::BAD_REQUEST),
            Ok(Target::Page) => Answer::Page,
            Ok(Target::Elsewhere) => Answer::Refuse(answer::NOT_FOUND),
            Ok(Target::Socket) => self.upgrade_answer(origins),
        })
    }

    fn header(&mut self, line: &[u8]) {
        // httparse checks the header's syntax; it wants the block's end.
        let mut block = [0u8; crate::wire::MAX_LINE + 4];
        let Some(room) = block.get_mut(..line.len() + 4) else {
            self.malformed = true;
            return;
        };
        room[..line.len()].copy_from_slice(line);
        room[line.len()..].copy_from_slice(b"\r\n\r\n");
        let mut headers = [httparse::EMPTY_HEADER; 1];
        let Ok(httparse::Status::Complete((_, [header]))) = httparse::parse_headers(room, &mut headers) else {
            self.malformed = true;
            return;
        };
        let (name, value) = (header.name, header.value);
        if name.eq_ignore_ascii_case("upgrade") {
            self.upgrade = value.eq_ignore_ascii_case(b"websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            self.connection_upgrade =
                value.split(|&b| b == b',').any(|token| token.trim_ascii().eq_ignore_ascii_case(b"upgrade"));
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            self.version_13 = value == b"13";
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            // 16 random bytes in base64: 24 characters.
            self.key = value.try_into().ok().filter(|key: &[u8; 24]| decodes_to_16(key));
            self.malformed |= self.key.is_none();
        } else if name.eq_ignore_ascii_case("host") {
            self.host = Vec::from_slice(value).ok();
            self.malformed |= self.host.is_none();
        } else if name.eq_ignore_ascii_case("origin") {
            self.origin = Vec::from_slice(value).ok();
            self.malformed |= self.origin.is_none();
        }
    }

    fn upgrade_answer(&self, origins: Option<&[&str]>) -> Answer {
        let (Some(key), true, true) = (self.key, self.upgrade, self.connection_upgrade) else {
            return Answer::Refuse(answer::UPGRADE);
        };
        if !self.version_13 {
            return Answer::Refuse(answer::UPGRADE);
        }
        if !self.origin_allowed(origins) {
            return Answer::Refuse(answer::FORBIDDEN);
        }
        Answer::Upgrade(accept_key(&key))
    }

    /// A browser always says where the page came from: by default it must
    /// be this server's own page (the origin's host is the `Host`), so no
    /// other site's page can join the room in its visitor's name. Programs
    /// that send no `Origin` are not browsers and are let in.
    fn origin_allowed(&self, origins: Option<&[&str]>) -> bool {
        let Some(origin) = &self.origin else { return true };
        match origins {
            Some(allowed) => allowed.iter().any(|allowed| allowed.as_bytes().eq_ignore_ascii_case(origin)),
            None => {
                let host = origin.splitn(2, |&b| b == b':').nth(1).and_then(|rest| rest.strip_prefix(b"//"));
                matches!((host, &self.host), (Some(host), Some(expected)) if host.eq_ignore_ascii_case(expected))
            }
        }
    }
}

/// The request line: `GET /` or `GET /ws` over HTTP/1.1.
fn request_line(line: &[u8]) -> Result<Target, &'static [u8]> {
    let mut block = [0u8; crate::wire::MAX_LINE + 4];
    let room = block.get_mut(..line.len() + 4).ok_or(answer::BAD_REQUEST)?;
    room[..line.len()].copy_from_slice(line);
    room[line.len()..].copy_from_slice(b"\r\n\r\n");
    let mut request = httparse::Request::new(&mut []);
    match request.parse(room) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(answer::BAD_REQUEST),
    }
    if request.version != Some(1) {
        return Err(answer::BAD_REQUEST);
    }
    if request.method != Some("GET") {
        return Err(answer::METHOD);
    }
    // The query string, if any, is not the path.
    let path = request.path.unwrap_or("").split('?').next().unwrap_or("");
    Ok(match path {
        "/" | "/index.html" => Target::Page,
        WS_PATH => Target::Socket,
        _ => Target::Elsewhere,
    })
}

fn decodes_to_16(key: &[u8; 24]) -> bool {
    let mut out = [0u8; 18];
    matches!(base64::engine::general_purpose::STANDARD.decode_slice(key, &mut out), Ok(16))
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455, 4.2.2):
/// base64 of SHA-1 of the key and the protocol's GUID.
pub(crate) fn accept_key(key: &[u8; 24]) -> [u8; 28] {
    let mut sha1 = sha1_smol::Sha1::new();
    sha1.update(key);
    sha1.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let mut out = [0u8; 28];
    // 20 bytes are 28 characters of base64: it fits exactly.
    let _ = base64::engine::general_purpose::STANDARD.encode_slice(sha1.digest().bytes(), &mut out);
    out
}

/// A frame's opcodes (RFC 6455, 5.2).
pub(crate) mod opcode {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

/// A browser's frame header, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub len: usize,
    pub mask: [u8; 4],
    /// Bytes of header before the payload.
    pub header: usize,
}

/// The header at the start of `bytes`: `Ok(None)` while incomplete, `Err`
/// with the close code when it breaks the protocol or announces more than a
/// line (`most` bytes).
pub(crate) fn frame(bytes: &[u8], most: usize) -> Result<Option<Frame>, u16> {
    let [first, second, ..] = *bytes else { return Ok(None) };
    if first & 0x70 != 0 || second & 0x80 == 0 {
        // Extensions were not negotiated; a browser masks every frame.
        return Err(close::PROTOCOL);
    }
    let (fin, opcode) = (first & 0x80 != 0, first & 0x0F);
    let control = opcode & 0x8 != 0;
    let (len, at) = match second & 0x7F {
        126 => match bytes.get(2..4) {
            Some(&[hi, lo]) => (usize::from(u16::from_be_bytes([hi, lo])), 4),
            _ => return Ok(None),
        },
        // Eight bytes of length: far more than a line, whatever they say.
        127 if control => return Err(close::PROTOCOL),
        127 => return Err(close::TOO_BIG),
        len => (usize::from(len), 2),
    };
    if control && (!fin || len > 125) {
        return Err(close::PROTOCOL);
    }
    match opcode {
        opcode::CONTINUATION | opcode::TEXT | opcode::CLOSE | opcode::PING | opcode::PONG => {}
        opcode::BINARY => return Err(close::UNSUPPORTED),
        _ => return Err(close::PROTOCOL),
    }
    if !control && len > most {
        return Err(close::TOO_BIG);
    }
    let Some(&[a, b, c, d]) = bytes.get(at..at + 4) else { return Ok(None) };
    Ok(Some(Frame { fin, opcode, len, mask: [a, b, c, d], header: at + 4 }))
}

/// Unmasks `payload`, whose first byte is byte `offset` of its frame's.
pub(crate) fn unmask(payload: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[(offset + i) % 4];
    }
}

/// The header of an unmasked server frame of `len` bytes: 2 bytes, or 4
/// from 126 on (a line is never 64 KiB).
pub(crate) fn server_header(opcode: u8, len: usize) -> ([u8; 4], usize) {
    let first = 0x80 | opcode;
    match u16::try_from(len) {
        Ok(len) if len < 126 => ([first, len as u8, 0, 0], 2),
        Ok(len) => {
            let [hi, lo] = len.to_be_bytes();
            ([first, 126, hi, lo], 4)
        }
        Err(_) => ([first, 126, 0xFF, 0xFF], 4),
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn the_accept_key_is_rfc_6455_s_example() {
        assert_eq!(&accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    fn request(lines: &[&str], origins: Option<&[&str]>) -> Option<Answer> {
        let mut request = Request::NEW;
        let mut answer = None;
        for line in lines.iter().chain(&[""]) {
            answer = request.line(line.as_bytes(), line.len() + 2, origins);
        }
        answer
    }

    const UPGRADE_HEADERS: [&str; 6] = [
        "GET /ws HTTP/1.1",
        "Host: 127.0.0.1:8080",
        "Upgrade: websocket",
        "Connection: keep-alive, Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ];

    #[test]
    fn a_browser_s_upgrade_from_the_page_s_own_origin_is_accepted() {
        let mut lines = UPGRADE_HEADERS.to_vec();
        lines.push("Origin: http://127.0.0.1:8080");
        assert_eq!(request(&lines, None), Some(Answer::Upgrade(*b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")));
        lines.push("Origin: http://evil.example");
        assert_eq!(request(&lines, None), Some(Answer::Refuse(answer::FORBIDDEN)), "the last Origin counts");
        assert!(matches!(request(&lines, Some(&["http://evil.example"])), Some(Answer::Upgrade(_))));
    }

    #[test]
    fn requests_that_are_not_a_page_or_an_upgrade_are_refused() {
        assert_eq!(request(&["GET / HTTP/1.1", "Host: x"], None), Some(Answer::Page));
        assert_eq!(request(&["GET /?x=1 HTTP/1.1"], None), Some(Answer::Page));
        assert_eq!(request(&["GET /etc/passwd HTTP/1.1"], None), Some(Answer::Refuse(answer::NOT_FOUND)));
        assert_eq!(request(&["POST / HTTP/1.1"], None), Some(Answer::Refuse(answer::METHOD)));
        assert_eq!(request(&["GET / HTTP/1.0"], None), Some(Answer::Refuse(answer::BAD_REQUEST)));
        assert_eq!(request(&["hello"], None), Some(Answer::Refuse(answer::BAD_REQUEST)));
        assert_eq!(request(&["GET /ws HTTP/1.1"], None), Some(Answer::Refuse(answer::UPGRADE)));
        assert_eq!(request(&["GET / HTTP/1.1", "bad header"], None), Some(Answer::Refuse(answer::BAD_REQUEST)));
        let mut old = UPGRADE_HEADERS.to_vec();
        old[5] = "Sec-WebSocket-Version: 8";
        assert_eq!(request(&old, None), Some(Answer::Refuse(answer::UPGRADE)));
    }

    #[test]
    fn a_request_over_the_limit_is_refused_as_it_arrives() {
        let mut request = Request::NEW;
        assert_eq!(request.line(b"GET / HTTP/1.1", 16, None), None);
        let header = [b'a'; 500];
        let mut answer = None;
        for _ in 0..20 {
            answer = answer.or(request.line(&header, 502, None));
        }
        assert_eq!(answer, Some(Answer::Refuse(answer::TOO_LARGE)));
    }

    #[test]
    fn refusals_say_their_body_s_length() {
        for response in [
            answer::BAD_REQUEST,
            answer::FORBIDDEN,
            answer::NOT_FOUND,
            answer::METHOD,
            answer::TIMEOUT,
            answer::UPGRADE,
            answer::TOO_LARGE,
        ] {
            let text = core::str::from_utf8(response).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            let length = head.rsplit_once("Content-Length: ").unwrap().1;
            assert_eq!(length.parse::<usize>().unwrap(), body.len(), "{head}");
        }
    }

    #[test]
    fn frame_headers_are_checked_before_their_payload_is_read() {
        let masked_text = [0x81, 0x85, 1, 2, 3, 4];
        assert_eq!(
            frame(&masked_text, 512),
            Ok(Some(Frame { fin: true, opcode: opcode::TEXT, len: 5, mask: [1, 2, 3, 4], header: 6 }))
        );
        assert_eq!(frame(&masked_text[..5], 512), Ok(None));
        assert_eq!(frame(&[0x81, 0x05], 512), Err(close::PROTOCOL), "unmasked");
        assert_eq!(frame(&[0x82, 0x85], 512), Err(close::UNSUPPORTED), "binary");
        assert_eq!(frame(&[0x81, 0xFE, 0x02, 0x01], 512), Err(close::TOO_BIG), "513 bytes");
        assert_eq!(frame(&[0x81, 0xFF], 512), Err(close::TOO_BIG));
        assert_eq!(frame(&[0x09, 0x80], 512), Err(close::PROTOCOL), "a fragmented ping");
        assert_eq!(frame(&[0x83, 0x80], 512), Err(close::PROTOCOL), "a reserved opcode");
        assert_eq!(frame(&[0xC1, 0x80], 512), Err(close::PROTOCOL), "an extension bit");
    }

    #[test]
    fn server_headers_use_the_short_form_below_126() {
        assert_eq!(server_header(opcode::TEXT, 5), ([0x81, 5, 0, 0], 2));
        assert_eq!(server_header(opcode::TEXT, 300), ([0x81, 126, 1, 44], 4));
        let mut payload = *b"Hello";
        unmask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(payload, [0x7f, 0x9f, 0x4d, 0x51, 0x58], "RFC 6455 5.7's example, masked");
    }
}
