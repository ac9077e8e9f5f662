//! The bench's message format: how a message is written, and how a
//! receiver's stream is cut into entries and each entry judged.
//!
//! Every message is self-delimiting, `[{nick} {seq} {micros} ....{check}]`
//! padded with dots to exactly `size` bytes: `{nick}` is its sender, `{seq}`
//! counts from 0, `{micros}` is when it was written, in microseconds since the
//! bench started (one process, one clock), and `{check}` is four hex digits
//! of a hash of the three, so that the head of one message spliced to the
//! tail of another (a server relaying raw chunks can do that) does not pass
//! for a message. Its only `]` is its last byte, so a stream of
//! `{nick}: [payload]` entries splits at each `]` whether or not the server
//! puts a `\n` between them: seed-dialect clients receive no terminators, and
//! the tutorial's server relays raw chunks.

use std::io::Write as _;

use memchr::memmem;

/// Hex digits of a message's check.
const CHECK: usize = 4;

/// Bytes of a run's tag (see [`Names::new`]).
const TAG: usize = 5;

/// One message, as its payload says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    /// The sender's client index.
    pub sender: usize,
    /// Its number among the sender's messages, from 0.
    pub seq: usize,
    /// When it was written, in microseconds since the bench started.
    pub micros: u64,
}

/// This run's nicknames: a tag, then the client's index.
#[derive(Clone, Debug)]
pub struct Names {
    tag: String,
    clients: usize,
}

impl Names {
    /// Names for `clients` clients under a tag unique enough to keep this
    /// run's nicknames apart from anyone else's in the room: `b`, three
    /// base-36 characters, `_`.
    pub fn new(clients: usize) -> Names {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let mut x = (u64::from(std::process::id()) << 20 ^ u64::from(nanos)) % (36 * 36 * 36);
        let mut tag = String::from("b");
        for _ in 0..3 {
            tag.push(char::from_digit((x % 36) as u32, 36).unwrap_or('0'));
            x /= 36;
        }
        tag.push('_');
        Names::with_tag(tag, clients)
    }

    /// Names under a given tag (tests need a fixed one).
    pub fn with_tag(tag: String, clients: usize) -> Names {
        Names { tag, clients }
    }

    /// The run's tag, the prefix of every nickname.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Client `i`'s nickname.
    pub fn nick(&self, i: usize) -> String {
        format!("{}{i}", self.tag)
    }

    /// The client index a nickname of this run stands for.
    pub fn index_of(&self, nick: &[u8]) -> Option<usize> {
        let digits = nick.strip_prefix(self.tag.as_bytes()).filter(|d| !d.is_empty())?;
        let n = parse_dec(digits)? as usize;
        (n < self.clients).then_some(n)
    }
}

/// Writes and reads the payloads of one run: its names, message size, and
/// how many speakers and messages there are.
#[derive(Clone, Debug)]
pub struct Format {
    pub names: Names,
    pub size: usize,
    pub speakers: usize,
    pub messages: usize,
}

/// What one `]`-terminated entry of a receiver's stream turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// An intact message under its sender's `{nick}: ` prefix.
    Intact(Message),
    /// An intact message under another nickname.
    Misattributed,
    /// Something that looks like a message but is not one: cut, spliced,
    /// of the wrong length, or from no speaker of this run.
    Torn,
}

impl Format {
    /// Appends message `seq` of `sender`, written at `micros`, padded to the
    /// run's size.
    pub fn write(&self, out: &mut Vec<u8>, sender: usize, seq: usize, micros: u64) {
        let at = out.len();
        let _ = write!(out, "[{} {seq} {micros} ", self.names.nick(sender));
        let used = out.len() - at;
        out.resize(at + self.size.max(used + CHECK + 1) - CHECK - 1, b'.');
        let _ = write!(out, "{:04x}]", check(sender, seq, micros));
    }

    /// `[{nick} {seq} {micros} ....{check}]` of exactly the run's size, from
    /// a speaker of this run.
    pub fn parse(&self, payload: &[u8]) -> Option<Message> {
        if payload.len() != self.size {
            return None;
        }
        let inner = payload.strip_prefix(b"[")?.strip_suffix(b"]")?;
        let mut fields = inner.splitn(4, |&b| b == b' ');
        let sender = self.names.index_of(fields.next()?)?;
        let seq = parse_dec(fields.next()?)? as usize;
        let micros = parse_dec(fields.next()?)?;
        let rest = fields.next()?;
        let (padding, sum) = rest.split_at(rest.len().checked_sub(CHECK)?);
        // Compared a chunk at a time: the padding is most of every payload.
        const DOTS: [u8; 64] = [b'.'; 64];
        let ok = sender < self.speakers
            && seq < self.messages
            && padding.chunks(DOTS.len()).all(|chunk| *chunk == DOTS[..chunk.len()])
            && parse_hex(sum) == Some(check(sender, seq, micros));
        ok.then_some(Message { sender, seq, micros })
    }

