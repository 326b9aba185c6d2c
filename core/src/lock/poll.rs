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
//! - while the holder's journal entry says its refresh was answered (`answered`, `saving`:
//!   the store save and the commit follow, then the release), every `poll_interval`, for at
//!   most [`FINISHING_FAST_FOR`] from when that phase was first seen, and again for
//!   `poll_fast_for` after the holder cleared its entry: a refresh that held the lease for
//!   seconds (a slow token endpoint) is handed over in about a millisecond too;
//! - otherwise the interval doubles after every read up to `poll_max` (40 ms): a hold of
//!   seconds costs about 25 reads per second;
//! - never later than the row's expiry (plus a millisecond), so a holder that died is
//!   replaced as soon as its lease ends;
//! - every delay is jittered uniformly by ±50 % so waiters of several processes spread out.
//!
//! The waiter sleeps on a thread of the blocking pool between reads (one thread wake-up per
//! read, no async round trip), see [`Coordinator::acquire_within`](super::Coordinator::acquire_within).
//! On Linux and Android that sleep also ends when any process writes the database
//! ([`super::wake`]); the reads then come every `poll_interval` for [`CHANGED_FAST_FOR`], so
//! the release itself is seen within about a millisecond whatever the schedule says.

use std::time::{Duration, Instant};

use rand::Rng as _;

use super::coordinator::CoordinatorConfig;
use super::journal::JournalPhase;
use super::lease::LeaseRow;
use crate::clock::Stamp;

/// How long a waiter reads every `poll_interval` once the holder's journal says its refresh
/// was answered: long enough for a slow keychain write and the commit, and bounded, so an
/// entry left by a holder that died there does not keep a waiter reading a thousand times a
/// second until the lease expires.
pub(crate) const FINISHING_FAST_FOR: Duration = Duration::from_millis(500);

/// How long a waiter reads every `poll_interval` after the file changed ([`super::wake`]):
/// a commit's log write can wake it a moment before the commit is visible to readers.
pub(crate) const CHANGED_FAST_FOR: Duration = Duration::from_millis(3);

/// The read schedule of one wait.
#[derive(Debug)]
pub(crate) struct PollSchedule {
    base: Duration,
    max: Duration,
    fast_for: Duration,
    fast_until: Instant,
    backoff: Duration,
    /// Holder, fence and journal phase of the last read, to notice a new acquisition or a
    /// holder moving on.
    last_seen: Option<(Option<String>, u64, Option<JournalPhase>)>,
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

    /// Records that the file changed at `now` (a write woke the waiter): the next reads
    /// come every `poll_interval` for [`CHANGED_FAST_FOR`], then the backed-off interval
    /// resumes where it was (a renewal a second costs a few reads, not a new fast phase).
    pub(crate) fn changed(&mut self, now: Instant) {
        self.fast_until = self.fast_until.max(now + CHANGED_FAST_FOR);
    }

    /// Whether the reads at `now` come every `poll_interval` (the fast phases above).
    pub(crate) fn is_fast(&self, now: Instant) -> bool {
        now < self.fast_until
    }

    /// Records what a read saw at `now` (the row, if any, and both clocks) and returns the
    /// delay until the next read (jittered).
    pub(crate) fn next_delay(
        &mut self,
        row: Option<&LeaseRow>,
        now_stamp: &Stamp,
        now: Instant,
    ) -> Duration {
        let seen = row.map(|r| (r.holder.clone(), r.fence, r.phase));
        if seen != self.last_seen {
            let finishing = row.is_some_and(|r| {
                r.holder.is_some()
                    && matches!(r.phase, Some(JournalPhase::Answered | JournalPhase::Saving))
            });
            if finishing {
                // The holder has its answer: the release follows its save and commit.
                self.fast_until = self.fast_until.max(now + FINISHING_FAST_FOR);
                self.backoff = self.base;
            } else if self.last_seen.is_some() {
                // Another acquisition (its hold may be short too), or the holder cleared
                // its entry (the release is next).
                self.fast_until = now + self.fast_for;
                self.backoff = self.base;
            }
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
            phase: None,
        }
    }

    fn in_phase(fence: u64, phase: Option<JournalPhase>) -> LeaseRow {
        LeaseRow { phase, ..held(fence, 60_000) }
    }

    /// Reads `secs` seconds of one unchanging row; returns the number of reads and the time
    /// reached.
    fn reads_over(
        s: &mut PollSchedule,
        row: &LeaseRow,
        from: Instant,
        secs: u64,
    ) -> (u32, Instant) {
        let now = Stamp { wall_ms: 0, boot: None };
        let mut t = from;
        let mut reads = 0;
        while t < from + Duration::from_secs(secs) {
            t += s.next_delay(Some(row), &now, t);
            reads += 1;
        }
        (reads, t)
    }

    const FAST: Duration = Duration::from_micros(1_500);

    #[test]
    fn an_answered_refresh_makes_the_wait_fast_until_the_release() {
        let start = Instant::now();
        let now = Stamp { wall_ms: 0, boot: None };
        let mut s = PollSchedule::new(&cfg(), start);
        // A refresh in flight for 3 s: backed off, about 25 reads a second.
        let (reads, t) =
            reads_over(&mut s, &in_phase(1, Some(JournalPhase::RequestSent)), start, 3);
        assert!(reads < 150, "{reads} reads in 3 s of request_sent");
        // Answered: fast at once, and still fast 400 ms later (a slow store save).
        let answered = in_phase(1, Some(JournalPhase::Answered));
        assert!(s.next_delay(Some(&answered), &now, t) <= FAST);
        let later = t + Duration::from_millis(400);
        assert!(s.next_delay(Some(&answered), &now, later) <= FAST);
        // Saving, then the entry cleared: fast again right after each change.
        let saving = in_phase(1, Some(JournalPhase::Saving));
        assert!(s.next_delay(Some(&saving), &now, later) <= FAST);
        let cleared = in_phase(1, None);
        let after = later + Duration::from_millis(450);
        assert!(s.next_delay(Some(&cleared), &now, after) <= FAST);
        assert!(s.next_delay(Some(&cleared), &now, after + Duration::from_millis(20)) <= FAST);
    }

    #[test]
    fn an_abandoned_answered_entry_stops_being_read_fast() {
        let start = Instant::now();
        let mut s = PollSchedule::new(&cfg(), start);
        // The holder died after `answered`: fast for FINISHING_FAST_FOR, then backed off.
        let answered = in_phase(1, Some(JournalPhase::Answered));
        let (reads, _) = reads_over(&mut s, &answered, start, 3);
        let fast_reads = FINISHING_FAST_FOR.as_millis() as u32;
        assert!(reads > fast_reads / 2, "{reads} reads: the answered phase was not read fast");
        assert!(reads < fast_reads * 2 + 150, "{reads} reads in 3 s of an abandoned entry");
    }

    #[test]
    fn a_free_row_or_an_entry_of_no_holder_is_not_finishing() {
        let start = Instant::now();
        let now = Stamp { wall_ms: 0, boot: None };
        let mut s = PollSchedule::new(&cfg(), start);
        let free = LeaseRow { holder: None, ..in_phase(1, Some(JournalPhase::Answered)) };
        let late = start + Duration::from_secs(2);
        for _ in 0..8 {
            s.next_delay(Some(&free), &now, late);
        }
        assert!(s.next_delay(Some(&free), &now, late) > FAST);
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
