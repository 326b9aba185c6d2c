//! A cheap reading of the wall clock for the token fast path.
//!
//! Whether the access token in memory is still fresh is decided against margins of seconds
//! (the refresh margin; at the least, the token's expiry), on every `access_token()` call.
//! Linux and Android keep a coarse copy of the wall clock (`CLOCK_REALTIME_COARSE`, updated
//! every scheduler tick, 1–10 ms) that is read without touching the clock hardware. The
//! reading lags the real time by about one tick (its resolution), a little more when a tick
//! comes late, so twice the resolution is added: the result is about a tick later than the
//! time, and a token is judged to expire a few milliseconds early rather than late.
//! Elsewhere the regular wall clock is read (Apple platforms read it from shared memory
//! already).

use std::time::SystemTime;

/// The wall clock, about one tick later than the time (see the module docs).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn now() -> SystemTime {
    use std::sync::OnceLock;
    use std::time::{Duration, UNIX_EPOCH};

    use rustix::time::{clock_getres, clock_gettime, ClockId, Timespec};

    fn duration(t: Timespec) -> Option<Duration> {
        let secs = u64::try_from(t.tv_sec).ok()?;
        let nanos = u32::try_from(t.tv_nsec).ok().filter(|n| *n < 1_000_000_000)?;
        Some(Duration::new(secs, nanos))
    }

    /// The coarse clock's resolution, if it is fine enough to be worth using (≤ 20 ms).
    fn resolution() -> Option<Duration> {
        static RESOLUTION: OnceLock<Option<Duration>> = OnceLock::new();
        *RESOLUTION.get_or_init(|| {
            duration(clock_getres(ClockId::RealtimeCoarse))
                .filter(|r| !r.is_zero() && *r <= Duration::from_millis(20))
        })
    }

    match (resolution(), duration(clock_gettime(ClockId::RealtimeCoarse))) {
        (Some(res), Some(since_epoch)) => UNIX_EPOCH + since_epoch + 2 * res,
        _ => SystemTime::now(),
    }
}

/// The wall clock.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) fn now() -> SystemTime {
    SystemTime::now()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    #[test]
    fn not_earlier_than_the_time_and_a_few_milliseconds_later_at_most() {
        let mut ahead = 0;
        for _ in 0..10_000 {
            let before = SystemTime::now();
            let coarse = super::now();
            let after = SystemTime::now();
            // A tick that comes very late could leave it behind; by a millisecond at most
            // on any machine these tests run on.
            let early = before.duration_since(coarse).unwrap_or(Duration::ZERO);
            assert!(early < Duration::from_millis(1), "{early:?} earlier than the time");
            let late = coarse.duration_since(after).unwrap_or(Duration::ZERO);
            assert!(late <= Duration::from_millis(60), "{late:?} ahead of the time");
            ahead += usize::from(coarse >= before);
        }
        assert!(ahead > 9_900, "behind the time in {} of 10 000 readings", 10_000 - ahead);
    }
}
