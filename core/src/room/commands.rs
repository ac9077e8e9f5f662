//! What a registered client says: chat lines and commands.

use super::input::shorten;
use super::*;
use crate::fmt::info;
use crate::nick::Nick;
use crate::wire::{LEFT, SAID};

const HELP: [&str; 8] = [
    "*** commands:",
    "***   /nick NEW        change your nickname",
    "***   /who             list who is in the room (@ marks operators)",
    "***   /me ACTION       say an action, shown as: * alice waves",
    "***   /msg NICK TEXT   send TEXT to NICK only",
    "***   /quit [REASON]   leave the room",
    "***   /help            this list",
    "***   //TEXT           say a line that starts with /",
];

/// What `/help` adds where the room has operators.
const OPERATOR_HELP: [&str; 4] = [
    "***   /op PASSWORD     become an operator",
    "***   /kick NICK [WHY] (operators) put NICK out of the room",
    "***   /ban NICK        (operators) put NICK out and refuse its address",
    "***   /unban ADDRESS   (operators) accept ADDRESS again",
];

impl Room<'_> {
    // ----- chatting ---------------------------------------------------------

    pub(super) fn chat(&mut self, id: ClientId, text: &str, now: Instant) {
        let nick = self.client(id).nick.clone();
        let Some(command) = text.strip_prefix('/') else {
            return self.say(&nick, text);
        };
        if command.starts_with('/') {
            return self.say(&nick, command);
        }
        let (name, arg) = command.split_once(' ').unwrap_or((command, ""));
        let arg = arg.trim();
        match name.to_ascii_lowercase_in::<8>().as_deref() {
            Some("nick") => self.rename(id, arg),
            Some("who") => self.who(id),
            Some("me") if !arg.is_empty() => {
                self.push(Recipient::Everyone, &[b"* ", nick.as_str().as_bytes(), b" ", arg.as_bytes(), b"\n"]);
            }
            Some("me") => self.notice(id, format_args!("*** usage: /me ACTION")),
            Some("msg") => self.private_message(id, arg),
            Some("quit") => self.leave(id, Reason::Quit, arg, now),
            Some("op") => self.op(id, arg),
            Some("kick") => self.kick(id, arg, now),
            Some("ban") => self.ban(id, arg, now),
            Some("unban") => self.unban(id, arg),
            Some("help") => {
                let operators = if self.op_password.is_some() { &OPERATOR_HELP[..] } else { &[] };
                for line in HELP.iter().chain(operators) {
                    self.push(Recipient::One(id), &[line.as_bytes(), b"\n"]);
                }
            }
            _ => {
                let shown = shorten(name);
                self.notice(id, format_args!("*** unknown command /{shown}, /help lists them"));
            }
        }
    }

    /// A chat line; one of only whitespace is ignored like an empty one.
    pub(super) fn say(&mut self, nick: &Nick, text: &str) {
        if !text.trim().is_empty() {
            self.push(Recipient::Everyone, &[nick.as_str().as_bytes(), SAID.as_bytes(), text.as_bytes(), b"\n"]);
        }
    }

    pub(super) fn rename(&mut self, id: ClientId, arg: &str) {
        if arg.is_empty() {
            return self.notice(id, format_args!("*** usage: /nick NEW"));
        }
        match self.check_nick(id, arg) {
            Ok(new) => {
                let old = core::mem::replace(&mut self.client_mut(id).nick, new.clone());
                info!("{} is now {}", old.as_str(), new.as_str());
                let (old, new) = (old.as_str().as_bytes(), new.as_str().as_bytes());
                self.push(Recipient::Everyone, &[b"*** ", old, b" is now known as ", new, b"\n"]);
            }
            Err(why) => {
                let shown = shorten(arg);
                self.notice(id, format_args!("*** nickname \"{shown}\" refused: {why}"));
            }
        }
    }

    pub(super) fn who(&mut self, id: ClientId) {
        let count = self.chatting().count();
        let mut line = Text::new();
        let _ = write!(line, "*** {count} in the room:");
        let mut listed = 0;
        for (_, client) in self.chatting() {
            // Keep room for the longest " and N more".
            if line.len() + 2 + client.nick.as_str().len() > MAX_LINE - 20 {
                break;
            }
            let mark = if client.operator { "@" } else { "" };
            let _ = write!(line, " {mark}{}", client.nick);
            listed += 1;
        }
        if listed < count {
            let _ = write!(line, " and {} more", count - listed);
        }
        let _ = line.push('\n');
        self.push(Recipient::One(id), &[line.as_bytes()]);
    }

    pub(super) fn private_message(&mut self, id: ClientId, arg: &str) {
        let (target, text) = arg.split_once(' ').unwrap_or((arg, ""));
        let text = text.trim_start();
        if target.is_empty() || text.is_empty() {
            return self.notice(id, format_args!("*** usage: /msg NICK TEXT"));
        }
        let found = self.chatting().find(|(_, client)| client.nick.same(target)).map(|(to, _)| to);
        let Some(to) = found else {
            let shown = shorten(target);
            return self.notice(id, format_args!("*** no such nickname: {shown}"));
        };
        let from = self.client(id).nick.clone();
        let to_nick = self.client(to).nick.clone();
        self.push(Recipient::One(to), &[b"*", from.as_str().as_bytes(), b"* ", text.as_bytes(), b"\n"]);
        self.push(Recipient::One(id), &[b"-> *", to_nick.as_str().as_bytes(), b"* ", text.as_bytes(), b"\n"]);
    }

    /// A registered client leaves: the room (the client included) sees
    /// `{nick} left!`, then its connection closes once that went out.
    pub(super) fn leave(&mut self, id: ClientId, reason: Reason, why: &str, now: Instant) {
        self.announce_left(id, why);
        self.start_leaving(id, reason, now);
    }

    pub(super) fn announce_left(&mut self, id: ClientId, why: &str) {
        let client = self.client_mut(id);
        let nick = client.nick.clone();
        if client.state == State::Chatting {
            // Out of the room from here on: if its own `left!` line pushes
            // the line it was reading out of the log, it is dropped, but not
            // announced a second time.
            client.state = State::Leaving;
        }
        info!("{} left", nick.as_str());
        if why.is_empty() {
            self.push(Recipient::Everyone, &[nick.as_str().as_bytes(), LEFT.as_bytes(), b"\n"]);
        } else {
            self.push(Recipient::Everyone, &[nick.as_str().as_bytes(), LEFT.as_bytes(), b" (", why.as_bytes(), b")\n"]);
        }
    }

    pub(super) fn start_leaving(&mut self, id: ClientId, reason: Reason, now: Instant) {
        let next = self.ring.next();
        let drain = self.config.drain_timeout;
        let client = self.client_mut(id);
        client.state = State::Leaving;
        client.reason = reason;
        client.window.until = next;
        client.deadline = now + drain;
        self.lists.arm(self.cells, id);
    }
}

/// ASCII lower case of a short word, if it fits `N` bytes.
trait ToAsciiLowercaseIn {
    fn to_ascii_lowercase_in<const N: usize>(&self) -> Option<String<N>>;
}

impl ToAsciiLowercaseIn for str {
    fn to_ascii_lowercase_in<const N: usize>(&self) -> Option<String<N>> {
        let mut out = String::new();
        for c in self.chars() {
            out.push(c.to_ascii_lowercase()).ok()?;
        }
        Some(out)
    }
}
