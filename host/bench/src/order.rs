//! The `--same-order` check: every client saw the bench's messages in one
//! and the same order, the senders' lines interleaved identically for all.
//!
//! A room of several servers over a broker must give every client one
//! global order; one server gives it by construction. Every client is
//! registered before the first message, so each client's sequence of
//! messages (first deliveries, in the order they arrived) must be the same
//! sequence.
//!
//! Memory is the run's lines, not clients × lines: the order is kept once,
//! as the first client to reach each position saw it (a `u32` line number
//! and a `u32` client per position, 8 bytes a line), and each client holds
//! only how far it is in step with it. A client that receives another line
//! at some position is out of step there, and is not followed further
//! (everything after would differ by a shift). Whether that is an order
//! violation or a loss is settled at the end from the ledger: the two lines
//! at that position arrived at both clients, in opposite orders, or one of
//! them never arrived at one of the clients (the loss is counted as lost).

use serde::Serialize;

use crate::ledger::Ledger;
use crate::message::Names;

/// The most lines (speakers × messages) the check keeps: 512 MiB of order.
pub const MAX_LINES: u64 = 1 << 26;

/// Clients named in a report, at most.
const NAMED: usize = 10;

/// A client's position when it fell out of step and is followed no more.
const OUT_OF_STEP: u32 = u32::MAX;

/// Where one client first received another line than the order's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Divergence {
    client: usize,
    /// Lines it had received in step before (0-based position).
    position: usize,
    /// The line it received there.
    got: u32,
    /// The client that set the order at that position, and its line.
    reference: usize,
    expected: u32,
}

/// The order as it is learnt, and each client's place in it.
pub struct SameOrder {
    messages: usize,
    /// Per position: the line (`sender * messages + seq`), as the first
    /// client to get that far received it.
    lines: Vec<u32>,
    /// Per position: that client.
    setters: Vec<u32>,
    /// Per client: positions it has received in step, or [`OUT_OF_STEP`].
    at: Vec<u32>,
    divergences: Vec<Divergence>,
}

/// What the check found. Serialised as is into the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OrderCheck {
    /// The longest sequence any client received in step.
    pub lines: u64,
    /// Clients that received two lines in the opposite order of another
    /// client (both received both).
    pub differing: u64,
    /// A few of them, by index.
    pub clients: Vec<usize>,
    /// Clients out of step because of a loss (to them or to the client
    /// they were compared with), not checked past it.
    pub unchecked_after_loss: u64,
    /// The violation at the earliest position, in words.
    pub first: Option<String>,
}

impl OrderCheck {
    /// Whether every client saw one order.
    pub fn ok(&self) -> bool {
        self.differing == 0
    }

    /// The check as one row's value.
    pub fn summary(&self) -> String {
        let mut text = if self.ok() && self.unchecked_after_loss == 0 {
            format!("yes: every client saw its {} lines in one order", self.lines)
        } else if self.ok() {
            format!("no violation in {} lines", self.lines)
        } else {
            let clients: Vec<String> = self.clients.iter().map(usize::to_string).collect();
            let more = if self.differing as usize > self.clients.len() { ", ..." } else { "" };
            format!(
                "VIOLATED: {} clients ({}{more}) saw another order; first: {}",
                self.differing,
                clients.join(", "),
                self.first.as_deref().unwrap_or("?")
            )
        };
        if self.unchecked_after_loss > 0 {
            text.push_str(&format!("; {} clients not checked past a lost line", self.unchecked_after_loss));
        }
        text
    }
}

impl SameOrder {
    /// A check for `clients` receivers of `messages` messages from each of
    /// `speakers` senders (at most [`MAX_LINES`] lines).
    pub fn new(clients: usize, speakers: usize, messages: usize) -> SameOrder {
        let lines = (speakers * messages).min(MAX_LINES as usize);
        SameOrder {
            messages,
            lines: Vec::with_capacity(lines.min(1 << 20)),
            setters: Vec::with_capacity(lines.min(1 << 20)),
            at: vec![0; clients],
            divergences: Vec::new(),
        }
    }

    /// `receiver` received message `seq` of `sender`, for the first time.
    pub fn saw(&mut self, receiver: usize, sender: usize, seq: usize) {
        let position = self.at[receiver];
        if position == OUT_OF_STEP {
            return;
        }
        let line = (sender * self.messages + seq) as u32;
        let p = position as usize;
        match self.lines.get(p) {
            Some(&expected) if expected == line => {}
            Some(&expected) => {
                self.divergences.push(Divergence {
                    client: receiver,
                    position: p,
                    got: line,
                    reference: self.setters[p] as usize,
                    expected,
                });
                self.at[receiver] = OUT_OF_STEP;
                return;
            }
            None => {
                self.lines.push(line);
                self.setters.push(receiver as u32);
            }
        }
        self.at[receiver] += 1;
    }

