//! One room across several servers: what a member room hands out and what
//! it takes in.
//!
//! A room made a member ([`Room::join_cluster`](crate::Room::join_cluster))
//! applies nothing its clients do to itself. It hands each deed out as an
//! [`Event`], through [`Outgoing::Publish`]; something outside the core (a
//! broker, a sequencer) puts the events of every member into one order and
//! hands them back, the member's own included, to
//! [`Room::apply`](crate::Room::apply). So every client on every server sees
//! the same lines in the same order. Nicknames are claimed outside too
//! ([`Outgoing::Claim`], answered with
//! [`Room::claimed`](crate::Room::claimed)), so two servers never give one
//! nickname to two clients.
//!
//! An event is one line of UTF-8, which is also what goes over the wire
//! between servers (a nickname has no spaces, and a chat line no line
//! break):
//!
//! | event                  | bytes               | the room shows            |
//! |------------------------|---------------------|---------------------------|
//! | joined                 | `J alice`           | `alice joined!`           |
//! | said                   | `S alice hi there`  | `alice: hi there`         |
//! | action (`/me`)         | `A alice waves`     | `* alice waves`           |
//! | renamed (`/nick`)      | `R alice alicia`    | `*** alice is now known as alicia` |
//! | left (`/quit bye`)     | `L alice bye`       | `alice left! (bye)`       |
//! | left                   | `L alice`           | `alice left!`             |
//! | private (`/msg`)       | `P alice bob hi`    | bob: `*alice* hi`, alice: `-> *bob* hi` |

use core::fmt;

use crate::nick::Nick;
use crate::room::ClientId;
use crate::wire::MAX_LINE;

/// The longest reason a `left` event carries: what fits after `/quit `.
const MAX_WHY: usize = MAX_LINE - "/quit ".len();

/// Something a client of some member did, in the room's one order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // Each variant's line names its fields.
pub enum Event<'a> {
    /// `nick` joined the room.
    Joined { nick: &'a str },
    /// `nick` said `text`.
    Said { nick: &'a str, text: &'a str },
    /// `nick` did `text` (`/me`).
    Action { nick: &'a str, text: &'a str },
    /// `old` is now called `new`.
    Renamed { old: &'a str, new: &'a str },
    /// `nick` left, saying `why` (may be empty).
    Left { nick: &'a str, why: &'a str },
    /// `from` said `text` to `to` alone.
    Private { from: &'a str, to: &'a str, text: &'a str },
}

/// Bytes that are not an [`Event`]: a member applies nothing it cannot read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BadEvent;

impl fmt::Display for BadEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a room event")
    }
}

impl<'a> Event<'a> {
    /// Reads an event from its bytes. An event whose nicknames would be
    /// refused, whose text is longer than a client may send or not what
    /// cleaning leaves (see [`crate::clean()`]) is refused: a member takes
    /// from the others nothing it would not take from a client.
    pub fn parse(bytes: &'a [u8]) -> Result<Event<'a>, BadEvent> {
        let event = Self::parse_fields(bytes)?;
        let (nicks, text, limit): ([&str; 2], &str, usize) = match event {
            Event::Joined { nick } => ([nick, nick], "", 0),
            Event::Said { nick, text } | Event::Action { nick, text } => ([nick, nick], text, MAX_LINE),
            Event::Renamed { old, new } => ([old, new], "", 0),
            Event::Left { nick, why } => ([nick, nick], why, MAX_WHY),
            Event::Private { from, to, text } => ([from, to], text, MAX_LINE),
        };
        if nicks.iter().any(|nick| Nick::parse(nick).is_err()) || text.len() > limit || !is_clean(text) {
            return Err(BadEvent);
        }
        Ok(event)
    }

    fn parse_fields(bytes: &'a [u8]) -> Result<Event<'a>, BadEvent> {
        let text = core::str::from_utf8(bytes).map_err(|_| BadEvent)?;
        if text.contains(['\n', '\r']) {
            return Err(BadEvent);
        }
        let (kind, rest) = text.split_once(' ').ok_or(BadEvent)?;
        let word = |s: &'a str| -> Result<(&'a str, &'a str), BadEvent> {
            let (word, rest) = s.split_once(' ').unwrap_or((s, ""));
            if word.is_empty() {
                Err(BadEvent)
            } else {
                Ok((word, rest))
            }
        };
        let (nick, rest) = word(rest)?;
        let event = match kind {
            "J" if rest.is_empty() => Event::Joined { nick },
            "S" if !rest.is_empty() => Event::Said { nick, text: rest },
            "A" if !rest.is_empty() => Event::Action { nick, text: rest },
            "R" => match word(rest)? {
                (new, "") => Event::Renamed { old: nick, new },
                _ => return Err(BadEvent),
            },
            "L" => Event::Left { nick, why: rest },
            "P" => {
                let (to, text) = word(rest)?;
                if text.is_empty() {
                    return Err(BadEvent);
                }
                Event::Private { from: nick, to, text }
            }
            _ => return Err(BadEvent),
        };
        Ok(event)
    }

    /// The event's bytes, as [`Event::parse`] reads them, in pieces (no
    /// copy): at most 5 of them.
    pub(crate) fn pieces(&self) -> ([&'a [u8]; 6], usize) {
        let b = str::as_bytes;
        let space: &[u8] = b" ";
        match *self {
            Event::Joined { nick } => ([b"J ", b(nick), b"", b"", b"", b""], 2),
            Event::Said { nick, text } => ([b"S ", b(nick), space, b(text), b"", b""], 4),
            Event::Action { nick, text } => ([b"A ", b(nick), space, b(text), b"", b""], 4),
            Event::Renamed { old, new } => ([b"R ", b(old), space, b(new), b"", b""], 4),
            Event::Left { nick, why: "" } => ([b"L ", b(nick), b"", b"", b"", b""], 2),
            Event::Left { nick, why } => ([b"L ", b(nick), space, b(why), b"", b""], 4),
            Event::Private { from, to, text } => ([b"P ", b(from), space, b(to), space, b(text)], 6),
        }
    }
}

/// Whether cleaning would leave `text` as it is.
fn is_clean(text: &str) -> bool {
    let mut expected = text.chars();
    let mut same = true;
    crate::clean::clean(text.as_bytes(), |c| same = same && expected.next() == Some(c));
    same && expected.next().is_none()
}

impl fmt::Display for Event<'_> {
    /// The event's bytes: what [`Event::parse`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (pieces, n) = self.pieces();
        for piece in &pieces[..n] {
            // Every piece is a whole `&str`: the conversion cannot fail.
            f.write_str(core::str::from_utf8(piece).map_err(|_| fmt::Error)?)?;
        }
        Ok(())
    }
}

