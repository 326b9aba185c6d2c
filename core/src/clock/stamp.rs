//! [`BootInstant`] and [`Stamp`]: a moment read on both clocks, and the rules for comparing
//! two of them (boot clock within one boot, wall clock when a boot is unknown, "over" across
//! boots).

use std::time::Duration;

/// A reading of the boot clock: which boot, and milliseconds since it (including sleep).
///
/// Two readings with the same `boot_id` are comparable whatever the wall clock did in
/// between; readings of different boots are not.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BootInstant {
    /// This boot's identity (a UUID in lowercase hex on the supported platforms).
    pub boot_id: String,
    /// Milliseconds on the boot clock.
    pub millis: i64,
}

/// A moment read on the wall clock and, if known, the boot clock: a "now" from
/// [`stamp`](super::stamp) or
/// [`Coordinator::now_stamp`](crate::lock::Coordinator::now_stamp), or a recorded time
/// such as [`JournalEntry::updated`](crate::lock::JournalEntry::updated).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// Milliseconds since the Unix epoch.
    pub wall_ms: i64,
    /// The boot clock at the same moment, if known.
    pub boot: Option<BootInstant>,
}

impl Stamp {
    /// Whether `self` and `other` were read in the same boot: `Some(true)` or
    /// `Some(false)` when both boots are known, `None` when either is not.
    pub fn same_boot(&self, other: &Stamp) -> Option<bool> {
        match (&self.boot, &other.boot) {
            (Some(a), Some(b)) => Some(a.boot_id == b.boot_id),
            _ => None,
        }
    }

    /// How long ago `self` was, seen at `now`: by the boot clock when both come from the
    /// same boot (immune to wall-clock jumps), by the wall clock when either boot is
    /// unknown, and `None` when they come from different boots — the moment is then
    /// older than the current boot, which is to say "very old". Never negative: a time
    /// after `now` gives zero.
    pub fn age(&self, now: &Stamp) -> Option<Duration> {
        let ms = match (&self.boot, &now.boot) {
            (Some(then), Some(at)) if then.boot_id == at.boot_id => {
                at.millis.saturating_sub(then.millis)
            }
            (Some(_), Some(_)) => return None,
            _ => now.wall_ms.saturating_sub(self.wall_ms),
        };
        Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
    }

    /// Whether the deadline `self` is over at `now`: by the boot clock within one boot, by
    /// the wall clock when either boot is unknown; a deadline of another boot is over (it
    /// was set by a process that did not survive the reboot). A deadline equal to `now`
    /// is over.
    pub fn has_passed(&self, now: &Stamp) -> bool {
        match (&self.boot, &now.boot) {
            (Some(deadline), Some(at)) if deadline.boot_id == at.boot_id => {
                deadline.millis <= at.millis
            }
            (Some(_), Some(_)) => true,
            _ => self.wall_ms <= now.wall_ms,
        }
    }

    /// How long until the deadline `self` is over at `now`, by the same rules as
    /// [`Stamp::has_passed`]: zero exactly when it has passed.
    pub fn remaining(&self, now: &Stamp) -> Duration {
        let ms = match (&self.boot, &now.boot) {
            (Some(deadline), Some(at)) if deadline.boot_id == at.boot_id => {
                deadline.millis.saturating_sub(at.millis)
            }
            (Some(_), Some(_)) => 0,
            _ => self.wall_ms.saturating_sub(now.wall_ms),
        };
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }

    /// The moment `ms` milliseconds after `self` on both clocks (saturating).
    pub fn after_millis(&self, ms: i64) -> Stamp {
        Stamp {
            wall_ms: self.wall_ms.saturating_add(ms),
            boot: self.boot.as_ref().map(|b| BootInstant {
                boot_id: b.boot_id.clone(),
                millis: b.millis.saturating_add(ms),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(wall_ms: i64, boot: Option<(&str, i64)>) -> Stamp {
        Stamp { wall_ms, boot: boot.map(|(id, millis)| BootInstant { boot_id: id.into(), millis }) }
    }

    #[test]
    fn same_boot_uses_the_boot_clock_whatever_the_wall_did() {
        let then = at(1_000, Some(("b1", 50)));
        // The wall jumped an hour forward; the boot clock moved 2 s.
        let now = at(1_000 + 3_600_000, Some(("b1", 2_050)));
        assert_eq!(then.age(&now), Some(Duration::from_millis(2_000)));
        assert!(!then.after_millis(3_000).has_passed(&now));
        assert!(then.after_millis(2_000).has_passed(&now));
        assert_eq!(then.after_millis(3_000).remaining(&now), Duration::from_millis(1_000));
        assert_eq!(then.after_millis(2_000).remaining(&now), Duration::ZERO);
        // And backwards: the wall went back, the boot clock did not.
        let now = at(0, Some(("b1", 150)));
        assert_eq!(then.age(&now), Some(Duration::from_millis(100)));
    }

    #[test]
    fn other_boot_is_over_and_has_no_age() {
        let then = at(10_000, Some(("b1", 50)));
        let now = at(10_001, Some(("b2", 5)));
        assert_eq!(then.age(&now), None);
        assert!(then.after_millis(3_600_000).has_passed(&now));
        assert_eq!(then.after_millis(3_600_000).remaining(&now), Duration::ZERO);
        assert_eq!(then.same_boot(&now), Some(false));
    }

    #[test]
    fn unknown_boot_on_either_side_uses_the_wall_clock() {
        for (then, now) in [
            (at(1_000, None), at(4_000, Some(("b1", 10)))),
            (at(1_000, Some(("b1", 10))), at(4_000, None)),
            (at(1_000, None), at(4_000, None)),
        ] {
            assert_eq!(then.age(&now), Some(Duration::from_millis(3_000)));
            assert!(then.after_millis(3_000).has_passed(&now));
            assert!(!then.after_millis(3_001).has_passed(&now));
            assert_eq!(then.after_millis(3_001).remaining(&now), Duration::from_millis(1));
            assert_eq!(then.same_boot(&now), None);
        }
        // A future moment is zero old, not negative.
        assert_eq!(at(5_000, None).age(&at(4_000, None)), Some(Duration::ZERO));
    }
}
