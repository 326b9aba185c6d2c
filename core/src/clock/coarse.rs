//! A cheap reading of the wall clock for the token fast path.
//!
//! Whether the access token in memory is still fresh is decided against margins of seconds
//! (the refresh margin; at the least, the token's expiry), on every `access_token()` call.
//! Linux and Android keep a coarse copy of the wall clock (`CLOCK_REALTIME_COARSE`, updated
//! every scheduler tick, 1–10 ms) that is read without touching the clock hardware. The
//! reading lags the real time by less than the clock's resolution, so the resolution is
//! added: the result is never earlier than the time, and a token is judged to expire at most
//! one tick early, never late. Elsewhere the regular wall clock is read (Apple platforms read
//! it from shared memory already).

use std::time::SystemTime;

/// The wall clock, no earlier than the time and at most one tick later.
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
        (Some(res), Some(since_epoch)) => UNIX_EPOCH + since_epoch + res,
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
    fn never_earlier_than_the_time_and_at_most_a_tick_later() {
        for _ in 0..1000 {
            let before = SystemTime::now();
            let coarse = super::now();
            let after = SystemTime::now();
            assert!(coarse >= before, "{coarse:?} is earlier than {before:?}");
            let late = coarse.duration_since(after).unwrap_or(Duration::ZERO);
            assert!(late <= Duration::from_millis(40), "{late:?} ahead of the time");
        }
    }
}
