//! The room as one member of a wider room (see [`crate::cluster`]).
//!
//! A member shows nothing its clients do until it comes back in the room's
//! one order: a deed becomes an [`Event`] in the outbox, which is lines of
//! the log that no client sees ([`Recipient::Cluster`]); the frontend takes
//! them with [`Room::poll_event`] and hands the ordered events back to
//! [`Room::apply`], where they are shown exactly as a room on its own shows
//! them. A nickname is taken only once the world outside says it is free
//! ([`Room::claimed`]); while a client waits for that, or the room is
//! paused, its input waits (in its buffer and its socket) as it does for
//! flood control.

use core::fmt::Write as _;

use super::*;
use crate::cluster::{BadEvent, Event, Outgoing};
use crate::fmt::{info, warning};
use crate::nick::Nick;
use heapless::Vec;

use crate::wire::{CLUSTER_LOST, CLUSTER_PAUSED, CLUSTER_RESUMED, GREETING, JOINED, LEFT, SAID};

/// Outbox entries not yet taken before the room stops reading from
/// clients: far fewer bytes than the smallest log on a host.
const OUTBOX_LIMIT: u64 = 64;

/// How many variants of a seed client's nickname are claimed before it is
/// turned away (it cannot be asked for another).
const SEED_TRIES: u8 = 16;

/// A nickname of a client on another server: an opaque storage cell, as
/// [`ClientStorage`] is. Callers allocate these ([`Room::join_cluster`]).
#[derive(Clone)]
pub struct RemoteStorage {
    nick: Nick,
}

impl RemoteStorage {
    /// A free cell.
    pub const EMPTY: RemoteStorage = RemoteStorage { nick: Nick::EMPTY };
}

/// What a member room keeps beside its own clients.
pub(super) struct Cluster<'a> {
    /// The room's clients on other servers.
    pub(super) remotes: &'a mut [RemoteStorage],
    /// The next line of the log the outbox has not handed out.
    pub(super) outbox: u64,
    /// The world outside is unreachable: no input is read.
    pub(super) paused: bool,
    /// Reading stopped because the outbox was full.
    pub(super) backlogged: bool,
    /// Nicknames whose `joined` went out for a client gone before it came
    /// back: that `joined` (and its `left`) are a stranger's, not those of
    /// a newcomer here who took the name meanwhile.
    ghosts: Vec<Nick, MAX_GHOSTS>,
}

/// Joins abandoned at once that a member tells apart from newcomers.
const MAX_GHOSTS: usize = 16;

/// Room for the lines one client's next line can push (its event, a
/// release, a notice) before the outbox's oldest untaken line would be
/// overwritten.
const OUTBOX_MARGIN: usize = 4 * MAX_OUT;

/// Where a member room's client stands with the nickname it asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Claim {
    /// Nothing outstanding.
    None,
    /// `wanted` was claimed; waiting for [`Room::claimed`].
    Asked,
    /// Its `joined` event went out; waiting for it to come back.
    Joining,
}

impl<'a> Room<'a> {
    /// Makes the room one member of a room spanning several servers (see
    /// [`crate::cluster`]); `remotes` holds the nicknames of the clients on
    /// the others (`/who`, `/msg`, unique nicknames). Call before any client
    /// is accepted; from then on, after every call that may have made work
    /// for the world outside, take it with [`Room::poll_event`].
    pub fn join_cluster(&mut self, remotes: &'a mut [RemoteStorage]) {
        for cell in remotes.iter_mut() {
            cell.nick = Nick::EMPTY;
        }
        let outbox = self.ring.next();
        self.cluster = Some(Cluster { remotes, outbox, paused: false, backlogged: false, ghosts: Vec::new() });
    }

    /// Whether the room is a member of a wider room.
    pub fn is_member(&self) -> bool {
        self.cluster.is_some()
    }

