//! The client side of the web dialect, by hand: the HTTP upgrade to a
//! WebSocket (RFC 6455), masked text frames out, and the server's frames
//! turned back into lines, so the rest of the bench reads a browser's
//! stream as it reads a line client's.
//!
//! The server sends each line as one text frame without its `\n`; the
//! decoder ends every text message with one, and the line dialect's
//! markers and splitting then apply unchanged.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use base64::Engine as _;
use memchr::memmem;

/// The GUID RFC 6455 appends to the key before hashing it.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The longest response head the decoder waits for before giving up.
const MAX_HEAD: usize = 8192;

/// The longest frame the decoder waits for: the room's are a line each.
const MAX_FRAME: usize = 1 << 20;

/// The frames' opcodes (RFC 6455, 5.2).
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// Masks and keys: random enough for a client (xorshift64*, seeded from
/// the process's hash seed), not for secrets.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded differently in every process.
    pub fn new() -> Rng {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(std::process::id().into());
        Rng(hasher.finish() | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A frame's masking key.
    pub fn mask(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_le_bytes()
    }

    /// A `Sec-WebSocket-Key`: 16 random bytes in base64.
    pub fn key(&mut self) -> String {
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}

impl Default for Rng {
    fn default() -> Self {
        Rng::new()
    }
}

/// The `Sec-WebSocket-Accept` a server must answer `key` with.
pub fn accept_for(key: &str) -> String {
    let mut sha1 = sha1_smol::Sha1::new();
    sha1.update(key.as_bytes());
    sha1.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha1.digest().bytes())
}

/// The upgrade request for the room's WebSocket on `host` (the server's
/// `ADDRESS:PORT`), with `key`. No `Origin`: the bench is not a page.
pub fn request(host: &str, key: &str) -> Vec<u8> {
    format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        chat_core::web::WS_PATH
    )
    .into_bytes()
}

/// Appends `payload` as one masked, final text frame.
pub fn text_frame(out: &mut Vec<u8>, payload: &[u8], mask: [u8; 4]) {
    frame(out, TEXT, payload, mask);
}

fn frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    match payload.len() {
        len @ 0..=125 => out.push(0x80 | len as u8),
        len @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, &b)| b ^ mask[i % 4]));
}

/// One WebSocket client's receiving side: the upgrade's answer, then the
/// server's frames.
pub struct Receiver {
    /// What `Sec-WebSocket-Accept` must say.
    accept: String,
    upgraded: bool,
    /// Received bytes not decoded yet.
    raw: Vec<u8>,
    /// Whether the text message being received has had bytes.
    in_message: bool,
}

/// What a server sent that a client cannot go on with.
#[derive(Debug, PartialEq, Eq)]
pub enum Broken {
    /// The upgrade was answered with something else than a `101` with the
    /// right accept key (a refusal: `503` when the room is full).
    Refused(Vec<u8>),
    /// A frame against RFC 6455 as the room speaks it (masked, binary,
    /// reserved bits, an unknown opcode).
    Frame(String),
}

impl Receiver {
    /// A receiver for a client that sent `key`.
    pub fn new(key: &str) -> Receiver {
        Receiver { accept: accept_for(key), upgraded: false, raw: Vec::new(), in_message: false }
    }

    /// Takes bytes from the socket; appends the text they complete to
    /// `lines` (each message ending in `\n`) and the pongs that pings need
    /// to `replies`. Returns whether the server sent a close frame.
    pub fn receive(
        &mut self,
        data: &[u8],
        lines: &mut Vec<u8>,
        replies: &mut Vec<u8>,
        rng: &mut Rng,
    ) -> Result<bool, Broken> {
        self.raw.extend_from_slice(data);
        if !self.upgraded {
            let Some(end) = memmem::find(&self.raw, b"\r\n\r\n") else {
                if self.raw.len() > MAX_HEAD {
                    return Err(Broken::Refused(std::mem::take(&mut self.raw)));
                }
                return Ok(false);
            };
            let head = &self.raw[..end + 2];
            let accept = format!("\r\nsec-websocket-accept: {}\r\n", self.accept);
            let lower = head.to_ascii_lowercase();
            let accepted = head.starts_with(b"HTTP/1.1 101 ")
                && memmem::find(&lower, accept.to_ascii_lowercase().as_bytes()).is_some()
                && memmem::find(&lower, b"\r\nupgrade: websocket\r\n").is_some();
            if !accepted {
                return Err(Broken::Refused(std::mem::take(&mut self.raw)));
            }
            self.raw.drain(..end + 4);
            self.upgraded = true;
        }
        let mut at = 0;
        let mut closed = false;
        while let Some((opcode, fin, payload)) = next_frame(&self.raw[at..])? {
            let (start, len) = payload;
            let body = &self.raw[at + start..at + start + len];
            match opcode {
                TEXT | CONTINUATION => {
                    if opcode == TEXT && self.in_message {
                        return Err(Broken::Frame("a text frame inside a fragmented message".into()));
                    }
                    lines.extend_from_slice(body);
                    self.in_message = !fin;
                    if fin {
                        lines.push(b'\n');
                    }
                }
                PING => frame(replies, PONG, body, rng.mask()),
                PONG => {}
                CLOSE => closed = true,
                other => return Err(Broken::Frame(format!("opcode {other:#x}"))),
            }
            at += start + len;
        }
        self.raw.drain(..at);
        Ok(closed)
    }
}