/// What a member room asks of the world outside, in the order it must be
/// done: take them with [`Room::poll_event`](crate::Room::poll_event) after
/// every call that may have made one (pump, apply, claimed, deadlines).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // Each variant's line names its fields.
pub enum Outgoing<'a> {
    /// Put this event in the room's order (its bytes: [`Event::parse`]
    /// reads them), then hand it back to every member.
    Publish(&'a str),
    /// Claim `nick` for client `id`, unique across the servers ignoring
    /// ASCII case; answer with [`Room::claimed`](crate::Room::claimed).
    Claim { id: ClientId, nick: &'a str },
    /// `nick` is free again, once every event published before this is in
    /// the order (its `left!` or its rename cannot come after a newcomer
    /// who takes it).
    Release(&'a str),
}

#[cfg(test)]
mod test {
    extern crate std;
    use std::string::ToString;

    use super::*;

    #[test]
    fn every_event_reads_back_as_written() {
        let events = [
            Event::Joined { nick: "alice" },
            Event::Said { nick: "alice", text: "hi  there: you" },
            Event::Action { nick: "bob", text: "waves" },
            Event::Renamed { old: "alice", new: "Alicia" },
            Event::Left { nick: "bob", why: "" },
            Event::Left { nick: "bob", why: "off to bed" },
            Event::Private { from: "alice", to: "bob", text: "psst, a secret" },
        ];
        for event in events {
            let bytes = event.to_string();
            assert_eq!(Event::parse(bytes.as_bytes()), Ok(event), "{bytes}");
        }
        assert_eq!(Event::Said { nick: "a", text: "b c" }.to_string(), "S a b c");
        assert_eq!(Event::Left { nick: "a", why: "" }.to_string(), "L a");
    }

    #[test]
    fn no_text_is_longer_than_a_client_may_send() {
        let longest = "x".repeat(MAX_LINE);
        assert!(Event::parse(std::format!("S bob {longest}").as_bytes()).is_ok());
        assert_eq!(Event::parse(std::format!("S bob {longest}y").as_bytes()), Err(BadEvent));
        assert_eq!(Event::parse(std::format!("A bob {longest}y").as_bytes()), Err(BadEvent));
        assert_eq!(Event::parse(std::format!("P bob al {longest}y").as_bytes()), Err(BadEvent));
        let why = "w".repeat(MAX_WHY);
        assert!(Event::parse(std::format!("L bob {why}").as_bytes()).is_ok());
        assert_eq!(Event::parse(std::format!("L bob {why}w").as_bytes()), Err(BadEvent));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            &b""[..],
            b"J",
            b"J ",
            b"J alice extra",
            b"S alice",
            b"A alice",
            b"R alice",
            b"R alice bob carol",
            b"P alice bob",
            b"X alice hi",
            b"S alice hi\nbob: forged",
            b"S \xff\xfe hi",
            b"S alice \x1b[2Jcleared",
            b"S alice \xe2\x80\xaereversed",
            b"J *alice",
            b"J alice:",
            b"R alice a:b",
            b"J an-overlong-nickname-of-more-than-32-bytes",
        ] {
            assert_eq!(Event::parse(bad), Err(BadEvent), "{bad:?}");
        }
    }
}
