//! The log: storing lines, dropping the clients that fall behind, and what
//! each client's next write carries.

use super::farewell::Farewell;
use super::web::WebNext;
use super::*;
use crate::fmt::warning;
use crate::wire::{seed_ascii, GREETING, HISTORY_END};

impl Room<'_> {
    // ----- the log ----------------------------------------------------------

    /// A server notice for one client.
    pub(super) fn notice(&mut self, id: ClientId, args: fmt::Arguments<'_>) {
        let mut line = Text::new();
        // A notice is at most MAX_OUT - 1 bytes: its variable parts are
        // shortened, so this write cannot fail.
        let _ = line.write_fmt(args);
        let _ = line.push('\n');
        self.push(Recipient::One(id), &[line.as_bytes()]);
    }

    /// Appends a line to the log, disconnecting the clients whose unread
    /// lines it overwrites, and marks its recipients ready. Returns its
    /// sequence number.
    pub(super) fn push(&mut self, to: Recipient, parts: &[&[u8]]) -> u64 {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let first = self.ring.first_after_push(len);
        if first > self.slowest {
            self.catch_laggards(first);
        }
        let seq = self.ring.push(parts, to);
        match to {
            Recipient::One(id) => {
                self.client_mut(id).window.private_until = seq + 1;
                self.lists.mark_ready(self.cells, id);
            }
            Recipient::Everyone | Recipient::Notice => self.lists.mark_all_ready(),
            Recipient::Cluster => {}
        }
        if self.unannounced > 0 && !self.announcing {
            self.announcing = true;
            loop {
                let dropped = self.occupied().find(|(_, client)| client.announce).map(|(id, _)| id);
                let Some(id) = dropped else { break };
                self.client_mut(id).announce = false;
                self.unannounced -= 1;
                self.announce_left(id, "");
            }
            self.announcing = false;
        }
        seq
    }

    /// Sends a newcomer the room's last [`Config::history`] broadcast lines
    /// from before `before` (its own `joined!`), as lines for it alone
    /// between two notices. Others' private lines are never among them.
    pub(super) fn replay_history(&mut self, id: ClientId, before: u64) {
        let wanted = usize::from(self.config.history);
        let mut from = before;
        let mut found = 0;
        while found < wanted && from > self.ring.first() {
            from -= 1;
            if self.ring.line(from).to() == Recipient::Everyone {
                found += 1;
            }
        }
        if found == 0 {
            return;
        }
        match found {
            1 => self.notice(id, format_args!("*** history: the last line of the room")),
            n => self.notice(id, format_args!("*** history: the last {n} lines of the room")),
        }
        for seq in from..before {
            // Copying a line may push the oldest ones out of the log: what
            // is gone is gone, the rest is still replayed in order.
            if seq < self.ring.first() || self.ring.line(seq).to() != Recipient::Everyone {
                continue;
            }
            let mut line = Text::new();
            let text = self.ring.text(self.ring.line(seq));
            // A stored line is at most MAX_OUT bytes of UTF-8: it fits.
            let _ = line.push_str(core::str::from_utf8(text).unwrap_or_default());
            self.push(Recipient::One(id), &[line.as_bytes()]);
        }
        self.push(Recipient::One(id), &[HISTORY_END]);
    }

    /// Lines before `first` are about to be overwritten: every client still
    /// needing one of them is dropped.
    fn catch_laggards(&mut self, first: u64) {
        let next = self.ring.next();
        let mut slowest = next;
        let mut at = self.lists.first();
        while let Some(id) = at {
            at = Lists::after(self.cells, id);
            self.skip_unseen(id);
            let client = self.client_mut(id);
            match client.state {
                State::Free | State::Dropped => continue,
                State::Greeting if client.window.private_until <= client.cursor.seq => {
                    // Nothing is waiting for it: it can skip ahead.
                    client.cursor = Cursor::at(next);
                }
                _ => {}
            }
            if client.cursor.seq >= first {
                slowest = slowest.min(client.cursor.seq);
                continue;
            }
            debug!("slot {} too slow, dropped", id.index());
            if client.state == State::Chatting {
                let cursor = client.cursor;
                let text = self.ring.text(self.ring.line(cursor.seq));
                let rest = text.get(usize::from(cursor.sent)..).unwrap_or_default();
                let client = &mut self.cells[id.index()].client;
                client.farewell = Farewell::new(client.dialect, cursor, rest);
                client.announce = true;
                self.unannounced += 1;
            }
            let drain = self.config.drain_timeout;
            let now = self.now;
            let client = self.client_mut(id);
            if client.state != State::Leaving {
                client.reason = Reason::TooSlow;
                // Its farewell may take as long as any last words.
                client.deadline = now + drain;
            }
            client.state = State::Dropped;
            self.lists.mark_ready(self.cells, id);
            self.lists.arm(self.cells, id);
        }
        if let Some(cluster) = self.cluster.as_mut() {
            if cluster.outbox < first {
                warning!("the outbox fell behind the log: {} events lost", first - cluster.outbox);
                cluster.outbox = first;
            }
            slowest = slowest.min(cluster.outbox);
        }
        self.slowest = slowest;
    }

    /// Moves a client's cursor past lines that are not for it.
    fn skip_unseen(&mut self, id: ClientId) {
        let end = self.ring.next();
        let client = &mut self.cells[id.index()].client;
        if client.state == State::Free {
            return;
        }
        while !client.cursor.in_line() && client.cursor.seq < end.min(client.window.until) {
            if client.window.sees(id, client.cursor.seq, self.ring.line(client.cursor.seq)) {
                return;
            }
            client.cursor.seq += 1;
        }
    }

    // ----- output -----------------------------------------------------------

    /// Whether the client has something to be sent. Changes nothing.
    pub(super) fn has_output(&self, id: ClientId) -> bool {
        let client = self.client(id);
        if client.greeting > 0 || client.farewell.is_pending() {
            return true;
        }
        if client.dialect == Dialect::Web && self.web_next(id) != WebNext::Lines {
            return self.web_next(id) != WebNext::Nothing;
        }
        let end = self.ring.next().min(client.window.until);
        let start = client.cursor.seq.max(self.ring.first());
        if client.cursor.seq < self.ring.first() || start >= end {
            return false;
        }
        client.cursor.in_line() || (start..end).any(|seq| client.window.sees(id, seq, self.ring.line(seq)))
    }

    /// What one write to the client carries now: the greeting on its own;
    /// for a line client, a run of its lines straight from the log; for a
    /// seed client, its lines made ASCII and joined by `\n` in `batch`.
    pub(super) fn output<'s>(&'s mut self, id: ClientId, batch: &'s mut [u8; SEED_WRITE]) -> &'s [u8] {
        self.skip_unseen(id);
        let client = self.client(id);
        if client.greeting > 0 {
            return &GREETING[GREETING.len() - usize::from(client.greeting)..];
        }
        if client.farewell.is_pending() {
            return client.farewell.remaining(client.dialect, batch);
        }
        if !matches!(client.state, State::Greeting | State::Chatting | State::Leaving) {
            return &[];
        }
        if client.dialect == Dialect::Web {
            return self.web_output(id, batch);
        }
        let end = self.ring.next().min(client.window.until);
        if client.cursor.seq >= end || client.cursor.seq < self.ring.first() {
            return &[];
        }
        if client.dialect == Dialect::Seed {
            let n = self.walk(id, Some(batch), 0);
            return &batch[..n];
        }
        let client = self.client(id);
        let first = self.ring.line(client.cursor.seq);
        let mut last = first;
        let mut seq = client.cursor.seq + 1;
        while seq < end {
            let line = self.ring.line(seq);
            if !client.window.sees(id, seq, line) || !self.ring.follows(last, line) {
                break;
            }
            last = line;
            seq += 1;
        }
        let run = self.ring.span(first, usize::from(client.cursor.sent), last);
        if seq == end || run.len() >= SEED_WRITE / 2 {
            // Everything pending, or enough for one write: straight from the log.
            return run;
        }
        // The run stops at a line for someone else (a newcomer's private
        // `Connected to server!` between `joined!` lines) or at the ring's
        // end, with more to come: gather what follows into one write rather
        // than one write per piece.
        batch[..run.len()].copy_from_slice(run);
        let mut pos = run.len();
        for seq in seq..end {
            let line = self.ring.line(seq);
            if !client.window.sees(id, seq, line) {
                continue;
            }
            let text = self.ring.text(line);
            if pos + text.len() > SEED_WRITE {
                break;
            }
            batch[pos..pos + text.len()].copy_from_slice(text);
            pos += text.len();
        }
        &batch[..pos]
    }

    /// Counts `n` bytes of [`Room::output`] as sent; `short` if that was
    /// less than all of it.
    pub(super) fn sent(&mut self, id: ClientId, mut n: usize, short: bool) {
        if n == 0 {
            return;
        }
        let client = self.client_mut(id);
        if client.greeting > 0 {
            client.greeting -= n.min(usize::from(client.greeting)) as u8;
            return;
        }
        if client.farewell.is_pending() {
            client.farewell.sent(client.dialect, n);
            return;
        }
        if client.dialect == Dialect::Web {
            return self.web_sent(id, n);
        }
        if client.dialect == Dialect::Seed {
            self.walk(id, None, n);
            // A short write is likely to reach the client together with the
            // next one: make sure a line boundary still shows.
            let cursor = &mut self.client_mut(id).cursor;
            if short && !cursor.in_line() {
                cursor.sep = true;
            }
            return;
        }
        while n > 0 {
            self.skip_unseen(id);
            let len = self.ring.line(self.client(id).cursor.seq).len();
            n = self.client_mut(id).cursor.advance(n, len);
        }
    }

    /// Walks the pending lines of a client whose lines are not sent as
    /// stored, as one write lays them out: for a seed client ASCII (anything
    /// else is `?`), no terminators, `\n` between lines (`cursor.sep` puts
    /// one before the first too); for a browser one text frame per line,
    /// without its `\n`. At most [`SEED_WRITE`] bytes. With `out`, copies
    /// them there and returns the length; without, moves the cursor past the
    /// first `sent` bytes.
    pub(super) fn walk(&mut self, id: ClientId, mut out: Option<&mut [u8; SEED_WRITE]>, mut sent: usize) -> usize {
        let client = self.client(id);
        let web = client.dialect == Dialect::Web;
        let mut cursor = client.cursor;
        let end = self.ring.next().min(client.window.until);
        let mut pos = 0;
        while cursor.seq < end && (out.is_some() || sent > 0) {
            let line = self.ring.line(cursor.seq);
            if !cursor.in_line() && !client.window.sees(id, cursor.seq, line) {
                cursor.seq += 1;
                continue;
            }
            let text = self.ring.text(line);
            let text = text.strip_suffix(b"\n").unwrap_or(text);
            // A seed client's first line of a write has no separator,
            // unless the write before was cut short right after a line.
            let sep = !web && if cursor.in_line() || pos == 0 { cursor.sep } else { true };
            let (prefix, prefix_len) = if web {
                crate::web::server_header(crate::web::opcode::TEXT, text.len())
            } else {
                ([b'\n', 0, 0, 0], usize::from(sep))
            };
            // Most lines are ASCII already: their length is their seed length.
            let plain = web || text.is_ascii();
            let shown = if plain { text.len() } else { seed_ascii(text).count() };
            let skip = usize::from(cursor.sent);
            let rest = prefix_len + shown - skip;
            match out.as_deref_mut() {
                Some(batch) => {
                    if pos > 0 && pos + rest > SEED_WRITE {
                        break;
                    }
                    let dst = &mut batch[pos..pos + rest];
                    let wire = prefix[..prefix_len].iter().copied();
                    if plain {
                        let head = prefix_len.saturating_sub(skip);
                        for (slot, byte) in dst[..head].iter_mut().zip(wire.skip(skip)) {
                            *slot = byte;
                        }
                        dst[head..].copy_from_slice(&text[skip.saturating_sub(prefix_len)..]);
                    } else {
                        for (slot, byte) in dst.iter_mut().zip(wire.chain(seed_ascii(text)).skip(skip)) {
                            *slot = byte;
                        }
                    }
                    pos += rest;
                    cursor = Cursor::at(cursor.seq + 1);
                }
                None if sent >= rest => {
                    sent -= rest;
                    pos += rest;
                    cursor = Cursor::at(cursor.seq + 1);
                }
                None => {
                    cursor = Cursor { seq: cursor.seq, sent: cursor.sent + sent as u16, sep };
                    sent = 0;
                }
            }
        }
        if out.is_none() {
            self.client_mut(id).cursor = cursor;
        }
        pos
    }
}
