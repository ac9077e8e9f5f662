//! What a registered client says: chat lines and commands.

use super::input::shorten;
use super::*;
use crate::cluster::Event;
use crate::fmt::info;
use crate::nick::Nick;

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
            Some("me") if !arg.is_empty() => self.act(Event::Action { nick: nick.as_str(), text: arg }),
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
            self.act(Event::Said { nick: nick.as_str(), text });
        }
    }

    pub(super) fn rename(&mut self, id: ClientId, arg: &str) {
        if arg.is_empty() {
            return self.notice(id, format_args!("*** usage: /nick NEW"));
        }
        match self.check_nick(id, arg) {
            // Its own name in other letters is no claim on anything new.
            Ok(new) if self.is_member() && !self.client(id).nick.same(new.as_str()) => self.claim(id, new),
            Ok(new) => {
                let old = core::mem::replace(&mut self.client_mut(id).nick, new.clone());
                self.act(Event::Renamed { old: old.as_str(), new: new.as_str() });
            }
            Err(why) => {
                let shown = shorten(arg);
                self.notice(id, format_args!("*** nickname \"{shown}\" refused: {why}"));
            }
        }
    }

    pub(super) fn who(&mut self, id: ClientId) {
        let count = self.chatting().count() + self.remotes().count();
        let mut line = Text::new();
        let _ = write!(line, "*** {count} in the room:");
        let mut listed = 0;
        let local = self.chatting().map(|(_, client)| (client.operator, &client.nick));
        for (operator, nick) in local.chain(self.remotes().map(|nick| (false, nick))) {
            // Keep room for the longest " and N more".
            if line.len() + 2 + nick.as_str().len() > MAX_LINE - 20 {
                break;
            }
            let mark = if operator { "@" } else { "" };
            let _ = write!(line, " {mark}{nick}");
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
        let from = self.client(id).nick.clone();
        let local = self.chatting().find(|(_, client)| client.nick.same(target)).map(|(_, client)| client.nick.clone());
        let remote = || self.remotes().find(|nick| nick.same(target)).cloned();
        let Some(to) = local.clone().or_else(remote) else {
            let shown = shorten(target);
            return self.notice(id, format_args!("*** no such nickname: {shown}"));
        };
        let event = Event::Private { from: from.as_str(), to: to.as_str(), text };
        // Between two clients of this server it needs no order: it goes at once.
        if local.is_some() {
            self.show(event);
        } else {
            self.act(event);
        }
    }

    /// A registered client leaves: the room (the client included) sees
    /// `{nick} left!`, then its connection closes once that went out.
    pub(super) fn leave(&mut self, id: ClientId, reason: Reason, why: &str, now: Instant) {
        self.announce_left(id, why);
        self.start_leaving(id, reason, now);
        if self.is_member() {
            // It sees the room until its own `left!` comes back.
            let client = self.client_mut(id);
            client.left_pending = true;
            client.window.until = u64::MAX;
        }
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
        if self.is_member() {
            self.publish_left(&nick, why);
        } else {
            self.show(Event::Left { nick: nick.as_str(), why });
        }
    }

    pub(super) fn start_leaving(&mut self, id: ClientId, reason: Reason, now: Instant) {
        self.abandon_claim(id);
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
