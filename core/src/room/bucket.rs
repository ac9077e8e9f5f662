//! Flood control: a token bucket per client.

use crate::time::{Duration, Instant};

/// A token bucket's shape: each line takes a token; tokens come back one per
/// `interval` up to `burst`. An empty bucket stops reading from that client,
/// so a flooder is slowed down (its bytes wait in its socket) and none of
/// its lines is dropped. Defaults as ergo's: burst 5, 2 lines/s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Throttle {
    /// Lines a quiet client may send at once. At least 1.
    pub burst: u16,
    /// How long one token takes to come back.
    pub interval: Duration,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle { burst: 5, interval: Duration::from_millis(500) }
    }
}

/// One client's tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bucket {
    tokens: u16,
    /// When the next token comes back, while the bucket is not full.
    next: Instant,
}

impl Bucket {
    /// No tokens (and no flood control to give any).
    pub const EMPTY: Bucket = Bucket { tokens: 0, next: Instant::ZERO };

    /// A full bucket: a newcomer may say `burst` lines at once.
    pub fn full(throttle: &Throttle) -> Bucket {
        Bucket { tokens: throttle.burst, next: Instant::ZERO }
    }

    /// The tokens there are at `now`, without taking any.
    pub fn tokens(&self, throttle: &Throttle, now: Instant) -> u16 {
        if self.tokens >= throttle.burst || now < self.next {
            return self.tokens.min(throttle.burst);
        }
        let interval = throttle.interval.millis().max(1);
        let back = 1 + self.next.until(now).millis() / interval;
        let back = u16::try_from(back).unwrap_or(u16::MAX);
        self.tokens.saturating_add(back).min(throttle.burst)
    }

    /// Takes a token if there is one at `now`.
    pub fn take(&mut self, throttle: &Throttle, now: Instant) -> bool {
        self.refill(throttle, now);
        if self.tokens == 0 {
            return false;
        }
        if self.tokens == throttle.burst {
            // The clock for the next token starts with the first one taken.
            self.next = now + throttle.interval;
        }
        self.tokens -= 1;
        true
    }

    /// When the next token comes back, if the bucket was empty when it was
    /// last refilled or taken from (`None`: it had a token then).
    pub fn next_token(&self) -> Option<Instant> {
        (self.tokens == 0).then_some(self.next)
    }

    /// Counts the tokens that came back by `now`.
    pub fn refill(&mut self, throttle: &Throttle, now: Instant) {
        let tokens = self.tokens(throttle, now);
        if tokens > self.tokens {
            let interval = throttle.interval.millis().max(1);
            let back = u64::from(tokens - self.tokens);
            self.next = Instant::from_millis(self.next.millis().saturating_add(back * interval));
            self.tokens = tokens;
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    const THROTTLE: Throttle = Throttle { burst: 3, interval: Duration::from_millis(100) };

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn a_full_bucket_lets_a_burst_through_then_one_line_per_interval() {
        let mut bucket = Bucket::full(&THROTTLE);
        assert!((0..3).all(|_| bucket.take(&THROTTLE, at(0))));
        assert!(!bucket.take(&THROTTLE, at(99)));
        assert_eq!(bucket.next_token(), Some(at(100)));
        assert!(bucket.take(&THROTTLE, at(100)));
        assert!(!bucket.take(&THROTTLE, at(150)));
        assert!(bucket.take(&THROTTLE, at(200)));
    }

    #[test]
    fn tokens_come_back_up_to_the_burst_and_no_further() {
        let mut bucket = Bucket::full(&THROTTLE);
        assert!(bucket.take(&THROTTLE, at(1000)));
        assert_eq!(bucket.tokens(&THROTTLE, at(1050)), 2);
        assert_eq!(bucket.tokens(&THROTTLE, at(1100)), 3);
        assert_eq!(bucket.tokens(&THROTTLE, at(99_000)), 3);
        assert_eq!(bucket.next_token(), None);
    }

    #[test]
    fn looking_at_the_tokens_changes_nothing() {
        let mut bucket = Bucket::full(&THROTTLE);
        for _ in 0..3 {
            bucket.take(&THROTTLE, at(0));
        }
        let before = bucket;
        assert_eq!(bucket.tokens(&THROTTLE, at(250)), 2);
        assert_eq!(bucket, before);
        // Taking at 250 refills the two tokens due and keeps the third's clock.
        assert!(bucket.take(&THROTTLE, at(250)));
        assert_eq!(bucket.next_token(), None);
        assert!(bucket.take(&THROTTLE, at(260)));
        assert_eq!(bucket.next_token(), Some(at(300)));
    }
}
