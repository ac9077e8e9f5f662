//! The ledger of deliveries: which receiver got which message of which
//! sender, and the counts of everything that was not a clean delivery. The
//! report holds its [`Counts`] as they are.

use serde::Serialize;

/// What the checks counted. Serialised as is into the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Distinct messages delivered intact, attributed to their sender.
    pub deliveries: u64,
    /// Expected deliveries that never arrived intact.
    pub lost: u64,
    /// Deliveries of a message the client had already received.
    pub duplicated: u64,
    /// Deliveries that arrived after a later message of the same sender.
    pub reordered: u64,
    /// Intact messages whose `{nick}: ` prefix was not their sender.
    pub misattributed: u64,
    /// Entries that looked like a message but did not parse or had the
    /// wrong length.
    pub torn: u64,
    /// Lines that were neither messages nor broken messages (notices).
    pub other: u64,
    /// Clients the server closed while the run was on.
    pub closed: u64,
}

impl Counts {
    /// Whether nothing went wrong: nothing lost, duplicated, reordered,
    /// misattributed or torn, and no client closed. Notices are fine.
    pub fn clean(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.reordered == 0
            && self.misattributed == 0
            && self.torn == 0
            && self.closed == 0
    }
}

/// How a delivery was recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The first of its message to this receiver, in its sender's order.
    InOrder,
    /// The first of its message to this receiver, after a later one of its
    /// sender.
    Reordered,
    /// The receiver had it already.
    Duplicate,
}

/// The checks: one bit per (receiver, sender, seq), and per (receiver,
/// sender) the next sequence number expected.
pub struct Ledger {
    speakers: usize,
    messages: usize,
    expected: u64,
    seen: Vec<u64>,
    next: Vec<u32>,
    counts: Counts,
}

impl Ledger {
    /// A ledger for `clients` receivers of `messages` messages from each of
    /// `speakers` senders: every receiver expects every message.
    pub fn new(clients: usize, speakers: usize, messages: usize) -> Ledger {
        let bits = clients * speakers * messages;
        Ledger {
            speakers,
            messages,
            expected: bits as u64,
            seen: vec![0; bits.div_ceil(64)],
            next: vec![0; clients * speakers],
            counts: Counts::default(),
        }
    }

    /// The bit of (`receiver`, `sender`, `seq`): its word and mask.
    fn bit(&self, receiver: usize, sender: usize, seq: usize) -> (usize, u64) {
        let bit = (receiver * self.speakers + sender) * self.messages + seq;
        (bit / 64, 1u64 << (bit % 64))
    }

    /// Whether `receiver` has got message `seq` of `sender` (the
    /// `--same-order` check tells a loss from a swap by it).
    pub fn has(&self, receiver: usize, sender: usize, seq: usize) -> bool {
        let (word, mask) = self.bit(receiver, sender, seq);
        self.seen[word] & mask != 0
    }

    /// Records that `receiver` got message `seq` of `sender`, intact and
    /// attributed to it.
    pub fn deliver(&mut self, receiver: usize, sender: usize, seq: usize) -> Delivery {
        let pair = receiver * self.speakers + sender;
        let (word, mask) = self.bit(receiver, sender, seq);
        if self.seen[word] & mask != 0 {
            self.counts.duplicated += 1;
            return Delivery::Duplicate;
        }
        self.seen[word] |= mask;
        self.counts.deliveries += 1;
        let next = &mut self.next[pair];
        let in_order = seq as u32 >= *next;
        *next = (*next).max(seq as u32 + 1);
        if in_order {
            Delivery::InOrder
        } else {
            self.counts.reordered += 1;
            Delivery::Reordered
        }
    }

    /// An intact message under another sender's prefix.
    pub fn misattributed(&mut self) {
        self.counts.misattributed += 1;
    }

    /// Something that looked like a message and was not one.
    pub fn torn(&mut self) {
        self.counts.torn += 1;
    }

    /// A whole line that holds no message (`\r\n` or not). A line with a
    /// `[` is a message cut short; anything else is a notice. Returns the
    /// line as it counted, or `None` for an empty one.
    pub fn odd_line<'a>(&mut self, line: &'a [u8]) -> Option<&'a [u8]> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None;
        }
        if memchr::memchr(b'[', line).is_some() {
            self.counts.torn += 1;
        } else {
            self.counts.other += 1;
        }
        Some(line)
    }

    /// A client the server closed during the run.
    pub fn closed(&mut self) {
        self.counts.closed += 1;
    }

    /// Deliveries so far.
    pub fn deliveries(&self) -> u64 {
        self.counts.deliveries
    }

    /// Deliveries a perfect run makes.
    pub fn expected(&self) -> u64 {
        self.expected
    }

    /// The counts; what has not been delivered by now is lost.
    pub fn counts(&self) -> Counts {
        Counts { lost: self.expected - self.counts.deliveries, ..self.counts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_delivery_is_reordered_and_a_repeat_duplicated() {
        let mut ledger = Ledger::new(2, 2, 4);
        assert_eq!(ledger.deliver(1, 1, 0), Delivery::InOrder);
        assert!(ledger.has(1, 1, 0) && !ledger.has(1, 1, 2) && !ledger.has(0, 1, 0));
        assert_eq!(ledger.deliver(1, 1, 2), Delivery::InOrder);
        assert_eq!(ledger.deliver(1, 1, 1), Delivery::Reordered);
        assert_eq!(ledger.deliver(1, 1, 2), Delivery::Duplicate);
        // Order is per (receiver, sender): another receiver starts afresh.
        assert_eq!(ledger.deliver(0, 1, 1), Delivery::InOrder);
        let counts = ledger.counts();
        assert_eq!((counts.deliveries, counts.reordered, counts.duplicated), (4, 1, 1));
        assert!(!counts.clean());
    }

    #[test]
    fn what_never_arrived_is_lost() {
        let mut ledger = Ledger::new(3, 1, 2);
        for receiver in 0..3 {
            ledger.deliver(receiver, 0, 0);
        }
        ledger.deliver(0, 0, 1);
        ledger.deliver(0, 0, 1);
        let counts = ledger.counts();
        assert_eq!(ledger.expected(), 6);
        assert_eq!((counts.deliveries, counts.lost, counts.duplicated), (4, 2, 1));
        ledger.deliver(1, 0, 1);
        ledger.deliver(2, 0, 1);
        assert_eq!(ledger.counts().lost, 0);
    }

    #[test]
    fn only_a_perfect_run_is_clean() {
        let mut ledger = Ledger::new(1, 1, 1);
        ledger.deliver(0, 0, 0);
        assert_eq!(ledger.odd_line(b"*** notice\r"), Some(&b"*** notice"[..]));
        assert_eq!(ledger.odd_line(b"\r"), None);
        assert!(ledger.counts().clean(), "notices are fine: {:?}", ledger.counts());
        assert_eq!(ledger.odd_line(b"bxyz_0: [bxyz_0 3"), Some(&b"bxyz_0: [bxyz_0 3"[..]));
        let counts = ledger.counts();
        assert_eq!((counts.other, counts.torn), (1, 1));
        assert!(!counts.clean());
        let mut closed = Ledger::new(1, 1, 0);
        closed.closed();
        assert!(!closed.counts().clean());
    }
}
