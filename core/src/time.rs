//! Time as the core sees it: whatever the frontend says it is.
//!
//! Both types count milliseconds, which is as fine as any chat deadline
//! needs and what smoltcp and a SysTick at 1 kHz give a board for free.

use core::fmt;
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

    /// How long from `self` until `later`; zero if `later` has passed.
    pub const fn until(self, later: Instant) -> Duration {
        Duration(later.0.saturating_sub(self.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    /// `self` plus `duration`, saturating at the end of time.
    fn add(self, duration: Duration) -> Instant {
        Instant(self.0.saturating_add(duration.0))
    }
}

/// A span of time in milliseconds: timeouts, intervals, grace periods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Duration(u64);

impl Duration {
    /// No time at all.
    pub const ZERO: Duration = Duration(0);

    /// `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Duration {
        Duration(ms)
    }

    /// `s` seconds.
    pub const fn from_secs(s: u64) -> Duration {
        Duration(s.saturating_mul(1000))
    }

    /// The span in milliseconds.
    pub const fn millis(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Duration {
    /// Whole seconds when it is whole seconds (`30 s`), else milliseconds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) {
            write!(f, "{} s", self.0 / 1000)
        } else {
            write!(f, "{} ms", self.0)
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn instants_saturate_instead_of_wrapping() {
        let late = Instant::from_millis(u64::MAX - 1);
        assert_eq!(late + Duration::from_secs(5), Instant::from_millis(u64::MAX));
        assert_eq!(Instant::from_millis(10).until(Instant::from_millis(4)), Duration::ZERO);
        assert_eq!(Instant::from_millis(4).until(Instant::from_millis(10)), Duration::from_millis(6));
    }

    #[test]
    fn durations_print_in_the_unit_a_person_would_say() {
        extern crate std;
        use std::string::ToString;
        assert_eq!(Duration::from_secs(30).to_string(), "30 s");
        assert_eq!(Duration::from_millis(250).to_string(), "250 ms");
    }
}
