//! The wire vocabulary: every fixed text and number that a client and a
//! server must agree on, in one place.
//!
//! The server (`Room`), `chat-client`, the load generator and the fuzz
//! harness all take these from here, so the bytes on the wire have one
//! source. `PROTOCOL.md` at the repository root shows them in context;
//! tests keep literal copies on purpose, as an independent check.
//!
//! Texts come as `&[u8]` when they go on the wire as they are, and as
//! `&str` when they are pieces of a line a client may want to match.

/// The first bytes on every connection, with no terminator. The tutorial's
/// client answers them with its nickname; a line client with its nickname
/// and `\n`.
pub const GREETING: &[u8] = GREETING_TEXT.as_bytes();

/// [`GREETING`] as text, for clients that match lines.
pub const GREETING_TEXT: &str = "NICK";

/// What a newcomer is told, after its own `{nick} joined!`, once it is in
/// the room: from here on it may chat.
pub const CONNECTED: &str = "Connected to server!";

/// What follows a nickname when its owner joins: `alice joined!`.
pub const JOINED: &str = " joined!";

/// What follows a nickname when its owner leaves: `alice left!`, or
/// `alice left! (reason)` after `/quit reason`.
pub const LEFT: &str = " left!";

/// Between a nickname and its text in a chat line: `alice: hi`.
pub const SAID: &str = ": ";

/// How every server notice starts. A nickname cannot start with `*`, so no
/// notice can ever parse as `{nick}: {text}`.
pub const NOTICE: &str = "*** ";

/// What a newcomer gets when every slot is taken, before the server closes
/// the connection. It has no slot in the room, so the frontend sends it.
pub const ROOM_FULL: &[u8] = b"*** the room is full, try again later\n";

/// What a client that reads more slowly than the room talks gets before it
/// is disconnected: the lines it had not read are gone.
pub const TOO_SLOW: &[u8] = b"*** disconnected: you read more slowly than the room talks and missed lines\n";

/// What everyone gets when the server shuts down.
pub const SHUTDOWN: &[u8] = b"*** the server is shutting down\n";

/// What a client gets, once per episode, when flood control starts holding
/// its lines. They are not dropped: they go out as its bucket refills.
pub const SLOW_DOWN: &[u8] =
    b"*** slow down: you are sending faster than the room allows; your lines are held, not lost\n";

/// What every client of a server in a room spanning several servers is
/// told when the servers lose touch (the broker is unreachable): nothing
/// is shown or lost meanwhile.
pub const CLUSTER_PAUSED: &[u8] =
    b"*** the room is paused: this server lost touch with the others; your lines wait and go out when it is back\n";

/// What they are told when it is back, before the lines they missed.
pub const CLUSTER_RESUMED: &[u8] = b"*** the room is back\n";

/// What a client is told when the other servers saw it leave: its server
/// was out of touch with them for too long. Then it is closed.
pub const CLUSTER_LOST: &str =
    "*** the other servers lost touch with this one and saw you leave; closing: connect again";

/// What a connection from a banned address gets before the frontend closes
/// it. It has no slot in the room, so the frontend sends it.
pub const BANNED: &[u8] = b"*** you are banned from this room\n";

/// What a browser on the web listener gets when every slot is taken, before
/// the frontend closes the connection.
pub const WEB_ROOM_FULL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 38\r\nRetry-After: 10\r\nConnection: close\r\n\r\n*** the room is full, try again later\n";

/// What a browser from a banned address gets, before the frontend closes
/// the connection.
pub const WEB_BANNED: &[u8] = b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 34\r\nConnection: close\r\n\r\n*** you are banned from this room\n";

/// What a TLS client that came to a plain-text port gets before the room
/// closes the connection (its first bytes were a TLS handshake record),
/// rather than joining under a nickname made of its ClientHello.
pub const NOT_TLS: &[u8] = b"*** this port speaks plain text, not TLS\n";

/// What a client is asked after its nickname when the room has a password:
/// its next line is the password.
pub const PASSWORD_ASK: &[u8] = b"*** this room has a password: send it as your next line\n";

/// What a client whose password was wrong gets, with the tries it has left
/// after it: `*** wrong password, 2 tries left`.
pub const WRONG_PASSWORD: &str = "*** wrong password";

