//! The platform's boot clock and boot identity, read through `rustix` (clock) and `sysctl`
//! (Apple boot identity). No `unsafe` here.
//!
//! - Linux and Android: `CLOCK_BOOTTIME` (monotonic, counts suspend) and the kernel's
//!   random per-boot UUID in `/proc/sys/kernel/random/boot_id`.
//! - Apple platforms: `CLOCK_MONOTONIC`, which on Darwin counts sleep (`CLOCK_UPTIME_RAW`
//!   does not), and the `kern.bootsessionuuid` sysctl, a UUID per boot session.
//!   `kern.boottime` is not used: it is derived from the wall clock and can move when the
//!   time is set.
//! - Elsewhere: no boot clock.

use std::sync::OnceLock;

use super::stamp::BootInstant;

/// The boot clock now, or `None` if this platform (or this sandbox) does not give it.
pub(super) fn now() -> Option<BootInstant> {
    let boot_id = boot_id()?;
    let millis = clock_millis()?;
    Some(BootInstant { boot_id: boot_id.to_owned(), millis })
}

/// This boot's identity, read once per process (a process never outlives its boot).
fn boot_id() -> Option<&'static str> {
    static BOOT_ID: OnceLock<Option<String>> = OnceLock::new();
    BOOT_ID.get_or_init(read_boot_id).as_deref()
}

/// A boot id must look like an identifier, not like an error text or an empty file.
fn plausible(id: &str) -> Option<String> {
    let id = id.trim();
    let ok = (8..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    ok.then(|| id.to_ascii_lowercase())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn read_boot_id() -> Option<String> {
    match std::fs::read_to_string("/proc/sys/kernel/random/boot_id") {
        Ok(text) => plausible(&text),
        Err(e) => {
            tracing::debug!(error = %e, "no boot id; leases fall back to the wall clock");
            None
        }
    }
}

#[cfg(target_vendor = "apple")]
fn read_boot_id() -> Option<String> {
    use sysctl::Sysctl as _;
    match sysctl::Ctl::new("kern.bootsessionuuid").and_then(|ctl| ctl.value_string()) {
        Ok(text) => plausible(&text),
        Err(e) => {
            tracing::debug!(error = %e, "no boot id; leases fall back to the wall clock");
            None
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
fn read_boot_id() -> Option<String> {
    None
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn clock_millis() -> Option<i64> {
    let clock = rustix::time::DynamicClockId::Boottime;
    timespec_millis(rustix::time::clock_gettime_dynamic(clock))
}

#[cfg(target_vendor = "apple")]
fn clock_millis() -> Option<i64> {
    let clock = rustix::time::DynamicClockId::Known(rustix::time::ClockId::Monotonic);
    timespec_millis(rustix::time::clock_gettime_dynamic(clock))
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
fn clock_millis() -> Option<i64> {
    None
}

#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
fn timespec_millis(read: rustix::io::Result<rustix::time::Timespec>) -> Option<i64> {
    match read {
        Ok(ts) => {
            // rustix's `Timespec` has `i64` fields on every platform.
            ts.tv_sec.checked_mul(1000)?.checked_add(ts.tv_nsec / 1_000_000)
        }
        Err(e) => {
            tracing::debug!(error = %e, "boot clock unreadable; leases fall back to the wall clock");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn boot_ids_are_checked() {
        assert_eq!(
            plausible("6F1C2B7E-0A4D-4C5E-9B1A-2D3E4F5A6B7C\n").as_deref(),
            Some("6f1c2b7e-0a4d-4c5e-9b1a-2d3e4f5a6b7c")
        );
        assert_eq!(plausible(""), None);
        assert_eq!(plausible("permission denied"), None);
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn the_boot_clock_is_read_and_moves_forward() {
        let a = now().expect("boot clock on Linux");
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = now().unwrap();
        assert_eq!(a.boot_id, b.boot_id);
        assert_eq!(a.boot_id.len(), 36, "{}", a.boot_id);
        assert!(b.millis >= a.millis + 19, "{} then {}", a.millis, b.millis);
    }
}
