//! Injected clocks: the wall clock and the boot clock.
//!
//! Token expiry is a wall-clock fact (the provider states it in wall time), so it uses
//! [`SystemTime`]. Cross-process leases and "how old is this journal entry" also need a
//! clock that does not jump when the user or the network sets the time: the **boot clock**
//! ([`BootInstant`]), shared by every process of one boot and counting while the device
//! sleeps. [`Stamp`] carries both readings; comparisons use the boot clock when both sides
//! come from the same boot and fall back to the wall clock otherwise.
//! Decisions: `docs/adr/0005-clock.md`. Tests inject their own [`Clock`].

mod boot;
mod coarse;
mod stamp;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use stamp::{BootInstant, Stamp};

/// A source of the current wall-clock time and, where the platform has one, of the boot
/// clock.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;

    /// The wall-clock time for decisions made against margins of seconds (whether the
    /// access token in memory is still fresh), read as cheaply as the platform allows: a
    /// few milliseconds later than [`Clock::now`] at most, and not earlier (so a token is
    /// judged to expire early rather than late). The default reads [`Clock::now`]; a test
    /// clock needs nothing else.
    fn now_coarse(&self) -> SystemTime {
        self.now()
    }

    /// Milliseconds since the Unix epoch (0 for times before it).
    fn now_millis(&self) -> i64 {
        unix_millis(self.now())
    }

    /// The boot clock now: this boot's identity and the milliseconds since the boot,
    /// including time asleep. `None` when unknown (the default: a clock that only knows the
    /// wall time); readers then compare wall times.
    fn boot(&self) -> Option<BootInstant> {
        None
    }
}

/// Both clocks of `clock` read now.
pub(crate) fn stamp(clock: &dyn Clock) -> Stamp {
    Stamp { wall_ms: clock.now_millis(), boot: clock.boot() }
}

/// The operating system's clocks: [`SystemTime`] and, on Linux, Android and Apple
/// platforms, the boot clock (`CLOCK_BOOTTIME` on Linux and Android, `CLOCK_MONOTONIC` on
/// Apple platforms, both counting sleep) with this boot's identity (Linux and Android:
/// `/proc/sys/kernel/random/boot_id`; Apple: the `kern.bootsessionuuid` sysctl). Where
/// either is unavailable, [`Clock::boot`] is `None`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    /// Linux and Android: `CLOCK_REALTIME_COARSE` plus twice its resolution (`coarse.rs`).
    fn now_coarse(&self) -> SystemTime {
        coarse::now()
    }

    fn boot(&self) -> Option<BootInstant> {
        boot::now()
    }
}

/// Milliseconds since the Unix epoch for `t` (0 for times before it).
pub fn unix_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The time `ms` milliseconds after the Unix epoch.
pub fn from_unix_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}
