//! The last words to a client dropped for reading too slowly.

use heapless::Vec;

use crate::ring::Cursor;
use crate::web::{close, opcode, server_header};
use crate::wire::{Dialect, TOO_SLOW};

/// What is still to be sent to a dropped client: the end of the line it was
/// cut off in (so what it received stays whole lines of UTF-8), then
/// [`TOO_SLOW`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Farewell {
    pending: bool,
    /// Bytes of `mend` and the notice already sent.
    sent: u16,
    /// The rest of the last character and `\n`, when it was cut off in a line.
    mend: Vec<u8, 4>,
}

impl Farewell {
    pub const NONE: Farewell = Farewell { pending: false, sent: 0, mend: Vec::new() };

    /// A farewell to a client whose cursor stood at `cursor`; `rest` is what
    /// it had not been sent of the line it was in.
    pub fn new(dialect: Dialect, cursor: Cursor, rest: &[u8]) -> Farewell {
        if dialect == Dialect::Web && cursor.in_line() {
            // Cut off inside a frame whose payload is gone: no frame can
            // follow it. The connection just closes.
            return Farewell::NONE;
        }
        let mut mend = Vec::new();
        if cursor.in_line() || cursor.sep {
            if dialect != Dialect::Seed && cursor.in_line() {
                for &b in rest.iter().take(3).take_while(|&&b| b & 0xC0 == 0x80) {
                    let _ = mend.push(b);
                }
            }
            let _ = mend.push(b'\n');
        }
        Farewell { pending: true, sent: 0, mend }
    }

    pub fn is_pending(&self) -> bool {
        self.pending
    }

    /// What is left to send, laid out in `buf`.
    pub fn remaining<'b>(&self, dialect: Dialect, buf: &'b mut [u8]) -> &'b [u8] {
        let total = self.len(dialect);
        if !self.pending || buf.len() < total {
            return &[];
        }
        let text = notice(dialect);
        if dialect == Dialect::Web {
            // The notice as a text frame, then a close frame: 1008, policy.
            let (head, len) = server_header(opcode::TEXT, text.len());
            buf[..len].copy_from_slice(&head[..len]);
            buf[len..len + text.len()].copy_from_slice(text);
            let [hi, lo] = close::POLICY.to_be_bytes();
            buf[len + text.len()..total].copy_from_slice(&[0x88, 2, hi, lo]);
        } else {
            let n = self.mend.len();
            buf[..n].copy_from_slice(&self.mend);
            buf[n..total].copy_from_slice(text);
        }
        &buf[usize::from(self.sent).min(total)..total]
    }

    fn len(&self, dialect: Dialect) -> usize {
        let text = notice(dialect).len();
        match dialect {
            Dialect::Web => server_header(opcode::TEXT, text).1 + text + 4,
            _ => self.mend.len() + text,
        }
    }

    /// `n` bytes of [`Farewell::remaining`] went out.
    pub fn sent(&mut self, dialect: Dialect, n: usize) {
        let total = self.len(dialect);
        let sent = (usize::from(self.sent) + n).min(total);
        self.sent = sent as u16;
        self.pending = sent < total;
    }
}

/// [`TOO_SLOW`] as a client of `dialect` gets it: no terminator for the
/// tutorial's client, nor in a frame.
fn notice(dialect: Dialect) -> &'static [u8] {
    match dialect {
        Dialect::Seed | Dialect::Web => &TOO_SLOW[..TOO_SLOW.len() - 1],
        _ => TOO_SLOW,
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn a_client_cut_off_mid_character_gets_the_character_ended_then_the_notice() {
        let cursor = Cursor { seq: 4, sent: 3, sep: false };
        // "é" is C3 A9: the client got C3, the rest starts with A9.
        let farewell = Farewell::new(Dialect::Line, cursor, b"\xa9x\n");
        let mut buf = [0; 128];
        let out = farewell.remaining(Dialect::Line, &mut buf);
        assert_eq!(&out[..2], b"\xa9\n");
        assert_eq!(&out[2..], TOO_SLOW);
    }

    #[test]
    fn a_short_write_resumes_where_it_stopped() {
        let mut farewell = Farewell::new(Dialect::Line, Cursor::at(1), b"");
        let mut buf = [0; 128];
        farewell.sent(Dialect::Line, 10);
        assert_eq!(farewell.remaining(Dialect::Line, &mut buf), &TOO_SLOW[10..]);
        farewell.sent(Dialect::Line, TOO_SLOW.len() - 10);
        assert!(!farewell.is_pending());
        assert_eq!(farewell.remaining(Dialect::Line, &mut buf), b"");
    }

    #[test]
    fn a_browser_gets_the_notice_as_a_frame_then_a_close_unless_cut_off_inside_a_frame() {
        let farewell = Farewell::new(Dialect::Web, Cursor::at(3), b"");
        let mut buf = [0; 128];
        let out = farewell.remaining(Dialect::Web, &mut buf);
        assert_eq!(out[..2], [0x81, 75]);
        assert_eq!(&out[2..77], &TOO_SLOW[..75]);
        assert_eq!(out[77..], [0x88, 2, 0x03, 0xF0]);
        let cut = Farewell::new(Dialect::Web, Cursor { seq: 3, sent: 5, sep: false }, b"rest");
        assert!(!cut.is_pending());
    }

    #[test]
    fn a_seed_client_gets_a_separator_and_no_terminator() {
        let cursor = Cursor { seq: 1, sent: 0, sep: true };
        let farewell = Farewell::new(Dialect::Seed, cursor, b"");
        let mut buf = [0; 128];
        let out = farewell.remaining(Dialect::Seed, &mut buf);
        assert_eq!(out[0], b'\n');
        assert_eq!(&out[1..], &TOO_SLOW[..TOO_SLOW.len() - 1]);
    }
}