/// The frame at the start of `bytes`, if it is all there: its opcode,
/// whether it is final, and where its payload is (offset, length).
type Parsed = (u8, bool, (usize, usize));

fn next_frame(bytes: &[u8]) -> Result<Option<Parsed>, Broken> {
    let [first, second, ..] = *bytes else { return Ok(None) };
    if first & 0x70 != 0 {
        return Err(Broken::Frame(format!("reserved bits in {first:#04x}")));
    }
    if second & 0x80 != 0 {
        return Err(Broken::Frame("a masked frame from the server".into()));
    }
    let (len, at) = match second & 0x7F {
        126 => match bytes.get(2..4) {
            Some(&[hi, lo]) => (usize::from(u16::from_be_bytes([hi, lo])), 4),
            _ => return Ok(None),
        },
        127 => match bytes.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(len) => (usize::try_from(u64::from_be_bytes(len)).unwrap_or(usize::MAX), 10),
            None => return Ok(None),
        },
        len => (usize::from(len), 2),
    };
    if len > MAX_FRAME {
        return Err(Broken::Frame(format!("a frame of {len} bytes")));
    }
    if bytes.len() - at < len {
        return Ok(None);
    }
    Ok(Some((first & 0x0F, first & 0x80 != 0, (at, len))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6455's own example, section 1.3.
    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn upgraded() -> Receiver {
        let mut receiver = Receiver::new(KEY);
        let head = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n");
        let (mut lines, mut replies) = (Vec::new(), Vec::new());
        assert_eq!(receiver.receive(head.as_bytes(), &mut lines, &mut replies, &mut Rng::new()), Ok(false));
        assert!(receiver.upgraded && lines.is_empty() && replies.is_empty());
        receiver
    }

    #[test]
    fn the_accept_key_is_rfc_6455_s_example() {
        assert_eq!(accept_for(KEY), ACCEPT);
        let key = Rng::new().key();
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(&key).map(|k| k.len()), Ok(16), "{key}");
    }

    #[test]
    fn the_request_is_an_upgrade_of_the_room_s_path() {
        assert_eq!(
            request("127.0.0.1:8080", KEY),
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
    }

    #[test]
    fn text_frames_are_masked() {
        // RFC 6455, 5.7: a masked "Hello".
        let mut out = Vec::new();
        text_frame(&mut out, b"Hello", [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(out, [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
        let mut long = Vec::new();
        text_frame(&mut long, &[b'x'; 300], [0; 4]);
        assert_eq!(long[..8], [0x81, 0xFE, 0x01, 0x2C, 0, 0, 0, 0]);
        assert_eq!(long.len(), 8 + 300);
    }

    #[test]
    fn frames_become_lines_however_they_are_cut() {
        let mut stream = vec![0x81, 4];
        stream.extend_from_slice(b"NICK");
        stream.extend_from_slice(&[0x81, 0x7E, 0x00, 0x7E]);
        stream.extend_from_slice(&[b'y'; 126]);
        // A fragmented message, and a ping in between.
        stream.extend_from_slice(&[0x01, 2, b'a', b'b', 0x89, 1, b'!', 0x80, 1, b'c']);
        let mut want = b"NICK\n".to_vec();
        want.extend_from_slice(&[b'y'; 126]);
        want.extend_from_slice(b"\nabc\n");
        for cut in 1..stream.len() {
            let mut receiver = upgraded();
            let (mut lines, mut replies, mut rng) = (Vec::new(), Vec::new(), Rng::new());
            for part in stream.chunks(cut) {
                assert_eq!(receiver.receive(part, &mut lines, &mut replies, &mut rng), Ok(false));
            }
            assert_eq!(lines, want, "cut every {cut} bytes");
            assert_eq!(replies[..2], [0x8A, 0x81], "a masked pong of one byte");
            assert_eq!(replies[6] ^ replies[2], b'!');
        }
        let mut receiver = upgraded();
        let (mut lines, mut replies) = (Vec::new(), Vec::new());
        assert_eq!(receiver.receive(&[0x88, 2, 0x03, 0xE8], &mut lines, &mut replies, &mut Rng::new()), Ok(true));
    }

    #[test]
    fn a_refusal_or_a_broken_frame_is_an_error() {
        let full = chat_core::wire::WEB_ROOM_FULL;
        let mut receiver = Receiver::new(KEY);
        let got = receiver.receive(full, &mut Vec::new(), &mut Vec::new(), &mut Rng::new());
        assert_eq!(got, Err(Broken::Refused(full.to_vec())));
        let wrong_key = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: x\r\n\r\n";
        let got = Receiver::new(KEY).receive(wrong_key.as_bytes(), &mut Vec::new(), &mut Vec::new(), &mut Rng::new());
        assert!(matches!(got, Err(Broken::Refused(_))), "{got:?}");
        let huge = [0x81, 127, 0, 0, 0, 0, 0x10, 0, 0, 1];
        let got = upgraded().receive(&huge, &mut Vec::new(), &mut Vec::new(), &mut Rng::new());
        assert_eq!(got, Err(Broken::Frame("a frame of 268435457 bytes".into())));
        for frame in [[0x81, 0x81, 0, 0, 0, 0, b'x'], [0x82, 1, b'x', 0, 0, 0, 0], [0xC1, 1, b'x', 0, 0, 0, 0]] {
            let got = upgraded().receive(&frame, &mut Vec::new(), &mut Vec::new(), &mut Rng::new());
            assert!(matches!(got, Err(Broken::Frame(_))), "{frame:?}: {got:?}");
        }
    }
}
