//! A client's input buffer, and how line clients' bytes become lines.

use crate::wire::MAX_LINE;

/// The input buffer: one maximal line and its `\r\n`; or, for a browser,
/// a maximal line's WebSocket message and the next frame's header (at most
/// 8 bytes: a longer header announces more than a line, and is refused
/// from its first two bytes).
pub(crate) const INPUT: usize = MAX_LINE + 8;

/// What a client sent and the room has not handled yet.
#[derive(Clone)]
pub(crate) struct Input {
    bytes: [u8; INPUT],
    filled: u16,
    /// The rest of an overlong line (or seed message) is being skipped.
    discarding: bool,
}

/// The next thing in a line client's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framed {
    /// A whole line: its text is `data()[..len]` (no `\r\n`), and it takes
    /// `size` bytes of input. Not consumed yet: the caller may wait for a
    /// flood-control token first.
    Line { len: usize, size: usize },
    /// A line over [`MAX_LINE`] bytes began: what arrived of it is gone, and
    /// its rest will be skipped. Say so once.
    Overlong,
    /// No whole line yet.
    Partial,
}

impl Input {
    pub const EMPTY: Input = Input { bytes: [0; INPUT], filled: 0, discarding: false };

    /// The bytes not handled yet.
    pub fn data(&self) -> &[u8] {
        &self.bytes[..usize::from(self.filled)]
    }

    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    pub fn is_full(&self) -> bool {
        usize::from(self.filled) == INPUT
    }

    pub fn is_discarding(&self) -> bool {
        self.discarding
    }

    pub fn set_discarding(&mut self, discarding: bool) {
        self.discarding = discarding;
    }

    /// Where the next read goes.
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.bytes[usize::from(self.filled)..]
    }

    /// `n` bytes were read into [`Input::spare`].
    pub fn filled(&mut self, n: usize) {
        self.filled = (usize::from(self.filled) + n).min(INPUT) as u16;
    }

    /// Copies as much of `bytes` as fits; returns how much that was.
    pub fn extend(&mut self, bytes: &[u8]) -> usize {
        let spare = self.spare();
        let take = bytes.len().min(spare.len());
        spare[..take].copy_from_slice(&bytes[..take]);
        self.filled(take);
        take
    }

    /// The bytes not handled yet, to unmask in place.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[..usize::from(self.filled)]
    }

    /// Drops `n` bytes from `at` on, keeping those before and after.
    pub fn remove(&mut self, at: usize, n: usize) {
        let filled = usize::from(self.filled);
        let at = at.min(filled);
        let n = n.min(filled - at);
        self.bytes.copy_within(at + n..filled, at);
        self.filled = (filled - n) as u16;
    }

    /// Drops the first `n` bytes.
    pub fn consume(&mut self, n: usize) {
        let filled = usize::from(self.filled);
        let n = n.min(filled);
        self.bytes.copy_within(n..filled, 0);
        self.filled = (filled - n) as u16;
    }

    pub fn clear(&mut self) {
        self.filled = 0;
    }

    /// Ends an unterminated last line (the peer closed after it), if there
    /// is one and room for its `\n`.
    pub fn terminate(&mut self) {
        if !self.is_empty() && !self.is_full() {
            self.extend(b"\n");
        }
    }

    /// The next line of a line client, skipping the tail of an overlong one.
    pub fn next_line(&mut self) -> Framed {
        loop {
            let Some(end) = self.data().iter().position(|&b| b == b'\n') else {
                if !self.is_full() {
                    return Framed::Partial;
                }
                // No terminator in a full buffer: the line is too long.
                let first = !self.discarding;
                self.discarding = true;
                self.clear();
                return if first { Framed::Overlong } else { Framed::Partial };
            };
            if self.discarding {
                self.discarding = false;
                self.consume(end + 1);
                continue;
            }
            let line = &self.data()[..end];
            let len = line.strip_suffix(b"\r").unwrap_or(line).len();
            if len > MAX_LINE {
                // 513 bytes and `\n`: it fits the buffer but not the limit.
                self.consume(end + 1);
                return Framed::Overlong;
            }
            return Framed::Line { len, size: end + 1 };
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn lines_come_out_one_at_a_time_without_their_terminators() {
        let mut input = Input::EMPTY;
        assert_eq!(input.extend(b"hi\r\nthere\npart"), 14);
        assert_eq!(input.next_line(), Framed::Line { len: 2, size: 4 });
        assert_eq!(&input.data()[..2], b"hi");
        input.consume(4);
        assert_eq!(input.next_line(), Framed::Line { len: 5, size: 6 });
        input.consume(6);
        assert_eq!(input.next_line(), Framed::Partial);
        assert_eq!(input.data(), b"part");
    }

    #[test]
    fn an_overlong_line_is_reported_once_and_its_tail_skipped() {
        let mut input = Input::EMPTY;
        input.extend(&[b'x'; INPUT]);
        assert_eq!(input.next_line(), Framed::Overlong);
        assert!(input.is_empty());
        input.extend(&[b'x'; INPUT]);
        assert_eq!(input.next_line(), Framed::Partial, "still the same line");
        input.extend(b"xx\nnext\n");
        assert_eq!(input.next_line(), Framed::Line { len: 4, size: 5 });
        assert_eq!(&input.data()[..4], b"next");
    }

    #[test]
    fn a_line_one_byte_over_the_limit_that_fits_the_buffer_is_refused() {
        let mut input = Input::EMPTY;
        input.extend(&[b'x'; MAX_LINE + 1]);
        input.extend(b"\n");
        assert_eq!(input.next_line(), Framed::Overlong);
        input.extend(&[b'x'; MAX_LINE + 6]);
        input.extend(b"\n");
        assert_eq!(input.next_line(), Framed::Overlong, "it fits the buffer, not the limit");
        assert!(input.is_empty());
        input.extend(&[b'x'; MAX_LINE]);
        input.extend(b"\r\n");
        assert_eq!(input.next_line(), Framed::Line { len: MAX_LINE, size: MAX_LINE + 2 });
    }

    #[test]
    fn bytes_in_the_middle_can_be_removed() {
        let mut input = Input::EMPTY;
        input.extend(b"messageHEADERrest");
        input.remove(7, 6);
        assert_eq!(input.data(), b"messagerest");
        input.remove(7, 100);
        assert_eq!(input.data(), b"message");
    }

    #[test]
    fn a_full_buffer_takes_no_more_and_terminate_needs_room() {
        let mut input = Input::EMPTY;
        assert_eq!(input.extend(&[b'a'; INPUT + 10]), INPUT);
        assert!(input.is_full());
        assert_eq!(input.extend(b"b"), 0);
        input.terminate();
        assert_eq!(input.data().last(), Some(&b'a'));
        input.consume(INPUT - 1);
        input.terminate();
        assert_eq!(input.data(), b"a\n");
    }
}
