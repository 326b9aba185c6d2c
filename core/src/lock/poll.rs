//! How often a waiter reads the lease row while another process holds it.
//!
//! A release by another process is seen only by reading the row. Reading every millisecond
//! gives a handoff of about a millisecond but wakes the waiter a thousand times a second for
//! as long as the hold lasts. The schedule here reads fast only when a release is likely
//! soon, and backs off otherwise:
//!
//! - for `poll_fast_for` (25 ms) after the wait starts, and again after the row changed
//!   hands (another acquisition: new fence or holder), every `poll_interval` (1 ms): short
//!   holds are handed over in about a millisecond;
//! - then the interval doubles after every read up to `poll_max` (40 ms): a hold of seconds
//!   costs about 25 reads per second;
//! - never later than the row's expiry (plus a millisecond), so a holder that died is
//!   replaced as soon as its lease ends;
//! - every delay is jittered uniformly by ±50 % so waiters of several processes spread out.
//!
//! The waiter sleeps on a thread of the blocking pool between reads (one thread wake-up per
//! read, no async round trip), see [`Coordinator::acquire_within`](super::Coordinator::acquire_within).

use std::time::{Duration, Instant};

use rand::Rng as _;

use super::coordinator::CoordinatorConfig;
use super::lease::LeaseRow;
use crate::clock::Stamp;

/// The read schedule of one wait.
#[derive(Debug)]
pub(crate) struct PollSchedule {
    base: Duration,
    max: Duration,
    fast_for: Duration,
    fast_until: Instant,
    backoff: Duration,
    /// Holder and fence of the last read, to notice a new acquisition.
    last_seen: Option<(Option<String>, u64)>,
}

impl PollSchedule {
    pub(crate) fn new(config: &CoordinatorConfig, start: Instant) -> Self {
        let base = config.poll_interval.max(Duration::from_micros(2));
        PollSchedule {
            base,
            max: config.poll_max.max(base),
            fast_for: config.poll_fast_for,
            fast_until: start + config.poll_fast_for,
            backoff: base,
            last_seen: None,
        }
    }

    /// Records what a read saw at `now` (the row, if any, and both clocks) and returns the
    /// delay until the next read (jittered).
    pub(crate) fn next_delay(
        &mut self,
        row: Option<&LeaseRow>,
        now_stamp: &Stamp,
        now: Instant,
    ) -> Duration {
        let seen = row.map(|r| (r.holder.clone(), r.fence));
        if self.last_seen.is_some() && seen != self.last_seen {
            // Another acquisition: its hold may be short too.
            self.fast_until = now + self.fast_for;
            self.backoff = self.base;
        }
        self.last_seen = seen;
        let mean = if now < self.fast_until {
            self.base
        } else {
            self.backoff = (self.backoff * 2).min(self.max);
            self.backoff
        };
        let delay = jitter(mean);
        match row {
            Some(row) => delay.min(row.expires.remaining(now_stamp) + Duration::from_millis(1)),
            None => delay,
        }
    }
}

/// A delay uniformly in `[mean/2, 3·mean/2]`.
fn jitter(mean: Duration) -> Duration {
    let mean = u64::try_from(mean.as_micros()).unwrap_or(u64::MAX).max(2);
    Duration::from_micros(rand::rng().random_range(mean / 2..=mean + mean / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(fence: u64, expires_wall: i64) -> LeaseRow {
        LeaseRow {
            holder: Some(format!("h{fence}")),
            fence,
            expires: Stamp { wall_ms: expires_wall, boot: None },
        }
    }

    fn cfg() -> CoordinatorConfig {
        CoordinatorConfig::default()
    }

    #[test]
    fn fast_first_then_backs_off_to_the_cap_and_a_new_holder_makes_it_fast_again() {
        let start = Instant::now();
        let mut s = PollSchedule::new(&cfg(), start);
        let now = Stamp { wall_ms: 0, boot: None };
        let row = held(1, 60_000);
        // Fast phase: 1 ms ± 50 %.
        for ms in [0, 5, 24] {
            let d = s.next_delay(Some(&row), &now, start + Duration::from_millis(ms));
            assert!(d <= Duration::from_micros(1_500), "{d:?} at {ms} ms");
        }
        // Backing off, capped at 40 ms ± 50 %.
        let mut delays = Vec::new();
        let mut t = start + Duration::from_millis(25);
        for _ in 0..12 {
            let d = s.next_delay(Some(&row), &now, t);
            delays.push(d);
            t += d;
        }
        assert!(delays[0] <= Duration::from_millis(3), "{delays:?}");
        assert!(delays[11] >= Duration::from_millis(20), "{delays:?}");
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(60)), "{delays:?}");
        // Reads over 3 s of hold: about 25 per second, far from 1000.
        let mut reads = 0;
        while t < start + Duration::from_secs(3) {
            t += s.next_delay(Some(&row), &now, t);
            reads += 1;
        }
        assert!(reads < 150, "{reads} reads in 3 s");
        // Another acquisition: fast again.
        let d = s.next_delay(Some(&held(2, 60_000)), &now, t);
        assert!(d <= Duration::from_micros(1_500), "{d:?}");
    }

    #[test]
    fn never_sleeps_past_the_expiry() {
        let start = Instant::now();
        let mut s = PollSchedule::new(&cfg(), start);
        let late = start + Duration::from_secs(5);
        let now = Stamp { wall_ms: 10_000, boot: None };
        for _ in 0..10 {
            s.next_delay(Some(&held(1, 20_000)), &now, late);
        }
        let d = s.next_delay(Some(&held(1, 10_005)), &now, late);
        assert!(d <= Duration::from_millis(6), "{d:?}");
    }
}
