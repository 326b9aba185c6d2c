//! Cross-process coordination on a shared SQLite file: lease lock, generations, journal.
//!
//! All processes of an app (an iOS app and its extensions, an Android app's processes) open
//! the same file through a [`Coordinator`]. Per account it keeps:
//!
//! - a **lease** ([`Lease`]): a fenced, renewed, expiring lock that serializes refreshes.
//!   At most one holder at a time; a holder that dies or freezes blocks the others for at
//!   most the lease time (3 s by default); release is written at once and waiters of the
//!   same process are woken, waiters of other processes poll the row: every ~1 ms at first
//!   and after it changed hands, backing off to ~40 ms during long holds (`poll.rs`).
//! - a **generation** ([`GenerationRecord`]): the number of the newest committed session,
//!   moved forward only by compare-and-swap ([`Coordinator::commit`]), so no process ever
//!   replaces a newer session with an older one, plus the session state (active, logged
//!   out, reauth required) that every process obeys.
//! - a **journal** ([`JournalEntry`]): how far an in-flight refresh got, so the next holder
//!   knows whether the old refresh token may already have been consumed.
//!
//! Token values are never stored: only hashes the caller computes.
//!
//! Lease expiry and journal times are recorded on the wall clock and on the boot clock
//! ([`Stamp`](crate::clock::Stamp)): within one boot the boot clock decides, so setting the
//! wall clock changes nothing; a row of an earlier boot is dead; a row without a boot stamp
//! (schema 1) is judged by the wall clock. Ask [`Coordinator::now_stamp`] and
//! [`JournalEntry::age`] rather than comparing wall times.
//!
//! Decisions and timings: `docs/adr/0001-lease-lock.md`, `docs/adr/0002-generations-and-journal.md`,
//! `docs/adr/0005-clock.md`.
//! Measurements: `BENCHMARKS.md` (`scripts/bench.sh`).

mod coordinator;
mod db;
mod generation;
mod journal;
mod lease;
mod poll;
mod renewal;
pub(crate) mod replay;
mod wake;

#[cfg(test)]
mod tests;

pub use coordinator::{Coordinator, CoordinatorConfig};
pub use generation::{GenerationRecord, SessionState};
pub use journal::{JournalEntry, JournalPhase};
pub use lease::Lease;
