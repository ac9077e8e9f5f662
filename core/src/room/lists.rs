//! Which slots the room has to look at, so a wake-up costs what is active.
//!
//! A room of 10,000 mostly idle clients must not scan 10,000 slots for each
//! line. The slots are therefore linked into lists through the slots
//! themselves (no storage of their own, as smoltcp keeps its socket set in
//! the caller's cells):
//!
//! - **free** and **occupied**: accepting takes the free slot freed
//!   longest ago, and everything that concerns "everyone in the room"
//!   (broadcasts, `/who`, nickname checks) walks the occupied ones only, in
//!   the order they came in;
//! - **ready**: the slots the room has news for (a line addressed to them,
//!   a drop, a deadline passed), which [`Lists::poll_ready`] hands to the
//!   frontend; a broadcast marks the whole occupied list at once rather
//!   than queueing every slot;
//! - **timed**: the slots with a deadline (registration, the seed grace
//!   period, a flood-control token, a drain), the only ones that
//!   `handle_timeout` and `poll_timeout` look at.

use super::ClientId;

/// A slot's places in the lists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Links {
    /// Neighbours in the free or the occupied list.
    prev: Option<ClientId>,
    next: Option<ClientId>,
    /// Behind it in the ready queue, while `queued`.
    ready_next: Option<ClientId>,
    queued: bool,
    /// Behind it in the timed list, while `timed`.
    timed_next: Option<ClientId>,
    timed: bool,
}

impl Links {
    pub const NONE: Links =
        Links { prev: None, next: None, ready_next: None, queued: false, timed_next: None, timed: false };
}

/// Storage cells that carry [`Links`].
pub(crate) trait Linked {
    fn links(&self) -> &Links;
    fn links_mut(&mut self) -> &mut Links;
}

/// Both ends of a list.
#[derive(Clone, Copy, Debug, Default)]
struct Ends {
    head: Option<ClientId>,
    tail: Option<ClientId>,
}

/// The lists' ends; the links are in the slots.
#[derive(Debug, Default)]
pub(crate) struct Lists {
    free: Ends,
    occupied: Ends,
    ready: Ends,
    timed: Option<ClientId>,
    /// A broadcast since the last walk: every occupied slot has news.
    broadcast: bool,
    /// The next slot of the walk over the occupied list, while walking.
    walk: Option<ClientId>,
}

fn at<T: Linked>(cells: &mut [T], id: ClientId) -> &mut Links {
    cells[id.index()].links_mut()
}

impl Lists {
    /// Every slot of `cells` free, in order.
    pub fn new<T: Linked>(cells: &mut [T]) -> Lists {
        let mut lists = Lists::default();
        for index in 0..cells.len() {
            *cells[index].links_mut() = Links::NONE;
            if let Some(id) = ClientId::new(index) {
                lists.push_free(cells, id);
            }
        }
        lists
    }

    /// Takes the slot freed longest ago into the occupied list.
    pub fn occupy<T: Linked>(&mut self, cells: &mut [T]) -> Option<ClientId> {
        let id = self.free.head?;
        self.free.head = at(cells, id).next;
        if self.free.head.is_none() {
            self.free.tail = None;
        }
        let tail = self.occupied.tail;
        *at(cells, id) = Links { prev: tail, next: None, ..*at(cells, id) };
        match tail {
            Some(tail) => at(cells, tail).next = Some(id),
            None => self.occupied.head = Some(id),
        }
        self.occupied.tail = Some(id);
        Some(id)
    }

    /// Moves an occupied slot back to the free list.
    pub fn release<T: Linked>(&mut self, cells: &mut [T], id: ClientId) {
        let Links { prev, next, .. } = *at(cells, id);
        match prev {
            Some(prev) => at(cells, prev).next = next,
            None => self.occupied.head = next,
        }
        match next {
            Some(next) => at(cells, next).prev = prev,
            None => self.occupied.tail = prev,
        }
        if self.walk == Some(id) {
            self.walk = next;
        }
        self.push_free(cells, id);
    }

    fn push_free<T: Linked>(&mut self, cells: &mut [T], id: ClientId) {
        let links = at(cells, id);
        links.prev = None;
        links.next = None;
        match self.free.tail {
            Some(tail) => at(cells, tail).next = Some(id),
            None => self.free.head = Some(id),
        }
        self.free.tail = Some(id);
    }

    /// The first occupied slot, in the order they were taken.
    pub fn first(&self) -> Option<ClientId> {
        self.occupied.head
    }

    /// The occupied slot after `id`.
    pub fn after<T: Linked>(cells: &[T], id: ClientId) -> Option<ClientId> {
        cells[id.index()].links().next
    }

    /// The room has news for `id`.
    pub fn mark_ready<T: Linked>(&mut self, cells: &mut [T], id: ClientId) {
        let links = at(cells, id);
        if links.queued {
            return;
        }
        links.queued = true;
        links.ready_next = None;
        match self.ready.tail {
            Some(tail) => at(cells, tail).ready_next = Some(id),
            None => self.ready.head = Some(id),
        }
        self.ready.tail = Some(id);
    }

    /// The room has news for every occupied slot.
    pub fn mark_all_ready(&mut self) {
        self.broadcast = true;
    }