    /// What the check found, the ledger saying which lines never arrived.
    pub fn finish(&self, ledger: &Ledger, names: &Names) -> OrderCheck {
        let mut check = OrderCheck { lines: self.lines.len() as u64, ..OrderCheck::default() };
        let split = |line: u32| (line as usize / self.messages, line as usize % self.messages);
        let mut first: Option<&Divergence> = None;
        for d in &self.divergences {
            let ((got_sender, got_seq), (exp_sender, exp_seq)) = (split(d.got), split(d.expected));
            let both = ledger.has(d.client, exp_sender, exp_seq) && ledger.has(d.reference, got_sender, got_seq);
            if !both {
                check.unchecked_after_loss += 1;
                continue;
            }
            check.differing += 1;
            if check.clients.len() < NAMED {
                check.clients.push(d.client);
            }
            if first.is_none_or(|f| d.position < f.position) {
                first = Some(d);
            }
        }
        check.clients.sort_unstable();
        check.first = first.map(|d| {
            let line = |line: u32| {
                let (sender, seq) = split(line);
                format!("{} #{seq}", names.nick(sender))
            };
            format!(
                "same-order violation at line {} of the run: client {} ({}) received {} there, client {} ({}) \
                 received {} (each received both, in opposite orders)",
                d.position + 1,
                d.client,
                names.nick(d.client),
                line(d.got),
                d.reference,
                names.nick(d.reference),
                line(d.expected)
            )
        });
        check
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names::with_tag("bt_".to_string(), 3)
    }

    /// A ledger and a check that saw `sequences`, one per client, of
    /// (sender, seq).
    fn run(sequences: &[&[(usize, usize)]]) -> OrderCheck {
        let (clients, speakers, messages) = (sequences.len(), 3, 4);
        let mut ledger = Ledger::new(clients, speakers, messages);
        let mut order = SameOrder::new(clients, speakers, messages);
        // Interleaved, as a poller would hand them out.
        let longest = sequences.iter().map(|s| s.len()).max().unwrap_or(0);
        for k in 0..longest {
            for (r, sequence) in sequences.iter().enumerate() {
                if let Some(&(sender, seq)) = sequence.get(k) {
                    ledger.deliver(r, sender, seq);
                    order.saw(r, sender, seq);
                }
            }
        }
        order.finish(&ledger, &names())
    }

    #[test]
    fn one_order_for_all_passes() {
        let check = run(&[&[(0, 0), (1, 0), (0, 1)], &[(0, 0), (1, 0), (0, 1)], &[(0, 0), (1, 0), (0, 1)]]);
        assert!(check.ok(), "{check:?}");
        assert_eq!((check.lines, check.unchecked_after_loss), (3, 0));
    }

    #[test]
    fn two_lines_swapped_for_one_client_are_caught_where_they_differ() {
        let check = run(&[
            &[(0, 0), (1, 0), (2, 0), (0, 1)],
            &[(0, 0), (2, 0), (1, 0), (0, 1)],
            &[(0, 0), (1, 0), (2, 0), (0, 1)],
        ]);
        assert!(!check.ok());
        assert_eq!((check.differing, check.clients.clone()), (1, vec![1]));
        let first = check.first.unwrap_or_default();
        assert!(
            first.contains(
                "line 2 of the run: client 1 (bt_1) received bt_2 #0 there, client 0 (bt_0) received bt_1 #0"
            ),
            "{first}"
        );
    }

    #[test]
    fn a_lost_line_is_not_an_order_violation() {
        // Client 1 never got (1, 0): it is out of step from there, by loss.
        let check = run(&[&[(0, 0), (1, 0), (0, 1)], &[(0, 0), (0, 1)]]);
        assert!(check.ok(), "{check:?}");
        assert_eq!(check.unchecked_after_loss, 1);
        assert_eq!(check.summary(), "no violation in 3 lines; 1 clients not checked past a lost line");
        // The same when the client that set the order lost the line.
        let check = run(&[&[(0, 0), (0, 1)], &[(0, 0), (1, 0), (0, 1)]]);
        assert!(check.ok(), "{check:?}");
        assert_eq!(check.unchecked_after_loss, 1);
    }

    #[test]
    fn the_earliest_violation_is_the_one_described() {
        let check = run(&[
            &[(0, 0), (1, 0), (2, 0), (0, 1)],
            &[(0, 0), (1, 0), (0, 1), (2, 0)],
            &[(1, 0), (0, 0), (2, 0), (0, 1)],
        ]);
        assert_eq!((check.differing, check.clients.clone()), (2, vec![1, 2]));
        assert!(check.first.unwrap_or_default().contains("at line 1 of the run: client 2"));
    }
}