    /// Judges one entry ending in `]`: `{nick}: [payload]`. Also returns
    /// whatever was glued on before the nickname (a notice, a broken
    /// message), to be counted as a line of its own; empty when there is
    /// none.
    pub fn judge<'a>(&self, entry: &'a [u8]) -> (&'a [u8], Verdict) {
        let Some(open) = memchr::memrchr(b'[', entry) else {
            return (&[], Verdict::Torn);
        };
        let (head, payload) = entry.split_at(open);
        let Some(head) = head.strip_suffix(b": ") else {
            return (&[], Verdict::Torn);
        };
        // The nickname is this run's tag and digits before `: ` (else the
        // run of nickname characters there); anything before it was glued
        // on.
        let nick_start = match memmem::rfind(head, self.names.tag.as_bytes()) {
            Some(at) => at,
            None => head.iter().rposition(|&b| !(b.is_ascii_alphanumeric() || b == b'_')).map_or(0, |at| at + 1),
        };
        let (junk, prefix) = head.split_at(nick_start);
        let verdict = match self.parse(payload) {
            None => Verdict::Torn,
            Some(message) if self.names.index_of(prefix) == Some(message.sender) => Verdict::Intact(message),
            Some(_) => Verdict::Misattributed,
        };
        (junk, verdict)
    }
}

/// The smallest message size that holds the fields of a run with `clients`
/// nicknames, `messages` per speaker and timestamps up to `max_micros`.
pub fn min_size(clients: usize, messages: usize, max_micros: u64) -> usize {
    let nick = TAG + digits(clients.saturating_sub(1) as u64);
    let seq = digits(messages.saturating_sub(1) as u64);
    let micros = digits(max_micros);
    1 + nick + 1 + seq + 1 + micros + 1 + CHECK + 1
}