/// How many wrong passwords (to join, or to `/op`) a connection may send.
pub const PASSWORD_TRIES: u8 = 3;

/// What ends the lines a newcomer is replayed from before it joined; they
/// start with `*** history: the last {n} lines of the room`. A bot can skip
/// what is between the two.
pub const HISTORY_END: &[u8] = b"*** end of history\n";

/// How many of the room's last lines a newcomer is replayed by default.
pub const DEFAULT_HISTORY: u16 = 20;

/// The longest line a client may send, in bytes, without its terminator.
/// RFC 1459's 512 is what chat software and its users expect.
pub const MAX_LINE: usize = 512;

/// The tutorial's port, the default of every program here.
pub const DEFAULT_PORT: u16 = 55555;

/// The tutorial's address: loopback, so a first run is not on the network.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:55555";

/// How a client frames what it sends and what it is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Dialect {
    /// Not known yet: the nickname has not arrived.
    Unknown,
    /// `\n`-terminated UTF-8 lines both ways (nc, telnet, `chat-client`).
    Line,
    /// The tutorial's client: one message per `send`, prefixed with its own
    /// `{nick}: `; it is sent ASCII without terminators.
    Seed,
    /// A browser on the web listener: an HTTP request, then a WebSocket
    /// with one text frame per line both ways.
    Web,
}

impl Dialect {
    /// Its name on command lines and in reports: `line`, `seed`, `web`
    /// (`unknown` before the nickname).
    pub const fn name(self) -> &'static str {
        match self {
            Dialect::Unknown => "unknown",
            Dialect::Line => "line",
            Dialect::Seed => "seed",
            Dialect::Web => "web",
        }
    }
}

impl core::str::FromStr for Dialect {
    type Err = UnknownDialect;

    /// `line`, `seed` or `web`.
    fn from_str(name: &str) -> Result<Dialect, UnknownDialect> {
        [Dialect::Line, Dialect::Seed, Dialect::Web].into_iter().find(|d| d.name() == name).ok_or(UnknownDialect)
    }
}

/// A dialect's name that is none of `line`, `seed`, `web`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownDialect;

impl core::fmt::Display for UnknownDialect {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("not a dialect: `line`, `seed` or `web`")
    }
}

/// A seed-dialect client's view of UTF-8 text: one byte per character, `?`
/// for anything that is not ASCII (the tutorial's client decodes ASCII and
/// dies on anything else).
pub fn seed_ascii(text: &[u8]) -> impl Iterator<Item = u8> + '_ {
    text.iter().filter(|&&b| b & 0xC0 != 0x80).map(|&b| if b.is_ascii() { b } else { b'?' })
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn dialects_are_named_both_ways() {
        for dialect in [Dialect::Line, Dialect::Seed, Dialect::Web] {
            assert_eq!(dialect.name().parse(), Ok(dialect));
        }
        assert_eq!("unknown".parse::<Dialect>(), Err(UnknownDialect));
    }

    #[test]
    fn seed_ascii_is_one_byte_per_character() {
        let shown: heapless::Vec<u8, 16> = seed_ascii("Zoë ☃!".as_bytes()).collect();
        assert_eq!(&shown[..], b"Zo? ?!");
    }

    #[test]
    fn web_refusals_say_their_body_s_length() {
        for (response, body) in [(WEB_ROOM_FULL, ROOM_FULL), (WEB_BANNED, BANNED)] {
            let text = core::str::from_utf8(response).unwrap();
            let (head, rest) = text.split_once("\r\n\r\n").unwrap();
            assert_eq!(rest.as_bytes(), body);
            let mut length = heapless::String::<32>::new();
            core::fmt::write(&mut length, format_args!("Content-Length: {}\r\n", body.len())).unwrap();
            assert!(head.contains(length.trim_end()), "{head}");
        }
    }

    #[test]
    fn notices_end_in_a_newline_and_cannot_parse_as_chat() {
        for notice in [ROOM_FULL, TOO_SLOW, SHUTDOWN, SLOW_DOWN, HISTORY_END, BANNED, PASSWORD_ASK, NOT_TLS] {
            assert!(notice.starts_with(NOTICE.as_bytes()) && notice.ends_with(b"\n"));
        }
    }
}
