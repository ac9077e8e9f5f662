//! A client's bytes: lines (or seed messages), flood control, nicknames.

use heapless::Vec;

use super::framing::Framed;
use super::slot::MAX_SAID;
use super::*;
use crate::clean::clean;
use crate::cluster::Event;
use crate::fmt::info;
use crate::nick::{Nick, NickError};
use crate::wire::{CONNECTED, GREETING, NOT_TLS, SLOW_DOWN};

impl Room<'_> {
    // ----- flood control ----------------------------------------------------

    /// Whether the room would read from this client now. Changes nothing.
    pub(super) fn wants_input(&self, id: ClientId, now: Instant) -> bool {
        let client = self.client(id);
        matches!(client.state, State::Greeting | State::Chatting)
            && !client.input.is_full()
            && (client.dialect != Dialect::Web || self.web_reading(id))
            && !self.member_blocked(id)
            && self.has_token(id, now)
    }

    fn has_token(&self, id: ClientId, now: Instant) -> bool {
        self.config.throttle.as_ref().is_none_or(|throttle| self.client(id).bucket.tokens(throttle, now) > 0)
    }

    pub(super) fn take_token(&mut self, id: ClientId, now: Instant) -> bool {
        let Some(throttle) = self.config.throttle else { return true };
        if self.client_mut(id).bucket.take(&throttle, now) {
            return true;
        }
        self.hold(id);
        false
    }

    /// Flood control is holding this client's lines: tell it, once per
    /// episode, and watch for its next token.
    pub(super) fn hold(&mut self, id: ClientId) {
        let client = self.client_mut(id);
        if client.state != State::Chatting {
            return;
        }
        let warned = core::mem::replace(&mut client.warned, true);
        self.lists.arm(self.cells, id);
        if !warned {
            self.push(Recipient::One(id), &[SLOW_DOWN]);
        }
    }

    /// The episode of held lines ends once nothing is held any more.
    pub(super) fn end_of_hold(&mut self, id: ClientId) {
        let client = self.client_mut(id);
        if client.warned && !client.paused && !client.input.data().contains(&b'\n') {
            client.warned = false;
        }
    }

    // ----- input ------------------------------------------------------------

    /// Handles complete lines (or, for a seed client at the end of a chunk,
    /// complete messages) in a client's input, as flood control allows.
    pub(super) fn handle_input(&mut self, id: ClientId, now: Instant, chunk_end: bool) {
        loop {
            let client = self.client_mut(id);
            if !matches!(client.state, State::Greeting | State::Chatting) || client.input.is_empty() {
                return;
            }
            if self.member_blocked(id) {
                // It waits for a nickname, or the room for the world outside.
                return self.note_blocked();
            }
            let client = self.client_mut(id);
            match client.dialect {
                Dialect::Seed => return self.handle_seed_input(id, now, chunk_end),
                Dialect::Web => return self.handle_web_input(id, now),
                // A TLS handshake record (content type 22, version 3.x).
                Dialect::Unknown if client.input.data().starts_with(&[0x16, 0x03]) => {
                    client.input.clear();
                    self.push(Recipient::One(id), &[NOT_TLS]);
                    return self.start_leaving(id, Reason::Protocol, now);
                }
                Dialect::Unknown | Dialect::Line => {}
            }
            match client.input.next_line() {
                Framed::Partial => return,
                Framed::Overlong => {
                    self.notice(id, format_args!("*** line too long (over {MAX_LINE} bytes), not sent"));
                }
                Framed::Line { len, size } => {
                    if !self.take_token(id, now) {
                        return;
                    }
                    let client = self.client_mut(id);
                    client.dialect = Dialect::Line;
                    let text = cleaned(&client.input.data()[..len]);
                    client.input.consume(size);
                    self.handle_text(id, &text, now);
                }
            }
        }
    }

    /// A seed client's input: messages are split where the client's own
    /// `{nick}: ` prefix starts one and at any `\n`; the prefix is dropped.
    fn handle_seed_input(&mut self, id: ClientId, now: Instant, chunk_end: bool) {
        let mut prefix = Vec::<u8, { MAX_SAID + 2 }>::new();
        let _ = prefix.extend_from_slice(&self.client(id).said);
        let _ = prefix.extend_from_slice(b": ");
        let input = &mut self.client_mut(id).input;
        if input.is_discarding() {
            // The tail of an overlong message: skip to the next message.
            match find(&input.data()[1..], &prefix).map(|at| at + 1) {
                Some(at) => {
                    input.consume(at);
                    input.set_discarding(false);
                }
                None => {
                    input.clear();
                    if chunk_end {
                        input.set_discarding(false);
                    }
                    return;
                }
            }
        }
        loop {
            let client = self.client(id);
            let data = client.input.data();
            if client.state != State::Chatting || data.is_empty() {
                return;
            }
            let start = if data.starts_with(&prefix) { prefix.len() } else { 0 };
            let next_prefix = find(&data[start..], &prefix).map(|at| start + at);
            let newline = data[start..].iter().position(|&b| b == b'\n').map(|at| start + at);
            let (end, skip) = match (next_prefix, newline) {
                (Some(p), Some(n)) if n < p => (n, 1),
                (None, Some(n)) => (n, 1),
                (Some(p), _) => (p, 0),
                (None, None) if chunk_end => (data.len(), 0),
                (None, None) => {
                    if client.input.is_full() {
                        // One message fills the buffer and goes on.
                        let input = &mut self.client_mut(id).input;
                        input.clear();
                        input.set_discarding(true);
                        self.notice(id, format_args!("*** message too long (over {MAX_LINE} bytes), not sent"));
                    }
                    return;
                }
            };
            if !self.take_token(id, now) {
                return;
            }
            let input = &mut self.client_mut(id).input;
            let message = &input.data()[start..end];
            let message = message.strip_suffix(b"\r").unwrap_or(message);
            let overlong = message.len() > MAX_LINE;
            let text = cleaned(message);
            input.consume(end + skip);
            if overlong {
                self.notice(id, format_args!("*** message too long (over {MAX_LINE} bytes), not sent"));
                continue;
            }
            self.handle_text(id, &text, now);
        }
    }

    // ----- registration -----------------------------------------------------

    /// A cleaned line from a client: a nickname while greeting, else a
    /// command or a chat line.
    pub(super) fn handle_text(&mut self, id: ClientId, text: &str, now: Instant) {
        match self.client(id).state {
            State::Greeting if self.client(id).awaiting_password => self.check_password(id, text, now),
            State::Greeting => self.register_line(id, text),
            State::Chatting => self.chat(id, text, now),
            _ => {}
        }
    }

    pub(super) fn register_line(&mut self, id: ClientId, text: &str) {
        match self.check_nick(id, text) {
            Ok(nick) if self.password.is_some() => self.ask_password(id, nick),
            Ok(nick) => self.join(id, nick),
            Err(why) => {
                let shown = shorten(text);
                self.notice(id, format_args!("*** nickname \"{shown}\" refused: {why}"));
                self.push(Recipient::One(id), &[GREETING, b"\n"]);
            }
        }
    }

    /// The grace period ended with a bare nickname: a seed-dialect client.
    /// It cannot be asked again, so it gets a valid, unique variant.
    pub(super) fn register_seed(&mut self, id: ClientId, now: Instant) {
        if self.password.is_some() {
            // It answers every prompt with its nickname: it cannot get in.
            self.client_mut(id).dialect = Dialect::Seed;
            self.notice(id, format_args!("*** this room has a password, which this client cannot send; closing"));
            return self.start_leaving(id, Reason::NoPassword, now);
        }
        let client = self.client_mut(id);
        client.dialect = Dialect::Seed;
        let data = client.input.data();
        // A first message may have followed the name before the grace period
        // ended: `NeuralNeural: Hello`.
        let name_len = (1..=data.len().min(MAX_SAID))
            .find(|&k| data[k..].starts_with(&data[..k]) && data[2 * k..].starts_with(b": "))
            .unwrap_or(data.len());
        let name = &data[..name_len];
        let name = name.strip_suffix(b"\r").unwrap_or(name);
        let cleaned = cleaned(name);
        client.said.clear();
        let _ = client.said.extend_from_slice(&name[..name.len().min(MAX_SAID)]);
        client.input.consume(name_len);
        let wanted = Nick::salvage(&cleaned);
        let nick = self.unique_variant(id, &wanted);
        self.join(id, nick);
        self.handle_input(id, now, true);
    }

    /// `text` as a nickname for `id`, if valid and not someone else's.
    pub(super) fn check_nick(&self, id: ClientId, text: &str) -> Result<Nick, NickError> {
        let nick = Nick::parse(text)?;
        if self.chatting().any(|(other, client)| other != id && client.nick.same(text)) || self.remote_has(text) {
            Err(NickError::Taken)
        } else {
            Ok(nick)
        }
    }

    /// `wanted`, or its first free variant (`alice2`, `alice3`, …).
    fn unique_variant(&self, id: ClientId, wanted: &Nick) -> Nick {
        if self.check_nick(id, wanted.as_str()).is_ok() {
            return wanted.clone();
        }
        // Start past the highest variant in use, so a crowd of namesakes
        // costs one pass each.
        let base = wanted.as_str();
        let highest = self
            .chatting()
            .filter_map(|(_, client)| {
                let nick = client.nick.as_str();
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
            .find(|nick| self.check_nick(id, nick.as_str()).is_ok())
            .unwrap_or_else(|| wanted.clone())
    }

    /// A client with a nickname comes in: the room sees it join, it gets
    /// the room's last lines.
    pub(super) fn enter(&mut self, id: ClientId, nick: Nick) {
        info!("Nickname is {}", nick.as_str());
        let next = self.ring.next();
        let throttle = self.config.throttle;
        let client = self.client_mut(id);
        client.state = State::Chatting;
        client.window.joined = next;
        // Choosing a nickname is not chatting: a newcomer starts with a full bucket.
        if let Some(throttle) = &throttle {
            client.bucket = super::bucket::Bucket::full(throttle);
        }
        if client.window.private_until <= client.cursor.seq {
            client.cursor = Cursor::at(next);
        }
        client.nick = nick;
        let nick = client.nick.clone();
        let dialect = client.dialect;
        self.show(Event::Joined { nick: nick.as_str() });
        self.push(Recipient::One(id), &[CONNECTED.as_bytes(), b"\n"]);
        // The tutorial's client would print the notices as chat: its
        // transcript stays as the tutorial shows it.
        if dialect != Dialect::Seed {
            self.replay_history(id, next);
            return;
        }
        let said = cleaned(&self.client(id).said);
        if nick.as_str() != said.as_str() {
            // It cannot be asked again: it was given a variant.
            let shown = shorten(&said);
            let why = match Nick::parse(&said) {
                Ok(_) => "is taken",
                Err(_) => "is not a valid nickname",
            };
            self.notice(id, format_args!("*** you are {nick} here: \"{shown}\" {why}"));
        }
    }
}

/// `bytes` cleaned (see [`clean()`]), cut at a character boundary to at
/// most [`MAX_LINE`] bytes (replacement characters can make it longer than
/// its input).
pub(super) fn cleaned(bytes: &[u8]) -> String<MAX_LINE> {
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
