//! The log: storing lines, dropping the clients that fall behind, and what
//! each client's next write carries.

use super::*;

impl Room<'_> {
    // ----- the log ----------------------------------------------------------

    /// A server notice for one client (or [`EVERYONE`]).
    pub(super) fn notice(&mut self, slot: usize, args: fmt::Arguments<'_>) {
        let mut line = Text::new();
        // A notice is at most MAX_OUT - 1 bytes: its variable parts are
        // shortened, so this write cannot fail.
        let _ = line.write_fmt(args);
        let _ = line.push('\n');
        self.push(slot as u16, &[line.as_bytes()]);
    }

    /// Appends a line to the log, disconnecting the clients whose unread
    /// lines it overwrites. Returns its sequence number.
    pub(super) fn push(&mut self, to: u16, parts: &[&[u8]]) -> u64 {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let first = self.ring.first_after_push(len);
        if first > self.slowest {
            self.catch_laggards(first);
        }
        let seq = self.ring.push(parts, to);
        if let Some(client) = self.clients.get_mut(usize::from(to)) {
            client.private_until = seq + 1;
        }
        if self.unannounced > 0 && !self.announcing {
            self.announcing = true;
            while let Some(slot) = self.clients.iter().position(|c| c.announce) {
                self.clients[slot].announce = false;
                self.unannounced -= 1;
                self.announce_left(slot, "");
            }
            self.announcing = false;
        }
        seq
    }

    /// Lines before `first` are about to be overwritten: every client still
    /// needing one of them is dropped.
    pub(super) fn catch_laggards(&mut self, first: u64) {
        let next = self.ring.next();
        let mut slowest = next;
        for slot in 0..self.clients.len() {
            self.skip_unseen(slot);
            let client = &mut self.clients[slot];
            match client.state {
                State::Free | State::Dropped => continue,
                State::Greeting if client.private_until <= client.cursor.seq => {
                    // Nothing is waiting for it: it can skip ahead.
                    client.cursor = Cursor { seq: next, sent: 0, sep: false };
                }
                _ => {}
            }
            if client.cursor.seq >= first {
                slowest = slowest.min(client.cursor.seq);
                continue;
            }
            debug!("slot {} too slow, dropped", slot);
            if client.state == State::Chatting {
                client.announce = true;
                client.farewell = true;
                client.farewell_sent = 0;
                client.mend.clear();
                if client.cursor.sent > 0 || client.cursor.sep {
                    if client.dialect != Dialect::Seed && client.cursor.sent > 0 {
                        // The line it is cut off in is still in the log.
                        let text = self.ring.text(self.ring.line(client.cursor.seq));
                        let rest = &text[usize::from(client.cursor.sent)..];
                        for &b in rest.iter().take(3).take_while(|&&b| b & 0xC0 == 0x80) {
                            let _ = client.mend.push(b);
                        }
                    }
                    let _ = client.mend.push(b'\n');
                }
                self.unannounced += 1;
            }
            if client.state != State::Leaving {
                client.reason = Reason::TooSlow;
            }
            client.state = State::Dropped;
        }
        self.slowest = slowest;
    }

    /// Moves a client's cursor past lines that are not for it.
    pub(super) fn skip_unseen(&mut self, slot: usize) {
        let next = self.ring.next();
        let client = &mut self.clients[slot];
        if client.state == State::Free {
            return;
        }
        while client.cursor.sent == 0 && client.cursor.seq < next.min(client.until) {
            let line = self.ring.line(client.cursor.seq);
            if client.sees(slot as u16, client.cursor.seq, line) {
                return;
            }
            client.cursor.seq += 1;
        }
    }

    // ----- output -----------------------------------------------------------

    pub(super) fn has_output(&mut self, slot: usize) -> bool {
        self.skip_unseen(slot);
        let client = &self.clients[slot];
        client.greeting > 0
            || client.farewell
            || (client.cursor.seq < self.ring.next().min(client.until) && client.cursor.seq >= self.ring.first())
    }

    /// What one write to the client carries now: the greeting on its own;
    /// for a line client, a run of its lines straight from the log; for a
    /// seed client, its lines made ASCII and joined by `\n` in `batch`.
    pub(super) fn output<'s>(&'s mut self, slot: usize, batch: &'s mut [u8; SEED_WRITE]) -> &'s [u8] {
        self.skip_unseen(slot);
        let client = &self.clients[slot];
        if client.greeting > 0 {
            return &GREETING[GREETING.len() - usize::from(client.greeting)..];
        }
        if client.farewell {
            return self.farewell(slot, batch);
        }
        if !matches!(client.state, State::Greeting | State::Chatting | State::Leaving) {
            return &[];
        }
        let end = self.ring.next().min(client.until);
        if client.cursor.seq >= end || client.cursor.seq < self.ring.first() {
            return &[];
        }
        if client.dialect == Dialect::Seed {
            let n = self.seed_walk(slot, Some(batch), 0);
            return &batch[..n];
        }
        let client = &self.clients[slot];
        let first = self.ring.line(client.cursor.seq);
        let mut last = first;
        let mut seq = client.cursor.seq + 1;
        while seq < end {
            let line = self.ring.line(seq);
            if !client.sees(slot as u16, seq, line) || !self.ring.follows(last, line) {
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
            if !client.sees(slot as u16, seq, line) {
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

    /// The rest of a dropped client's farewell: the end of the line it was
    /// cut off in, then [`TOO_SLOW`].
    pub(super) fn farewell<'s>(&self, slot: usize, batch: &'s mut [u8; SEED_WRITE]) -> &'s [u8] {
        let client = &self.clients[slot];
        let text = farewell_text(client.dialect);
        let n = client.mend.len();
        batch[..n].copy_from_slice(&client.mend);
        batch[n..n + text.len()].copy_from_slice(text);
        &batch[usize::from(client.farewell_sent).min(n + text.len())..n + text.len()]
    }

    /// Counts `n` bytes of [`Room::output`] as sent; `short` if that was
    /// less than all of it.
    pub(super) fn sent(&mut self, slot: usize, mut n: usize, short: bool) {
        if n == 0 {
            return;
        }
        let client = &mut self.clients[slot];
        if client.greeting > 0 {
            client.greeting -= n.min(usize::from(client.greeting)) as u8;
            return;
        }
        if client.farewell {
            client.farewell_sent += n as u16;
            client.farewell =
                usize::from(client.farewell_sent) < client.mend.len() + farewell_text(client.dialect).len();
            return;
        }
        if client.dialect == Dialect::Seed {
            self.seed_walk(slot, None, n);
            // A short write is likely to reach the client together with the
            // next one: make sure a line boundary still shows.
            let cursor = &mut self.clients[slot].cursor;
            if short && cursor.sent == 0 {
                cursor.sep = true;
            }
            return;
        }
        while n > 0 {
            self.skip_unseen(slot);
            let client = &mut self.clients[slot];
            let line = self.ring.line(client.cursor.seq);
            let rest = Ring::len_of(line) - usize::from(client.cursor.sent);
            if n >= rest {
                n -= rest;
                client.cursor = Cursor { seq: client.cursor.seq + 1, sent: 0, sep: false };
            } else {
                client.cursor.sent += n as u16;
                n = 0;
            }
        }
    }

    /// Walks a seed client's pending lines as one write lays them out:
    /// ASCII (anything else is `?`), no terminators, `\n` between lines, at
    /// most [`SEED_WRITE`] bytes (`cursor.sep` puts a `\n` before the first
    /// one too). With `out`, copies them there and returns
    /// the length; without, moves the cursor past the first `sent` bytes.
    pub(super) fn seed_walk(&mut self, slot: usize, mut out: Option<&mut [u8; SEED_WRITE]>, mut sent: usize) -> usize {
        let mut cursor = self.clients[slot].cursor;
        let client = &self.clients[slot];
        let end = self.ring.next().min(client.until);
        let mut pos = 0;
        while cursor.seq < end && (out.is_some() || sent > 0) {
            let line = self.ring.line(cursor.seq);
            if cursor.sent == 0 && !client.sees(slot as u16, cursor.seq, line) {
                cursor.seq += 1;
                continue;
            }
            let text = self.ring.text(line);
            let text = text.strip_suffix(b"\n").unwrap_or(text);
            // The first line of a write has no separator, unless the write
            // before was cut short right after a line.
            let sep = if cursor.sent > 0 || pos == 0 { cursor.sep } else { true };
            // Most lines are ASCII already: their length is their seed length.
            let plain = text.is_ascii();
            let shown = if plain { text.len() } else { ascii(text).count() };
            let rest = usize::from(sep) + shown - usize::from(cursor.sent);
            match out.as_deref_mut() {
                Some(batch) => {
                    if pos > 0 && pos + rest > SEED_WRITE {
                        break;
                    }
                    let dst = &mut batch[pos..pos + rest];
                    let skip = usize::from(cursor.sent);
                    if plain && (!sep || skip > 0) {
                        dst.copy_from_slice(&text[skip - usize::from(sep)..]);
                    } else if plain {
                        dst[0] = b'\n';
                        dst[1..].copy_from_slice(text);
                    } else {
                        let wire = sep.then_some(b'\n').into_iter().chain(ascii(text));
                        for (slot, byte) in dst.iter_mut().zip(wire.skip(skip)) {
                            *slot = byte;
                        }
                    }
                    pos += rest;
                    cursor = Cursor { seq: cursor.seq + 1, sent: 0, sep: false };
                }
                None if sent >= rest => {
                    sent -= rest;
                    pos += rest;
                    cursor = Cursor { seq: cursor.seq + 1, sent: 0, sep: false };
                }
                None => {
                    cursor = Cursor { seq: cursor.seq, sent: cursor.sent + sent as u16, sep };
                    sent = 0;
                }
            }
        }
        if out.is_none() {
            self.clients[slot].cursor = cursor;
        }
        pos
    }
}

/// [`TOO_SLOW`] as a client of `dialect` gets it.
fn farewell_text(dialect: Dialect) -> &'static [u8] {
    match dialect {
        Dialect::Seed => &TOO_SLOW[..TOO_SLOW.len() - 1],
        _ => TOO_SLOW,
    }
}

/// A seed client's view of UTF-8 text: one byte per character, `?` for
/// anything that is not ASCII.
fn ascii(text: &[u8]) -> impl Iterator<Item = u8> + '_ {
    text.iter().filter(|&&b| b & 0xC0 != 0x80).map(|&b| if b.is_ascii() { b } else { b'?' })
}