/// One piece of a receiver's stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Bytes up to and including a `]`: an entry to [`Format::judge`].
    Entry(&'a [u8]),
    /// A whole line with no `]` (without its `\n`): a notice, or a message
    /// cut short.
    Line(&'a [u8]),
    /// More bytes with neither `]` nor `\n` than any entry has: dropped
    /// whole rather than waited on forever.
    Overlong(&'a [u8]),
}

/// Cuts a receiver's stream into [`Piece`]s; what is left at the end (the
/// start of an entry) is for the next read, from [`Pieces::used`] on.
pub struct Pieces<'a> {
    data: &'a [u8],
    pos: usize,
    longest: usize,
}

impl<'a> Pieces<'a> {
    /// Pieces of `data`, where no entry is longer than `longest` bytes.
    pub fn new(data: &'a [u8], longest: usize) -> Pieces<'a> {
        Pieces { data, pos: 0, longest }
    }

    /// Bytes consumed by the pieces returned so far.
    pub fn used(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Pieces<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        while self.data.get(self.pos) == Some(&b'\n') {
            self.pos += 1;
        }
        let rest = &self.data[self.pos..];
        let Some(end) = memchr::memchr2(b']', b'\n', rest) else {
            if rest.len() > self.longest {
                self.pos = self.data.len();
                return Some(Piece::Overlong(rest));
            }
            return None;
        };
        self.pos += end + 1;
        Some(if rest[end] == b'\n' { Piece::Line(&rest[..end]) } else { Piece::Entry(&rest[..=end]) })
    }
}

fn digits(mut n: u64) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// Decimal digits only, at most 19 of them.
fn parse_dec(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 19 {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &b| b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0')))
}

/// Exactly four lowercase hex digits.
fn parse_hex(bytes: &[u8]) -> Option<u16> {
    if bytes.len() != CHECK {
        return None;
    }
    bytes.iter().try_fold(0u16, |n, &b| {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        Some(n << 4 | u16::from(digit))
    })
}

/// A message's check: 16 bits of a hash of its sender, number and time.
fn check(sender: usize, seq: usize, micros: u64) -> u16 {
    let x = (sender as u64) << 44 ^ (seq as u64) << 24 ^ micros;
    (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format() -> Format {
        Format { names: Names::with_tag("bxyz_".into(), 20), size: 40, speakers: 10, messages: 100 }
    }

    #[test]
    fn a_message_round_trips_at_exactly_its_size() {
        let format = format();
        let mut out = b"junk".to_vec();
        format.write(&mut out, 7, 42, 123_456);
        let payload = &out[4..];
        assert_eq!(payload.len(), 40, "{:?}", String::from_utf8_lossy(payload));
        assert_eq!(payload.iter().filter(|&&b| b == b']').count(), 1, "only its last byte is `]`");
        assert_eq!(format.parse(payload), Some(Message { sender: 7, seq: 42, micros: 123_456 }));
    }

    #[test]
    fn a_spliced_or_resized_message_does_not_parse() {
        let format = format();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        format.write(&mut a, 1, 5, 1000);
        format.write(&mut b, 2, 5, 1000);
        let mut spliced = a[..20].to_vec();
        spliced.extend_from_slice(&b[20..]);
        assert_eq!(format.parse(&spliced), None);
        assert_eq!(format.parse(&a[1..]), None);
        // Senders past the speakers and numbers past the messages are not
        // this run's.
        let mut c = Vec::new();
        format.write(&mut c, 12, 0, 0);
        assert_eq!(format.parse(&c), None);
    }

    #[test]
    fn entries_are_judged_by_their_prefix() {
        let format = format();
        let mut entry = b"*** notice\nbxyz_3: ".to_vec();
        format.write(&mut entry, 3, 0, 9);
        let (junk, verdict) = format.judge(&entry);
        assert_eq!(junk, b"*** notice\n");
        assert_eq!(verdict, Verdict::Intact(Message { sender: 3, seq: 0, micros: 9 }));

        let mut wrong = b"bxyz_4: ".to_vec();
        format.write(&mut wrong, 3, 0, 9);
        assert_eq!(format.judge(&wrong), (&b""[..], Verdict::Misattributed));
        assert_eq!(format.judge(b"bxyz_3 [x]").1, Verdict::Torn);
        assert_eq!(format.judge(b"no bracket]").1, Verdict::Torn);
    }

    #[test]
    fn a_stream_splits_at_each_entry_and_keeps_the_rest() {
        let data = b"a: [x]b: [y]\n\n*** hi\nc: [z";
        let mut pieces = Pieces::new(data, 100);
        assert_eq!(pieces.next(), Some(Piece::Entry(b"a: [x]")));
        assert_eq!(pieces.next(), Some(Piece::Entry(b"b: [y]")));
        assert_eq!(pieces.next(), Some(Piece::Line(b"*** hi")));
        assert_eq!(pieces.next(), None);
        assert_eq!(&data[pieces.used()..], b"c: [z");
        let mut long = Pieces::new(b"0123456789", 4);
        assert_eq!(long.next(), Some(Piece::Overlong(b"0123456789")));
        assert_eq!(long.used(), 10);
    }

    #[test]
    fn names_map_back_to_indices() {
        let names = Names::with_tag("bxyz_".into(), 20);
        assert_eq!(names.index_of(names.nick(19).as_bytes()), Some(19));
        assert_eq!(names.index_of(b"bxyz_20"), None);
        assert_eq!(names.index_of(b"bxyz_"), None);
        assert_eq!(names.index_of(b"bxyq_1"), None);
        let tag = Names::new(1).tag;
        assert_eq!(tag.len(), TAG);
        assert!(tag.starts_with('b') && tag.ends_with('_'));
        assert!(tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    }

    #[test]
    fn numbers_parse_strictly() {
        assert_eq!(parse_dec(b"0"), Some(0));
        assert_eq!(parse_dec(b"1234"), Some(1234));
        assert_eq!(parse_dec(b""), None);
        assert_eq!(parse_dec(b"+1"), None);
        assert_eq!(parse_dec(b"1a"), None);
        assert_eq!(digits(0), 1);
        assert_eq!(digits(99), 2);
        assert_eq!(digits(100), 3);
    }

    #[test]
    fn checks_round_trip_and_differ() {
        let sum = check(4, 14, 74174);
        assert_eq!(parse_hex(format!("{sum:04x}").as_bytes()), Some(sum));
        assert_ne!(check(4, 14, 74174), check(3, 14, 74174));
        assert_eq!(parse_hex(b"00ff"), Some(255));
        assert_eq!(parse_hex(b"00FF"), None);
        assert_eq!(parse_hex(b"0ff"), None);
    }

    #[test]
    fn min_size_fits_the_largest_fields() {
        let format = Format { size: min_size(20, 100, 999_999), speakers: 20, ..format() };
        let mut out = Vec::new();
        format.write(&mut out, 19, 99, 999_999);
        assert_eq!(out.len(), format.size);
        assert!(format.parse(&out).is_some());
    }
}
