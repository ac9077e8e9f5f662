//! The room's shared log: every line the server sends, stored once.
//!
//! Lines get consecutive sequence numbers. Each one's bytes sit contiguously
//! in a byte ring (a line never wraps; the tail end that is too short is
//! skipped), with a small index entry saying where and for whom. A client
//! reads the log through its own [`Cursor`], so a broadcast costs one copy
//! whatever the number of recipients, and consecutive lines are one
//! contiguous slice that goes out in one write.
//!
//! The ring never blocks the writer: when a new line needs space, the oldest
//! lines are dropped, and the room disconnects any client that had not read
//! them yet (see `Room::push`).

use crate::room::ClientId;

/// Who a line is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recipient {
    /// Every client in the room from the line on (a broadcast).
    Everyone,
    /// One client only: a notice, a reply, a private message.
    One(ClientId),
    /// Every client in the room from the line on, as a server notice: not
    /// part of the room's history (a member room's pause and resume).
    Notice,
    /// No client: something a member room asks of the world outside
    /// (`crate::cluster::Outgoing`), read by the room's outbox.
    Cluster,
}

/// One index entry of the log: where a line's bytes are and who may read
/// it. An opaque storage cell, as smoltcp's `SocketStorage` is: callers
/// allocate these (see [`crate::Storage`]) but never look inside.
#[derive(Clone, Copy, Debug)]
pub struct LineStorage {
    /// Absolute byte offset of the line's first byte (position = start % len).
    start: u64,
    len: u16,
    to: Recipient,
}

/// The index entry as the ring reads it.
pub(crate) type Line = LineStorage;

impl LineStorage {
    /// An unused entry, for initialising storage.
    pub const EMPTY: LineStorage = LineStorage { start: 0, len: 0, to: Recipient::Everyone };

    /// Who the line is for.
    pub(crate) fn to(self) -> Recipient {
        self.to
    }

    /// Its length in bytes, `\n` included.
    pub(crate) fn len(self) -> usize {
        usize::from(self.len)
    }
}

/// Where a client is in the log: the next line it has to send, and how many
/// bytes of that line's wire form already went out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub seq: u64,
    pub sent: u16,
    /// Seed dialect only: the line's wire form starts with a `\n` separator
    /// (it was not the first line of its write).
    pub sep: bool,
}

impl Cursor {
    /// At the start of line `seq`.
    pub const fn at(seq: u64) -> Cursor {
        Cursor { seq, sent: 0, sep: false }
    }

    /// Whether a line is partly sent: the cursor cannot skip past it.
    pub fn in_line(self) -> bool {
        self.sent > 0
    }

    /// Counts `n` bytes of the current line (`len` bytes long on the wire)
    /// as sent; past its end the cursor moves to the next line. Returns the
    /// bytes of `n` beyond this line.
    pub fn advance(&mut self, n: usize, len: usize) -> usize {
        let rest = len.saturating_sub(usize::from(self.sent));
        if n >= rest {
            *self = Cursor::at(self.seq + 1);
            n - rest
        } else {
            // `sent + n` is below `len`, a line's length: it fits a u16.
            self.sent += n as u16;
            0
        }
    }
}

pub(crate) struct Ring<'a> {
    lines: &'a mut [Line],
    bytes: &'a mut [u8],
    /// Sequence number of the oldest line kept.
    first: u64,
    /// Sequence number the next line gets.
    next: u64,
    /// Absolute byte offset where the next line's bytes would go.
    end: u64,
}

impl<'a> Ring<'a> {
    pub fn new(lines: &'a mut [Line], bytes: &'a mut [u8]) -> Self {
        Ring { lines, bytes, first: 0, next: 0, end: 0 }
    }

    pub fn next(&self) -> u64 {
        self.next
    }

    /// How many bytes the log holds.
    pub fn capacity(&self) -> usize {
        self.bytes.len()
    }

    pub fn first(&self) -> u64 {
        self.first
    }

    /// The entry for a sequence number in `first..next`.
    pub fn line(&self, seq: u64) -> Line {
        self.lines[(seq % self.lines.len() as u64) as usize]
    }

    /// The bytes of a line (including its `\n`).
    pub fn text(&self, line: Line) -> &[u8] {
        let at = (line.start % self.bytes.len() as u64) as usize;
        &self.bytes[at..at + usize::from(line.len)]
    }

