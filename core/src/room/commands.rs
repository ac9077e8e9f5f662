//! What a registered client says: chat lines and commands.

use super::input::shorten;
use super::*;

const HELP: [&str; 8] = [
    "*** commands:",
    "***   /nick NEW        change your nickname",
    "***   /who             list who is in the room",
    "***   /me ACTION       say an action, shown as: * alice waves",
    "***   /msg NICK TEXT   send TEXT to NICK only",
    "***   /quit [REASON]   leave the room",
    "***   /help            this list",
    "***   //TEXT           say a line that starts with /",
];

impl Room<'_> {
    // ----- chatting ---------------------------------------------------------

    pub(super) fn chat(&mut self, slot: usize, text: &str, now: Instant) {
        let nick = self.clients[slot].nick.clone();
        let Some(command) = text.strip_prefix('/') else {
            return self.say(&nick, text);
        };
        if command.starts_with('/') {
            return self.say(&nick, command);
        }
        let (name, arg) = command.split_once(' ').unwrap_or((command, ""));
        let arg = arg.trim();
        match name.to_ascii_lowercase_in::<8>().as_deref() {
            Some("nick") => self.rename(slot, arg),
            Some("who") => self.who(slot),
            Some("me") if !arg.is_empty() => {
                self.push(EVERYONE, &[b"* ", nick.as_str().as_bytes(), b" ", arg.as_bytes(), b"\n"]);
            }
            Some("me") => self.notice(slot, format_args!("*** usage: /me ACTION")),
            Some("msg") => self.private_message(slot, arg),
            Some("quit") => self.leave(slot, Reason::Quit, arg, now),
            Some("help") => {
                for line in HELP {
                    self.push(slot as u16, &[line.as_bytes(), b"\n"]);
                }
            }
            _ => {
                let shown = shorten(name);
                self.notice(slot, format_args!("*** unknown command /{shown}, /help lists them"));
            }
        }
    }

    pub(super) fn say(&mut self, nick: &Nick, text: &str) {
        if !text.is_empty() {
            self.push(EVERYONE, &[nick.as_str().as_bytes(), b": ", text.as_bytes(), b"\n"]);
        }
    }

    pub(super) fn rename(&mut self, slot: usize, arg: &str) {
        if arg.is_empty() {
            return self.notice(slot, format_args!("*** usage: /nick NEW"));
        }
        match self.check_nick(slot, arg) {
            Ok(new) => {
                let old = core::mem::replace(&mut self.clients[slot].nick, new.clone());
                info!("{} is now {}", old.as_str(), new.as_str());
                let (old, new) = (old.as_str().as_bytes(), new.as_str().as_bytes());
                self.push(EVERYONE, &[b"*** ", old, b" is now known as ", new, b"\n"]);
            }
            Err(why) => {
                let shown = shorten(arg);
                self.notice(slot, format_args!("*** nickname \"{shown}\" refused: {why}"));
            }
        }
    }

    pub(super) fn who(&mut self, slot: usize) {
        let count = self.clients.iter().filter(|c| c.state == State::Chatting).count();
        let mut line = Text::new();
        let _ = write!(line, "*** {count} in the room:");
        let mut listed = 0;
        for client in self.clients.iter().filter(|c| c.state == State::Chatting) {
            // Keep room for the longest " and N more".
            if line.len() + 1 + client.nick.as_str().len() > MAX_LINE - 20 {
                break;
            }
            let _ = write!(line, " {}", client.nick);
            listed += 1;
        }
        if listed < count {
            let _ = write!(line, " and {} more", count - listed);
        }
        let _ = line.push('\n');
        self.push(slot as u16, &[line.as_bytes()]);
    }

    pub(super) fn private_message(&mut self, slot: usize, arg: &str) {
        let (target, text) = arg.split_once(' ').unwrap_or((arg, ""));
        let text = text.trim_start();
        if target.is_empty() || text.is_empty() {
            return self.notice(slot, format_args!("*** usage: /msg NICK TEXT"));
        }
        let found = self.clients.iter().position(|c| c.state == State::Chatting && c.nick.same(target));
        let Some(to) = found else {
            let shown = shorten(target);
            return self.notice(slot, format_args!("*** no such nickname: {shown}"));
        };
        let from = self.clients[slot].nick.clone();
        let to_nick = self.clients[to].nick.clone();
        self.push(to as u16, &[b"*", from.as_str().as_bytes(), b"* ", text.as_bytes(), b"\n"]);
        self.push(slot as u16, &[b"-> *", to_nick.as_str().as_bytes(), b"* ", text.as_bytes(), b"\n"]);
    }

    /// A registered client leaves: the room (the client included) sees
    /// `{nick} left!`, then its connection closes once that went out.
    pub(super) fn leave(&mut self, slot: usize, reason: Reason, why: &str, now: Instant) {
        self.announce_left(slot, why);
        self.start_leaving(slot, reason, now);
    }

    pub(super) fn announce_left(&mut self, slot: usize, why: &str) {
        let nick = self.clients[slot].nick.clone();
        info!("{} left", nick.as_str());
        if why.is_empty() {
            self.push(EVERYONE, &[nick.as_str().as_bytes(), b" left!\n"]);
        } else {
            self.push(EVERYONE, &[nick.as_str().as_bytes(), b" left! (", why.as_bytes(), b")\n"]);
        }
    }

    pub(super) fn start_leaving(&mut self, slot: usize, reason: Reason, now: Instant) {
        let next = self.ring.next();
        let client = &mut self.clients[slot];
        client.state = State::Leaving;
        client.reason = reason;
        client.until = next;
        client.deadline = now + self.config.drain_timeout_ms;
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
