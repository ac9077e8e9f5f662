//! Who may come in and who may throw out: the room's password, operators,
//! `/kick`, `/ban` and `/unban`.
//!
//! Passwords are compared in constant time and never logged, echoed or
//! stored beyond the caller's own bytes. A connection has
//! [`PASSWORD_TRIES`] wrong passwords in all, to get in or to become an
//! operator: then it is closed (getting in) or refused (`/op`), and every
//! wrong `/op` is logged with the peer's address.

use core::net::IpAddr;

use subtle::ConstantTimeEq;

use super::input::shorten;
use super::*;
use crate::fmt::{info, warning};
use crate::nick::Nick;
use crate::wire::{GREETING, PASSWORD_ASK, PASSWORD_TRIES, WRONG_PASSWORD};

/// "try" or "tries".
fn tries(n: u8) -> &'static str {
    if n == 1 {
        "try"
    } else {
        "tries"
    }
}

/// Whether `given` is `secret`, in time that depends on their lengths only.
fn same_secret(given: &[u8], secret: &[u8]) -> bool {
    given.ct_eq(secret).into()
}

impl Room<'_> {
    /// A valid, free nickname arrived and the room has a password: ask it.
    pub(super) fn ask_password(&mut self, id: ClientId, nick: Nick) {
        let client = self.client_mut(id);
        client.nick = nick;
        client.awaiting_password = true;
        self.push(Recipient::One(id), &[PASSWORD_ASK]);
    }

    /// The line after the nickname, in a room with a password.
    pub(super) fn check_password(&mut self, id: ClientId, text: &str, now: Instant) {
        let Some(password) = self.password else { return };
        if same_secret(text.as_bytes(), password) {
            let client = self.client_mut(id);
            client.awaiting_password = false;
            let nick = client.nick.clone();
            // Someone may have taken the nickname while it typed.
            return match self.check_nick(id, nick.as_str()) {
                Ok(nick) => self.join(id, nick),
                Err(why) => {
                    let shown = shorten(nick.as_str());
                    self.notice(id, format_args!("*** nickname \"{shown}\" refused: {why}"));
                    self.push(Recipient::One(id), &[GREETING, b"\n"]);
                }
            };
        }
        let left = self.wrong_password(id);
        if left == 0 {
            self.notice(id, format_args!("{WRONG_PASSWORD}, closing"));
            self.start_leaving(id, Reason::WrongPassword, now);
        } else {
            self.notice(id, format_args!("{WRONG_PASSWORD}, {left} {} left", tries(left)));
        }
    }

    /// Counts a wrong password; returns the tries the connection has left.
    fn wrong_password(&mut self, id: ClientId) -> u8 {
        let client = self.client_mut(id);
        client.wrong_passwords = client.wrong_passwords.saturating_add(1);
        PASSWORD_TRIES.saturating_sub(client.wrong_passwords)
    }

    /// `/op PASSWORD`.
    pub(super) fn op(&mut self, id: ClientId, given: &str) {
        let client = self.client(id);
        let Some(secret) = self.op_password else {
            return self.notice(id, format_args!("*** this room has no operators"));
        };
        if client.operator {
            return self.notice(id, format_args!("*** you are an operator already"));
        }
        if client.wrong_passwords >= PASSWORD_TRIES {
            return self.notice(id, format_args!("*** no more /op tries on this connection"));
        }
        if same_secret(given.as_bytes(), secret) {
            self.client_mut(id).operator = true;
            info!("{} is an operator", self.client(id).nick.as_str());
            return self.notice(id, format_args!("*** you are an operator now"));
        }
        let left = self.wrong_password(id);
        let client = self.client(id);
        match client.peer {
            Some(peer) => warning!("wrong /op password from {} ({})", client.nick.as_str(), Peer(peer)),
            None => warning!("wrong /op password from {}", client.nick.as_str()),
        }
        self.notice(id, format_args!("*** wrong operator password, {left} {} left", tries(left)));
    }

    /// Whether `id` may use an operator's command; tells it if not.
    fn operator_only(&mut self, id: ClientId, command: &str) -> bool {
        let operator = self.client(id).operator;
        if !operator {
            self.notice(id, format_args!("*** /{command} is for operators"));
        }
        operator
    }

    /// The client in the room called `nick`; tells `id` if there is none.
    fn target(&mut self, id: ClientId, nick: &str, usage: &str) -> Option<ClientId> {
        if nick.is_empty() {
            self.notice(id, format_args!("*** usage: {usage}"));
            return None;
        }
        let found = self.chatting().find(|(_, client)| client.nick.same(nick)).map(|(to, _)| to);
        if found.is_none() {
            let shown = shorten(nick);
            self.notice(id, format_args!("*** no such nickname: {shown}"));
        }
        found
    }

    /// `/kick NICK [REASON]`: the room sees `{nick} left! (kicked by {op}[: REASON])`.
    pub(super) fn kick(&mut self, id: ClientId, arg: &str, now: Instant) {
        if !self.operator_only(id, "kick") {
            return;
        }
        let (nick, why) = arg.split_once(' ').unwrap_or((arg, ""));
        let Some(target) = self.target(id, nick, "/kick NICK [REASON]") else { return };
        self.throw_out(id, target, "kicked", why.trim(), Reason::Kicked, now);
    }

    /// `/ban NICK`: its address is refused from now on, and it is thrown out.
    pub(super) fn ban(&mut self, id: ClientId, arg: &str, now: Instant) {
        if !self.operator_only(id, "ban") {
            return;
        }
        let Some(target) = self.target(id, arg, "/ban NICK") else { return };
        let Some(peer) = self.client(target).peer else {
            let shown = shorten(arg);
            return self.notice(id, format_args!("*** cannot ban {shown}: its address is not known"));
        };
        if !self.bans.contains(&peer) && self.bans.push(peer).is_err() {
            return self.notice(id, format_args!("*** the ban list is full ({MAX_BANS}): /unban one first"));
        }
        info!("{} banned {}", self.client(id).nick.as_str(), Peer(peer));
        self.notice(id, format_args!("*** banned {}", Peer(peer)));
        self.throw_out(id, target, "banned", "", Reason::Banned, now);
    }

    /// `/unban ADDRESS`.
    pub(super) fn unban(&mut self, id: ClientId, arg: &str) {
        if !self.operator_only(id, "unban") {
            return;
        }
        let Ok(peer) = arg.parse::<IpAddr>() else {
            return self.notice(id, format_args!("*** usage: /unban ADDRESS (an IPv4 or IPv6 address)"));
        };
        match self.bans.iter().position(|&banned| banned == peer) {
            Some(at) => {
                self.bans.swap_remove(at);
                info!("{} unbanned {}", self.client(id).nick.as_str(), Peer(peer));
                self.notice(id, format_args!("*** unbanned {}", Peer(peer)));
            }
            None => self.notice(id, format_args!("*** {} is not banned", Peer(peer))),
        }
    }

    /// `target` leaves, and the room sees which operator did it and why.
    fn throw_out(&mut self, by: ClientId, target: ClientId, what: &str, why: &str, reason: Reason, now: Instant) {
        let mut text = Text::new();
        let op = self.client(by).nick.clone();
        let _ = write!(text, "{what} by {op}");
        if !why.is_empty() {
            let _ = write!(text, ": {}", shorten(why));
        }
        self.leave(target, reason, &text, now);
    }
}

/// An address as logs show it, under either logging backend.
struct Peer(IpAddr);

impl fmt::Display for Peer {
    /// Dotted IPv4, or IPv6 as eight groups without `::` shortening (valid,
    /// and much smaller code on a board than the standard formatting).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => {
                let [a, b, c, d] = v4.octets();
                write!(f, "{a}.{b}.{c}.{d}")
            }
            IpAddr::V6(v6) => {
                let [a, b, c, d, e, g, h, i] = v6.segments();
                write!(f, "{a:x}:{b:x}:{c:x}:{d:x}:{e:x}:{g:x}:{h:x}:{i:x}")
            }
        }
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Peer {
    fn format(&self, f: defmt::Formatter) {
        match self.0 {
            IpAddr::V4(v4) => {
                let [a, b, c, d] = v4.octets();
                defmt::write!(f, "{}.{}.{}.{}", a, b, c, d)
            }
            IpAddr::V6(v6) => defmt::write!(f, "{=[u8]:02x}", v6.octets()),
        }
    }
}