    /// The next thing the world outside must do for this member, in order;
    /// `None` once there is nothing (or the room is not a member).
    pub fn poll_event(&mut self) -> Option<Outgoing<'_>> {
        let seq = loop {
            let cluster = self.cluster.as_mut()?;
            let end = self.ring.next();
            let mut seq = cluster.outbox.max(self.ring.first());
            while seq < end && self.ring.line(seq).to() != Recipient::Cluster {
                seq += 1;
            }
            cluster.outbox = seq.saturating_add(1).min(end);
            if seq < end {
                break seq;
            }
            if !core::mem::replace(&mut cluster.backlogged, false) {
                return None;
            }
            // The outbox is empty: the clients it held up go on, which
            // may fill it again.
            self.unblock_all();
        };
        // Outbox lines are written below, from `&str`s: always UTF-8.
        let text = core::str::from_utf8(self.ring.text(self.ring.line(seq))).unwrap_or_default();
        let (tag, rest) = text.split_at(text.find(' ').unwrap_or(text.len()));
        let rest = rest.strip_prefix(' ').unwrap_or(rest);
        Some(match tag.strip_prefix('C') {
            Some(slot) => {
                let id = slot.parse().ok().and_then(ClientId::new).unwrap_or(ClientId(0));
                Outgoing::Claim { id, nick: rest }
            }
            None if tag == "F" => Outgoing::Release(rest),
            None => Outgoing::Publish(text),
        })
    }

    /// Adds a client of another server to the room's list, without a
    /// `joined!` line: those in the room when this server came.
    pub fn add_remote(&mut self, nick: &str) {
        let Ok(nick) = Nick::parse(nick) else { return };
        let Some(cluster) = self.cluster.as_mut() else { return };
        if cluster.remotes.iter().any(|cell| cell.nick.same(nick.as_str())) {
            return;
        }
        match cluster.remotes.iter_mut().find(|cell| cell.nick.as_str().is_empty()) {
            Some(cell) => cell.nick = nick,
            None => warning!("room list full: {} left out of /who and /msg", nick.as_str()),
        }
    }

    /// The answer to [`Outgoing::Claim`]: whether client `id` got `nick`.
    pub fn claimed(&mut self, id: ClientId, nick: &str, granted: bool, now: Instant) {
        self.tell_time(now);
        let waiting = self.get(id).is_some_and(|client| {
            client.claim == Claim::Asked
                && client.wanted.same(nick)
                && matches!(client.state, State::Greeting | State::Chatting)
        });
        if !waiting {
            // Its client left meanwhile (or the slot has a newcomer).
            if granted {
                self.outbox(&[b"F ", nick.as_bytes()]);
            }
            return;
        }
        let client = self.client_mut(id);
        client.claim = Claim::None;
        let wanted = client.wanted.clone();
        match (client.state, granted) {
            (State::Greeting, true) => {
                self.client_mut(id).claim = Claim::Joining;
                self.publish(Event::Joined { nick: wanted.as_str() });
            }
            (State::Chatting, true) => {
                // From here on it is the new name, here and in what it
                // publishes; the others learn it from the rename's event.
                let old = core::mem::replace(&mut self.client_mut(id).nick, wanted.clone());
                self.publish(Event::Renamed { old: old.as_str(), new: wanted.as_str() });
                self.outbox(&[b"F ", old.as_str().as_bytes()]);
            }
            (State::Greeting, false) if self.client(id).dialect == Dialect::Seed => {
                let client = self.client_mut(id);
                client.seed_tries = client.seed_tries.saturating_add(1);
                if client.seed_tries >= SEED_TRIES {
                    self.notice(id, format_args!("*** no free nickname like \"{}\" here, closing", wanted));
                    return self.start_leaving(id, Reason::Quit, now);
                }
                let next = Nick::salvage(&input::cleaned(&client.said)).variant(u32::from(client.seed_tries) + 1);
                return self.claim(id, next);
            }
            (State::Greeting, false) => {
                let shown = input::shorten(nick);
                self.notice(id, format_args!("*** nickname \"{shown}\" refused: {}", crate::NickError::Taken));
                self.push(Recipient::One(id), &[GREETING, b"\n"]);
            }
            (_, false) => {
                let shown = input::shorten(nick);
                self.notice(id, format_args!("*** nickname \"{shown}\" refused: {}", crate::NickError::Taken));
            }
            _ => {}
        }
        self.unblock(id, now);
    }

    /// One event of the room's order (this server's own included): shows
    /// it as a room on its own would, and brings in a client whose
    /// `joined` it was. An event proves the order reachable: a paused room
    /// resumes first, so its clients hear that it is back before what they
    /// missed.
    pub fn apply(&mut self, event: &[u8], now: Instant) -> Result<(), BadEvent> {
        self.tell_time(now);
        let event = Event::parse(event)?;
        self.resume(now);
        match event {
            Event::Joined { nick } => {
                let joining = if self.take_ghost(nick) {
                    None
                } else {
                    self.occupied().find(|(_, client)| {
                        client.claim == Claim::Joining && client.state == State::Greeting && client.wanted.same(nick)
                    })
                };
                if let Some((id, _)) = joining {
                    let wanted = self.client(id).wanted.clone();
                    self.client_mut(id).claim = Claim::None;
                    self.enter(id, wanted);
                    self.unblock(id, now);
                    return Ok(());
                }
                if self.find_chatting(nick).is_none() {
                    self.add_remote(nick);
                }
            }
            Event::Renamed { old, new } => {
                if self.find_chatting(new).is_some() {
                    // A client of this server: renamed when it was granted.
                } else if self.find_chatting(old).is_some() {
                    // Only a client's own rename renames it: this one is
                    // not its.
                    warning!("a rename of {} by another server, not applied", old);
                    return Ok(());
                } else {
                    self.rename_remote(old, new);
                }
            }
            Event::Left { nick, .. } => {
                let leaving = self.occupied().find(|(_, client)| client.left_pending && client.nick.same(nick));
                if let Some((id, _)) = leaving {
                    let seq = self.show(event);
                    let client = self.client_mut(id);
                    client.left_pending = false;
                    // It sees its own `left!`, then nothing more.
                    client.window.until = seq + 1;
                    self.lists.mark_ready(self.cells, id);
                    return Ok(());
                }
                if let Some(id) = self.find_chatting(nick) {
                    // The others saw it leave (this server was out of touch
                    // with them for too long) and its name is free there: it
                    // cannot stay, and has nothing more to publish or free.
                    self.show(event);
                    self.notice(id, format_args!("{}", CLUSTER_LOST));
                    self.start_leaving(id, Reason::OutOfTouch, now);
                    return Ok(());
                }
                self.remove_remote(nick);
            }
            _ => {}
        }
        self.show(event);
        Ok(())
    }

    /// An event from before this server came, for the log only (history on
    /// join): no client comes in or goes.
    pub fn recall(&mut self, event: &[u8]) -> Result<(), BadEvent> {
        match Event::parse(event)? {
            // Nobody here was party to it.
            Event::Private { .. } => {}
            event => {
                self.show(event);
            }
        }
        Ok(())
    }

    /// The world outside became unreachable: every client is told, once,
    /// and the room stops reading (lines wait in their sockets).
    pub fn pause(&mut self, now: Instant) {
        self.tell_time(now);
        let Some(cluster) = self.cluster.as_mut() else { return };
        if core::mem::replace(&mut cluster.paused, true) {
            return;
        }
        self.tell_everyone(CLUSTER_PAUSED);
    }

    /// The world outside is back: clients are told, and what waited is read.
    pub fn resume(&mut self, now: Instant) {
        self.tell_time(now);
        let Some(cluster) = self.cluster.as_mut() else { return };
        if !core::mem::replace(&mut cluster.paused, false) {
            return;
        }
        self.tell_everyone(CLUSTER_RESUMED);
        self.unblock_all();
    }

    /// Whether the room is paused ([`Room::pause`]).
    pub fn is_paused(&self) -> bool {
        self.cluster.as_ref().is_some_and(|cluster| cluster.paused)
    }

    // ----- inside the room --------------------------------------------------

    /// What a client does: shown at once in a room on its own, published
    /// in a member.
    pub(super) fn act(&mut self, event: Event<'_>) {
        if self.cluster.is_some() {
            self.publish(event);
        } else {
            self.show(event);
        }
    }

    /// Shows an event: the lines a room on its own shows for it. Returns
    /// the sequence number of the last.
    pub(super) fn show(&mut self, event: Event<'_>) -> u64 {
        let b = str::as_bytes;
        match event {
            Event::Joined { nick } => self.push(Recipient::Everyone, &[b(nick), b(JOINED), b"\n"]),
            Event::Said { nick, text } => self.push(Recipient::Everyone, &[b(nick), b(SAID), b(text), b"\n"]),
            Event::Action { nick, text } => self.push(Recipient::Everyone, &[b"* ", b(nick), b" ", b(text), b"\n"]),
            Event::Renamed { old, new } => {
                info!("{} is now {}", old, new);
                self.push(Recipient::Everyone, &[b"*** ", b(old), b" is now known as ", b(new), b"\n"])
            }
            Event::Left { nick, why: "" } => self.push(Recipient::Everyone, &[b(nick), b(LEFT), b"\n"]),
            Event::Left { nick, why } => self.push(Recipient::Everyone, &[b(nick), b(LEFT), b" (", b(why), b")\n"]),
            Event::Private { from, to, text } => {
                let mut seq = self.ring.next();
                if let Some(id) = self.find_chatting(to) {
                    seq = self.push(Recipient::One(id), &[b"*", b(from), b"* ", b(text), b"\n"]);
                }
                if let Some(id) = self.find_chatting(from) {
                    seq = self.push(Recipient::One(id), &[b"-> *", b(to), b"* ", b(text), b"\n"]);
                }
                seq
            }
        }
    }

    /// A client's nickname is valid and free here: in a room on its own it
    /// joins; in a member it is claimed first.
    pub(super) fn join(&mut self, id: ClientId, nick: Nick) {
        if self.cluster.is_some() {
            self.claim(id, nick);
        } else {
            self.enter(id, nick);
        }
    }

    /// Asks the world outside for `nick`, for client `id`; its input waits
    /// for the answer.
    pub(super) fn claim(&mut self, id: ClientId, nick: Nick) {
        let mut slot = String::<8>::new();
        let _ = write!(slot, "C{}", id.index());
        let client = self.client_mut(id);
        client.claim = Claim::Asked;
        client.wanted = nick;
        let wanted = client.wanted.clone();
        self.outbox(&[slot.as_bytes(), b" ", wanted.as_str().as_bytes()]);
    }

    /// A client in `joined` limbo leaves before it came back: the others
    /// see it come and go, and its nickname is freed.
    pub(super) fn abandon_claim(&mut self, id: ClientId) {
        let client = self.client_mut(id);
        let joining = core::mem::replace(&mut client.claim, Claim::None) == Claim::Joining;
        if !joining {
            return;
        }
        let nick = self.client(id).wanted.clone();
        if let Some(cluster) = self.cluster.as_mut() {
            if cluster.ghosts.push(nick.clone()).is_err() {
                warning!("too many joins abandoned at once: {} may show twice in /who", nick.as_str());
            }
            self.publish(Event::Left { nick: nick.as_str(), why: "" });
            self.outbox(&[b"F ", nick.as_str().as_bytes()]);
        }
    }

    /// A registered client leaves: in a member, its `left!` is published
    /// and its nickname freed once that is in the order.
    pub(super) fn publish_left(&mut self, nick: &Nick, why: &str) {
        self.publish(Event::Left { nick: nick.as_str(), why });
        self.outbox(&[b"F ", nick.as_str().as_bytes()]);
    }

    /// Whether the room holds off reading this client's input: the world
    /// outside is unreachable, its outbox is full, or the client waits for
    /// a nickname.
    pub(super) fn member_blocked(&self, id: ClientId) -> bool {
        self.waits_for_world(id) || self.outbox_full()
    }

    /// Whether the client's input waits for the world outside (a pause, a
    /// claim): [`Room::resume`] and [`Room::claimed`] wake it, no deadline
    /// does. A full outbox is different: it empties when the frontend takes
    /// it ([`Room::poll_event`] then wakes what it held), and a client's
    /// flood-control deadline still stands meanwhile.
    pub(super) fn waits_for_world(&self, id: ClientId) -> bool {
        let Some(cluster) = &self.cluster else { return false };
        cluster.paused || self.client(id).claim != Claim::None
    }

    /// Notes that a client stopped reading for [`Room::member_blocked`]:
    /// once the outbox is taken, it is read again.
    pub(super) fn note_blocked(&mut self) {
        let full = self.outbox_full();
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.backlogged |= full;
        }
    }

    /// Whether `nick` belongs to a client on another server.
    pub(super) fn remote_has(&self, nick: &str) -> bool {
        self.remotes().any(|remote| remote.same(nick))
    }

    /// The nicknames of the room's clients on other servers.
    pub(super) fn remotes(&self) -> impl Iterator<Item = &Nick> + '_ {
        let cells = self.cluster.as_ref().map_or(&[][..], |cluster| &cluster.remotes[..]);
        cells.iter().map(|cell| &cell.nick).filter(|nick| !nick.as_str().is_empty())
    }

    /// Whether the outbox holds so much that a client's next line could
    /// overwrite what the frontend has not taken yet.
    fn outbox_full(&self) -> bool {
        // A small log keeps half of itself for the outbox at most.
        let margin = OUTBOX_MARGIN.min(self.ring.capacity() / 2);
        self.cluster.as_ref().is_some_and(|cluster| {
            self.ring.next().saturating_sub(cluster.outbox) >= OUTBOX_LIMIT
                || self.ring.first_after_push(margin) > cluster.outbox
        })
    }

    /// Whether `nick` names an abandoned join ([`Cluster::ghosts`]); forgets it.
    fn take_ghost(&mut self, nick: &str) -> bool {
        let Some(cluster) = self.cluster.as_mut() else { return false };
        let Some(at) = cluster.ghosts.iter().position(|ghost| ghost.same(nick)) else { return false };
        cluster.ghosts.remove(at);
        true
    }

    fn publish(&mut self, event: Event<'_>) {
        let (pieces, n) = event.pieces();
        self.outbox(&pieces[..n]);
    }

    fn outbox(&mut self, parts: &[&[u8]]) {
        self.push(Recipient::Cluster, parts);
    }

    fn find_chatting(&self, nick: &str) -> Option<ClientId> {
        self.chatting().find(|(_, client)| client.nick.same(nick)).map(|(id, _)| id)
    }

    fn rename_remote(&mut self, old: &str, new: &str) {
        let Ok(new) = Nick::parse(new) else { return };
        let Some(cluster) = self.cluster.as_mut() else { return };
        match cluster.remotes.iter_mut().find(|cell| cell.nick.same(old)) {
            Some(cell) => cell.nick = new,
            None => self.add_remote(new.as_str()),
        }
    }

    fn remove_remote(&mut self, nick: &str) {
        let Some(cluster) = self.cluster.as_mut() else { return };
        if let Some(cell) = cluster.remotes.iter_mut().find(|cell| cell.nick.same(nick)) {
            cell.nick = Nick::EMPTY;
        }
    }

    /// A line for every client in the room, but not for the log's history.
    fn tell_everyone(&mut self, line: &[u8]) {
        self.push(Recipient::Notice, &[line]);
    }

    /// A client may read again: what waits in its buffer is handled now,
    /// and its socket is read at its next pump.
    fn unblock(&mut self, id: ClientId, now: Instant) {
        let client = self.client_mut(id);
        if client.dialect == Dialect::Unknown {
            // Its grace period starts again: a nickname's end may wait
            // unread in its socket.
            client.heard = now;
        }
        let seed = client.dialect == Dialect::Seed;
        self.handle_input(id, now, seed);
        self.end_of_hold(id);
        if self.client(id).paused {
            self.lists.mark_ready(self.cells, id);
        }
    }

    fn unblock_all(&mut self) {
        let now = self.now;
        let mut next = self.lists.first();
        while let Some(id) = next {
            next = Lists::after(self.cells, id);
            if matches!(self.client(id).state, State::Greeting | State::Chatting) {
                self.unblock(id, now);
            }
        }
    }
}