    /// Bytes from `line`'s `skip`th byte to the end of the run of lines
    /// `line..=last`, which must be contiguous (see [`Ring::follows`]).
    pub fn span(&self, line: Line, skip: usize, last: Line) -> &[u8] {
        let at = (line.start % self.bytes.len() as u64) as usize;
        let end = at + (last.start - line.start) as usize + usize::from(last.len);
        &self.bytes[at + skip..end]
    }

    /// Whether `b`'s bytes directly follow `a`'s in memory: `b` starts where
    /// `a` ends, and not at the start of the ring (where `a` ending at the
    /// ring's end would otherwise look contiguous with it).
    pub fn follows(&self, a: Line, b: Line) -> bool {
        a.start + u64::from(a.len) == b.start && !b.start.is_multiple_of(self.bytes.len() as u64)
    }

    /// Where a line of `len` bytes would start.
    fn place(&self, len: usize) -> u64 {
        let size = self.bytes.len() as u64;
        let at = self.end % size;
        if at + len as u64 > size {
            self.end + (size - at)
        } else {
            self.end
        }
    }

    /// The oldest sequence number that survives pushing a line of `len`
    /// bytes: lines before it are dropped by that push.
    pub fn first_after_push(&self, len: usize) -> u64 {
        let new_end = self.place(len) + len as u64;
        let size = self.bytes.len() as u64;
        let mut first = self.first;
        while first < self.next
            && (self.next + 1 - first > self.lines.len() as u64 || new_end - self.line(first).start > size)
        {
            first += 1;
        }
        first
    }

    /// Appends a line made of `parts` (at most `u16::MAX` bytes in all and
    /// no more than the ring holds) for `to`, dropping old lines as needed.
    /// Returns its sequence number.
    pub fn push(&mut self, parts: &[&[u8]], to: Recipient) -> u64 {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.first = self.first_after_push(len);
        let start = self.place(len);
        let mut at = (start % self.bytes.len() as u64) as usize;
        for part in parts {
            self.bytes[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        let seq = self.next;
        let slots = self.lines.len() as u64;
        self.lines[(seq % slots) as usize] = LineStorage { start, len: len as u16, to };
        self.next += 1;
        self.end = start + len as u64;
        seq
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn lines_are_contiguous_until_the_ring_wraps() {
        let mut lines = [Line::EMPTY; 8];
        let mut bytes = [0u8; 16];
        let mut ring = Ring::new(&mut lines, &mut bytes);
        let a = ring.push(&[b"abcde\n"], Recipient::Everyone);
        let b = ring.push(&[b"fghi\n"], Recipient::Everyone);
        let (la, lb) = (ring.line(a), ring.line(b));
        assert!(ring.follows(la, lb));
        assert_eq!(ring.span(la, 2, lb), b"cde\nfghi\n");
        // 11 bytes used; 6 more do not fit before the end: the line wraps to 0
        // and drops `a`, whose bytes it overwrites; one more byte would reach
        // `b` too.
        assert_eq!(ring.first_after_push(7), 2);
        assert_eq!(ring.first_after_push(6), 1);
        let three = ClientId::new(3).unwrap();
        let c = ring.push(&[b"ijklm", b"\n"], Recipient::One(three));
        assert_eq!(ring.first(), 1);
        assert!(!ring.follows(ring.line(b), ring.line(c)));
        assert_eq!(ring.text(ring.line(c)), b"ijklm\n");
        assert_eq!(ring.text(ring.line(b)), b"fghi\n");
        assert_eq!(ring.line(c).to(), Recipient::One(three));
    }

    #[test]
    fn index_capacity_also_bounds_the_log() {
        let mut lines = [Line::EMPTY; 2];
        let mut bytes = [0u8; 64];
        let mut ring = Ring::new(&mut lines, &mut bytes);
        for _ in 0..3 {
            ring.push(&[b"x\n"], Recipient::Everyone);
        }
        assert_eq!((ring.first(), ring.next()), (1, 3));
    }

    #[test]
    fn a_cursor_moves_line_by_line_and_remembers_a_partial_line() {
        let mut cursor = Cursor::at(7);
        assert_eq!(cursor.advance(3, 10), 0);
        assert_eq!((cursor.seq, cursor.sent, cursor.in_line()), (7, 3, true));
        assert_eq!(cursor.advance(9, 10), 2, "two bytes belong to the next line");
        assert_eq!(cursor, Cursor::at(8));
        assert!(!cursor.in_line());
    }
}