    /// The next slot with news: the queued ones first, then, after a
    /// broadcast, each occupied slot once. A slot may come up twice; one
    /// freed after it was marked comes up too (skip it).
    pub fn poll_ready<T: Linked>(&mut self, cells: &mut [T]) -> Option<ClientId> {
        if let Some(id) = self.ready.head {
            let links = at(cells, id);
            links.queued = false;
            self.ready.head = links.ready_next.take();
            if self.ready.head.is_none() {
                self.ready.tail = None;
            }
            return Some(id);
        }
        if self.walk.is_none() && self.broadcast {
            self.broadcast = false;
            self.walk = self.occupied.head;
        }
        let id = self.walk?;
        self.walk = at(cells, id).next;
        Some(id)
    }

    /// `id` has a deadline to watch.
    pub fn arm<T: Linked>(&mut self, cells: &mut [T], id: ClientId) {
        let links = at(cells, id);
        if !links.timed {
            links.timed = true;
            links.timed_next = self.timed;
            self.timed = Some(id);
        }
    }

    /// The first slot with a deadline.
    pub fn first_timed(&self) -> Option<ClientId> {
        self.timed
    }

    /// The slot with a deadline after `id`.
    pub fn after_timed<T: Linked>(cells: &[T], id: ClientId) -> Option<ClientId> {
        cells[id.index()].links().timed_next
    }

    /// Empties the timed list and returns its first slot: walk it with
    /// [`Lists::disarm`], and [`Lists::arm`] again what still has a deadline.
    pub fn take_timed(&mut self) -> Option<ClientId> {
        self.timed.take()
    }

    /// Takes `id` off a taken timed list; returns the slot after it.
    pub fn disarm<T: Linked>(cells: &mut [T], id: ClientId) -> Option<ClientId> {
        let links = at(cells, id);
        links.timed = false;
        links.timed_next.take()
    }
}

#[cfg(test)]
mod test {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    impl Linked for Links {
        fn links(&self) -> &Links {
            self
        }
        fn links_mut(&mut self) -> &mut Links {
            self
        }
    }

    fn id(index: usize) -> ClientId {
        ClientId::new(index).unwrap()
    }

    fn occupied(lists: &Lists, cells: &[Links]) -> Vec<usize> {
        core::iter::successors(lists.first(), |&id| Lists::after(cells, id)).map(ClientId::index).collect()
    }

    #[test]
    fn slots_are_taken_in_order_and_a_freed_one_last() {
        let mut cells = [Links::NONE; 3];
        let mut lists = Lists::new(&mut cells);
        let taken: Vec<usize> = (0..3).filter_map(|_| lists.occupy(&mut cells)).map(ClientId::index).collect();
        assert_eq!(taken, [0, 1, 2]);
        assert_eq!(lists.occupy(&mut cells), None, "all taken");
        lists.release(&mut cells, id(1));
        assert_eq!(occupied(&lists, &cells), [0, 2]);
        assert_eq!(lists.occupy(&mut cells), Some(id(1)));
        assert_eq!(occupied(&lists, &cells), [0, 2, 1], "the order they came in");
    }

    #[test]
    fn ready_slots_come_once_each_then_a_broadcast_walks_everyone() {
        let mut cells = [Links::NONE; 4];
        let mut lists = Lists::new(&mut cells);
        for _ in 0..3 {
            lists.occupy(&mut cells);
        }
        lists.mark_ready(&mut cells, id(2));
        lists.mark_ready(&mut cells, id(0));
        lists.mark_ready(&mut cells, id(2));
        lists.mark_all_ready();
        let polled: Vec<usize> = core::iter::from_fn(|| lists.poll_ready(&mut cells)).map(ClientId::index).collect();
        assert_eq!(polled, [2, 0, 0, 1, 2]);
        assert_eq!(lists.poll_ready(&mut cells), None);
    }

    #[test]
    fn a_slot_freed_during_a_walk_does_not_derail_it() {
        let mut cells = [Links::NONE; 3];
        let mut lists = Lists::new(&mut cells);
        for _ in 0..3 {
            lists.occupy(&mut cells);
        }
        lists.mark_all_ready();
        assert_eq!(lists.poll_ready(&mut cells), Some(id(0)));
        lists.release(&mut cells, id(1));
        assert_eq!(lists.poll_ready(&mut cells), Some(id(2)));
        assert_eq!(lists.poll_ready(&mut cells), None);
    }

    #[test]
    fn the_timed_list_is_walked_and_rebuilt() {
        let mut cells = [Links::NONE; 3];
        let mut lists = Lists::new(&mut cells);
        lists.arm(&mut cells, id(0));
        lists.arm(&mut cells, id(2));
        lists.arm(&mut cells, id(0));
        let mut next = lists.take_timed();
        let mut seen = Vec::new();
        while let Some(at) = next {
            next = Lists::disarm(&mut cells, at);
            seen.push(at.index());
            if at.index() == 0 {
                lists.arm(&mut cells, at);
            }
        }
        assert_eq!(seen, [2, 0]);
        assert_eq!(lists.first_timed(), Some(id(0)));
        assert_eq!(Lists::after_timed(&cells, id(0)), None);
    }
}
