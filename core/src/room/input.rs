//! A client's bytes: lines (or seed messages), flood control, nicknames.

use super::*;

impl Room<'_> {
    // ----- input ------------------------------------------------------------

    pub(super) fn wants_input(&mut self, slot: usize, now: Instant) -> bool {
        let client = &self.clients[slot];
        matches!(client.state, State::Greeting | State::Chatting)
            && usize::from(client.filled) < INPUT
            && self.has_token(slot, now)
    }

    pub(super) fn has_token(&mut self, slot: usize, now: Instant) -> bool {
        let Some(throttle) = self.config.throttle else { return true };
        let client = &mut self.clients[slot];
        while client.tokens < throttle.burst && now >= client.next_token {
            client.tokens += 1;
            client.next_token = client.next_token + throttle.interval_ms;
        }
        if client.tokens == throttle.burst {
            client.next_token = now + throttle.interval_ms;
        }
        client.tokens > 0
    }

    pub(super) fn take_token(&mut self, slot: usize, now: Instant) -> bool {
        if self.config.throttle.is_none() {
            return true;
        }
        let ok = self.has_token(slot, now);
        if ok {
            self.clients[slot].tokens -= 1;
        }
        ok
    }

    /// Drops the first `n` bytes of a client's input.
    pub(super) fn consume(&mut self, slot: usize, n: usize) {
        let client = &mut self.clients[slot];
        let filled = usize::from(client.filled);
        client.input.copy_within(n..filled, 0);
        client.filled = (filled - n) as u16;
    }

    /// Handles complete lines (or, for a seed client at the end of a chunk,
    /// complete messages) in a client's input, as flood control allows.
    pub(super) fn handle_input(&mut self, slot: usize, now: Instant, chunk_end: bool) {
        loop {
            let client = &self.clients[slot];
            if !matches!(client.state, State::Greeting | State::Chatting) || client.filled == 0 {
                return;
            }
            if client.dialect == Dialect::Seed {
                return self.handle_seed_input(slot, now, chunk_end);
            }
            let filled = usize::from(client.filled);
            let Some(end) = client.input[..filled].iter().position(|&b| b == b'\n') else {
                if filled == INPUT {
                    // No terminator in a full buffer: the line is too long.
                    if !client.discarding {
                        self.notice(slot, format_args!("*** line too long (over {MAX_LINE} bytes), not sent"));
                    }
                    self.clients[slot].discarding = true;
                    self.clients[slot].filled = 0;
                }
                return;
            };
            if client.discarding {
                self.clients[slot].discarding = false;
                self.consume(slot, end + 1);
                continue;
            }
            if !self.take_token(slot, now) {
                return;
            }
            let client = &mut self.clients[slot];
            client.dialect = Dialect::Line;
            let line = &client.input[..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > MAX_LINE {
                self.consume(slot, end + 1);
                self.notice(slot, format_args!("*** line too long (over {MAX_LINE} bytes), not sent"));
                continue;
            }
            let text = cleaned(line);
            self.consume(slot, end + 1);
            self.handle_text(slot, &text, now);
        }
    }

    /// A seed client's input: messages are split where the client's own
    /// `{nick}: ` prefix starts one and at any `\n`; the prefix is dropped.
    pub(super) fn handle_seed_input(&mut self, slot: usize, now: Instant, chunk_end: bool) {
        let mut prefix = Vec::<u8, { MAX_SAID + 2 }>::new();
        let _ = prefix.extend_from_slice(&self.clients[slot].said);
        let _ = prefix.extend_from_slice(b": ");
        if self.clients[slot].discarding {
            // The tail of an overlong message: skip to the next message.
            let client = &self.clients[slot];
            let data = &client.input[..usize::from(client.filled)];
            match find(&data[1..], &prefix).map(|at| at + 1) {
                Some(at) => {
                    self.consume(slot, at);
                    self.clients[slot].discarding = false;
                }
                None => {
                    self.clients[slot].filled = 0;
                    if chunk_end {
                        self.clients[slot].discarding = false;
                    }
                    return;
                }
            }
        }
        loop {
            let client = &self.clients[slot];
            let filled = usize::from(client.filled);
            if client.state != State::Chatting || filled == 0 {
                return;
            }
            let data = &client.input[..filled];
            let start = if data.starts_with(&prefix) { prefix.len() } else { 0 };
            let next_prefix = find(&data[start..], &prefix).map(|at| start + at);
            let newline = data[start..].iter().position(|&b| b == b'\n').map(|at| start + at);
            let (end, skip) = match (next_prefix, newline) {
                (Some(p), Some(n)) if n < p => (n, 1),
                (None, Some(n)) => (n, 1),
                (Some(p), _) => (p, 0),
                (None, None) if chunk_end => (filled, 0),
                (None, None) => {
                    if filled == INPUT {
                        // One message fills the buffer and goes on.
                        self.clients[slot].filled = 0;
                        self.clients[slot].discarding = true;
                        self.notice(slot, format_args!("*** message too long (over {MAX_LINE} bytes), not sent"));
                    }
                    return;
                }
            };
            if !self.take_token(slot, now) {
                return;
            }
            let client = &self.clients[slot];
            let message = &client.input[start..end];
            let message = message.strip_suffix(b"\r").unwrap_or(message);
            if message.len() > MAX_LINE {
                self.consume(slot, end + skip);
                self.notice(slot, format_args!("*** message too long (over {MAX_LINE} bytes), not sent"));
                continue;
            }
            let text = cleaned(message);
            self.consume(slot, end + skip);
            self.handle_text(slot, &text, now);
        }
    }

    // ----- registration -----------------------------------------------------

    /// A cleaned line from a client: a nickname while greeting, else a
    /// command or a chat line.
    pub(super) fn handle_text(&mut self, slot: usize, text: &str, now: Instant) {
        match self.clients[slot].state {
            State::Greeting => self.register_line(slot, text, now),
            State::Chatting => self.chat(slot, text, now),
            _ => {}
        }
    }

    pub(super) fn register_line(&mut self, slot: usize, text: &str, now: Instant) {
        match self.check_nick(slot, text) {
            Ok(nick) => self.join(slot, nick, now),
            Err(why) => {
                let shown = shorten(text);
                self.notice(slot, format_args!("*** nickname \"{shown}\" refused: {why}"));
                self.push(slot as u16, &[GREETING, b"\n"]);
            }
        }
    }

    /// The grace period ended with a bare nickname: a seed-dialect client.
    /// It cannot be asked again, so it gets a valid, unique variant.
    pub(super) fn register_seed(&mut self, slot: usize, now: Instant) {
        let client = &mut self.clients[slot];
        client.dialect = Dialect::Seed;
        let data = &client.input[..usize::from(client.filled)];
        // A first message may have followed the name before the grace period
        // ended: `NeuralNeural: Hello`.
        let name_len = (1..=data.len().min(MAX_SAID))
            .find(|&k| data[k..].starts_with(&data[..k]) && data[2 * k..].starts_with(b": "))
            .unwrap_or(data.len());
        let name = &data[..name_len];
        let name = name.strip_suffix(b"\r").unwrap_or(name);
        client.said.clear();
        let _ = client.said.extend_from_slice(&name[..name.len().min(MAX_SAID)]);
        let cleaned = cleaned(name);
        self.consume(slot, name_len);
        let wanted = Nick::salvage(&cleaned);
        let nick = self.unique_variant(slot, &wanted);
        self.join(slot, nick.clone(), now);
        if nick.as_str() != cleaned.as_str() {
            let shown = shorten(&cleaned);
            let why = match self.check_nick(slot, &cleaned) {
                Err(NickError::Taken) | Ok(_) => "is taken",
                Err(_) => "is not a valid nickname",
            };
            self.notice(slot, format_args!("*** you are {nick} here: \"{shown}\" {why}"));
        }
        self.handle_input(slot, now, true);
    }

    /// `text` as a nickname for `slot`, if valid and not someone else's.
    pub(super) fn check_nick(&self, slot: usize, text: &str) -> Result<Nick, NickError> {
        let nick = Nick::parse(text)?;
        let taken =
            self.clients.iter().enumerate().any(|(i, c)| i != slot && c.state == State::Chatting && c.nick.same(text));
        if taken {
            Err(NickError::Taken)
        } else {
            Ok(nick)
        }
    }

    /// `wanted`, or its first free variant (`alice2`, `alice3`, …).
    pub(super) fn unique_variant(&self, slot: usize, wanted: &Nick) -> Nick {
        if self.check_nick(slot, wanted.as_str()).is_ok() {
            return wanted.clone();
        }
        // Start past the highest variant in use, so a crowd of namesakes
        // costs one pass each.
        let base = wanted.as_str();
        let highest = self
            .clients
            .iter()
            .filter(|c| c.state == State::Chatting)
            .filter_map(|c| {
                let nick = c.nick.as_str();
                let head = nick.get(..base.len())?;
                let tail = nick.get(base.len()..)?;
                if head.eq_ignore_ascii_case(base) {
                    tail.parse::<u32>().ok()
                } else {
                    None
                }
            })
            .max()
            .unwrap_or(1);
        (highest.saturating_add(1)..)
            .chain(2..)
            .map(|n| wanted.variant(n))
            .find(|nick| self.check_nick(slot, nick.as_str()).is_ok())
            .unwrap_or_else(|| wanted.clone())
    }

    pub(super) fn join(&mut self, slot: usize, nick: Nick, _now: Instant) {
        info!("Nickname is {}", nick.as_str());
        let next = self.ring.next();
        let client = &mut self.clients[slot];
        client.state = State::Chatting;
        client.joined = next;
        // Choosing a nickname is not chatting: a newcomer starts with a full bucket.
        client.tokens = self.config.throttle.map_or(0, |t| t.burst);
        if client.private_until <= client.cursor.seq {
            client.cursor = Cursor { seq: next, sent: 0, sep: false };
        }
        client.nick = nick;
        let nick = client.nick.clone();
        self.push(EVERYONE, &[nick.as_str().as_bytes(), b" joined!\n"]);
        self.push(slot as u16, &[b"Connected to server!\n"]);
    }
}

/// `bytes` cleaned (see [`clean()`]), cut at a character boundary to at
/// most [`MAX_LINE`] bytes (replacement characters can make it longer than
/// its input).
fn cleaned(bytes: &[u8]) -> String<MAX_LINE> {
    let mut text = String::new();
    let mut full = false;
    clean(bytes, |c| {
        full = full || text.push(c).is_err();
    });
    text
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// At most 40 bytes of `text`, for quoting a peer's input in a notice.
pub(super) fn shorten(text: &str) -> &str {
    let mut end = text.len().min(40);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
