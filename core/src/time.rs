//! Time as the core sees it: whatever the frontend says it is.

use core::ops::Add;

/// A point in time, in milliseconds since an origin the frontend picks
/// (process start, board reset). The core never reads a clock: every call
/// that depends on time takes `now`, so tests run on a simulated clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Instant(u64);

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant(0);

    /// `ms` milliseconds after the origin.
    pub const fn from_millis(ms: u64) -> Instant {
        Instant(ms)
    }

    /// Milliseconds since the origin.
    pub const fn millis(self) -> u64 {
        self.0
    }

    /// Milliseconds from `self` until `later`, or 0 if `later` has passed.
    pub const fn until(self, later: Instant) -> u64 {
        later.0.saturating_sub(self.0)
    }
}

impl Add<u64> for Instant {
    type Output = Instant;

    /// `self` plus a number of milliseconds.
    fn add(self, ms: u64) -> Instant {
        Instant(self.0.saturating_add(ms))
    }
}
