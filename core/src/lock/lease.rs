//! The lease: one row per account (`holder`, `fence`, the expiry on both clocks), the SQL
//! that takes, renews and frees it, and the [`Lease`] handle.
//!
//! Rules (see `docs/adr/0001-lease-lock.md` and `docs/adr/0005-clock.md`):
//! - A row is acquirable when it is free (`holder IS NULL`, written by an eager release),
//!   expired, or held by the same `holder` string (a restarted process with the same
//!   holder id takes its own row back at once instead of waiting for it to expire).
//! - Expired ([`Stamp::has_passed`]): the row records the expiry on the wall clock
//!   (`expires_at_ms`) and, when the writer knew it, on its boot clock (`boot_id`,
//!   `boot_expires_ms`, valid only while `boot_fence = fence`, so a row taken over by an
//!   older release that does not write these columns is never judged by stale ones). A
//!   reader of the same boot compares boot clocks (a wall-clock jump changes nothing); a
//!   row of another boot is expired at once (its holder did not survive the reboot);
//!   when either boot is unknown the wall clocks are compared. An expiry equal to now is
//!   over.
//! - Every acquisition, including a same-holder takeover, sets `fence = fence + 1`. The row
//!   is never deleted, so the fence is monotonic per account for the life of the file.
//! - Inside one [`Coordinator`](super::Coordinator) acquisition is not re-entrant: tasks
//!   queue on an in-process async mutex per account first, whatever holder name they pass.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::OwnedMutexGuard;

use super::coordinator::Inner;
use super::db::{from_sql_int, to_sql_int};
use super::journal::JournalPhase;
use crate::clock::{BootInstant, Stamp};
use crate::error::Result;

/// The state of one acquisition, shared by the [`Lease`] handle, the renewer and the
/// coordinator (which releases every live lease on `pause`).
#[derive(Debug)]
pub(crate) struct LeaseShared {
    pub(crate) account: String,
    pub(crate) holder: String,
    pub(crate) fence: u64,
    lost: AtomicBool,
    released: AtomicBool,
    /// When the row was last written with a new expiry by this acquisition.
    renewed_at: Mutex<std::time::Instant>,
    /// When this acquisition was made (for `max_hold`).
    acquired_at: std::time::Instant,
}

impl LeaseShared {
    pub(crate) fn new(account: String, holder: String, fence: u64) -> Self {
        LeaseShared {
            account,
            holder,
            fence,
            lost: AtomicBool::new(false),
            released: AtomicBool::new(false),
            renewed_at: Mutex::new(std::time::Instant::now()),
            acquired_at: std::time::Instant::now(),
        }
    }

    pub(crate) fn mark_lost(&self) {
        self.lost.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    pub(crate) fn is_released(&self) -> bool {
        self.released.load(Ordering::SeqCst)
    }

    /// Marks the lease released; returns `true` for the first caller only.
    pub(crate) fn take_release(&self) -> bool {
        !self.released.swap(true, Ordering::SeqCst)
    }

    /// Records a successful renewal.
    pub(crate) fn touch(&self) {
        *self.renewed_at.lock().unwrap_or_else(|p| p.into_inner()) = std::time::Instant::now();
    }

    /// Time since the acquisition.
    pub(crate) fn held_for(&self) -> Duration {
        self.acquired_at.elapsed()
    }

    /// Time since the acquisition or the last renewal.
    pub(crate) fn renewed_age(&self) -> Duration {
        self.renewed_at.lock().unwrap_or_else(|p| p.into_inner()).elapsed()
    }

    fn fence_sql(&self) -> Result<i64> {
        to_sql_int(self.fence, "fence")
    }
}

/// A held lease on one account. Renewed in the background while it lives.
///
/// Dropping it releases it (best effort, on the current Tokio runtime if there is one,
/// synchronously otherwise); prefer [`Lease::release`], which reports errors and returns
/// once the row is free.
#[derive(Debug)]
pub struct Lease {
    pub(crate) shared: Arc<LeaseShared>,
    pub(crate) inner: Arc<Inner>,
    /// The in-process slot for this account; dropped after the row is freed so the next
    /// task of this process proceeds at once.
    guard: Option<OwnedMutexGuard<()>>,
}

impl Lease {
    pub(crate) fn new(
        shared: Arc<LeaseShared>,
        inner: Arc<Inner>,
        guard: OwnedMutexGuard<()>,
    ) -> Self {
        if !shared.is_released() {
            super::renewal::ensure_renewer(&inner);
        }
        Lease { shared, inner, guard: Some(guard) }
    }

    /// The fencing token of this acquisition: strictly greater than that of every earlier
    /// acquisition of the same account, by any holder in any process.
    pub fn fence(&self) -> u64 {
        self.shared.fence
    }

    /// The account this lease is on.
    pub fn account(&self) -> &str {
        &self.shared.account
    }

    /// The holder name given to `acquire`.
    pub fn holder(&self) -> &str {
        &self.shared.holder
    }

    /// Whether this lease is known to be lost: a renewal (or a journal write) found the row
    /// taken by another acquisition after this one expired, or `pause` released it.
    ///
    /// `false` does not prove the lease is still held; journal writes check the fence
    /// atomically.
    pub fn is_lost(&self) -> bool {
        self.shared.is_lost()
    }

    /// Releases the lease now: the row is marked free before this returns, and the next
    /// waiter of this process is woken. Releasing a lease that was lost is a no-op (the
    /// row belongs to someone else and is left alone).
    pub async fn release(mut self) -> Result<()> {
        let guard = self.guard.take();
        let shared = Arc::clone(&self.shared);
        let result = if shared.take_release() {
            self.inner
                .blocking(move |inner, conn| {
                    release_row(conn, &shared)?;
                    inner.unregister(&shared);
                    Ok(())
                })
                .await
        } else {
            Ok(())
        };
        drop(guard);
        result
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let guard = self.guard.take();
        if self.shared.take_release() {
            release_detached(Arc::clone(&self.inner), Arc::clone(&self.shared), guard);
        }
    }
}

/// Frees the row of a lease nobody will release explicitly: on the current Tokio runtime
/// if there is one (the in-process `guard` moves into that task, so the next local waiter
/// proceeds once the row is free; if the runtime drops the task unrun, the row expires),
/// synchronously otherwise.
fn release_detached(
    inner: Arc<Inner>,
    shared: Arc<LeaseShared>,
    guard: Option<OwnedMutexGuard<()>>,
) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(async move {
                let _guard = guard;
                let result = inner
                    .blocking(move |inner, conn| {
                        release_row(conn, &shared)?;
                        inner.unregister(&shared);
                        Ok(())
                    })
                    .await;
                if let Err(e) = result {
                    tracing::debug!(error = %e, "releasing a dropped lease failed; it will expire");
                }
            });
        }
        Err(_) => {
            let result = inner.db.with(|conn| release_row(conn, &shared));
            inner.unregister(&shared);
            if let Err(e) = result {
                tracing::debug!(error = %e, "releasing a dropped lease failed; it will expire");
            }
            drop(guard);
        }
    }
}

/// A freshly taken row on its way from the blocking pool to the acquiring task. If the
/// acquiring future is cancelled before it becomes a [`Lease`], dropping this frees the row.
#[derive(Debug)]
pub(crate) struct Handoff {
    shared: Option<Arc<LeaseShared>>,
    inner: Arc<Inner>,
}

impl Handoff {
    pub(crate) fn new(shared: Arc<LeaseShared>, inner: Arc<Inner>) -> Self {
        Handoff { shared: Some(shared), inner }
    }

    /// Defuses the handoff and returns the acquisition.
    pub(crate) fn take(mut self) -> Option<Arc<LeaseShared>> {
        self.shared.take()
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            if shared.take_release() {
                release_detached(Arc::clone(&self.inner), shared, None);
            }
        }
    }
}

/// The lease row as a waiter sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeaseRow {
    pub(crate) holder: Option<String>,
    pub(crate) fence: u64,
    /// The expiry; its boot part only if it was written for the current fence.
    pub(crate) expires: Stamp,
    /// The phase of the journal entry the current holder wrote under this fence, if any:
    /// what the holder is doing (a refresh in flight, or one about to be committed), which
    /// tells a waiter when a release is near ([`super::poll`]).
    pub(crate) phase: Option<JournalPhase>,
}

impl LeaseRow {
    /// The same predicate as the `WHERE` of [`try_take`].
    pub(crate) fn acquirable_by(&self, holder: &str, now: &Stamp) -> bool {
        match &self.holder {
            None => true,
            Some(h) => h == holder || self.expires.has_passed(now),
        }
    }
}

/// The boot columns of a stamp: `(boot_id, millis)`, both `NULL` when the boot is unknown.
fn boot_params(stamp: &Stamp) -> (Option<&str>, Option<i64>) {
    match &stamp.boot {
        Some(b) => (Some(b.boot_id.as_str()), Some(b.millis)),
        None => (None, None),
    }
}

/// Reads the lease row, and the phase of the journal entry written under its fence,
/// without taking any write lock (a WAL read never blocks the writer). One statement, so
/// both come from one snapshot.
pub(crate) fn peek(conn: &Connection, account: &str) -> Result<Option<LeaseRow>> {
    type Row = (Option<String>, i64, i64, Option<String>, Option<i64>, Option<i64>, Option<String>);
    let row: Option<Row> = conn
        .prepare_cached(
            "SELECT lease.holder, lease.fence, lease.expires_at_ms, lease.boot_id,
                    lease.boot_expires_ms, lease.boot_fence, journal.phase
             FROM lease LEFT JOIN journal
               ON journal.account = lease.account AND journal.fence = lease.fence
                  AND journal.holder = lease.holder
             WHERE lease.account = ?1",
        )?
        .query_row([account], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
        })
        .optional()?;
    row.map(|(holder, fence, expires_at_ms, boot_id, boot_expires_ms, boot_fence, phase)| {
        let boot = match (boot_id, boot_expires_ms) {
            (Some(boot_id), Some(millis)) if boot_fence == Some(fence) => {
                Some(BootInstant { boot_id, millis })
            }
            _ => None,
        };
        Ok(LeaseRow {
            holder,
            fence: from_sql_int(fence, "fence")?,
            expires: Stamp { wall_ms: expires_at_ms, boot },
            // An unknown phase (a newer release's) says nothing: poll as for a bare hold.
            phase: phase.and_then(|p| JournalPhase::parse(&p).ok()),
        })
    })
    .transpose()
}

/// Takes the lease if it is free, expired at `now` or already `holder`'s, writing
/// `expires` on both clocks; returns the new fence. One autocommit statement: the check
/// and the write are atomic. The expiry test is [`Stamp::has_passed`] in SQL.
///
/// A write lock that another connection holds at this moment is "not now" (`Ok(None)`)
/// instead of a wait in SQLite's busy handler, whose sleeps grow 1, 2, 5, 10 ms…: a waiter
/// that reads the row free while the releaser is still finishing its commit tries again on
/// its own schedule, about a millisecond later. The connection's
/// `busy_timeout` is restored before this returns.
pub(crate) fn try_take(
    conn: &Connection,
    account: &str,
    holder: &str,
    now: &Stamp,
    expires: &Stamp,
    busy_timeout: Duration,
) -> Result<Option<u64>> {
    conn.busy_timeout(Duration::ZERO)?;
    let taken = take_sql(conn, account, holder, now, expires);
    conn.busy_timeout(busy_timeout)?;
    match taken {
        Ok(fence) => fence.map(|f| from_sql_int(f, "fence")).transpose(),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DatabaseBusy =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// The statement of [`try_take`], run under the connection's current busy timeout.
fn take_sql(
    conn: &Connection,
    account: &str,
    holder: &str,
    now: &Stamp,
    expires: &Stamp,
) -> rusqlite::Result<Option<i64>> {
    let (now_boot_id, now_boot_ms) = boot_params(now);
    let (exp_boot_id, exp_boot_ms) = boot_params(expires);
    conn.prepare_cached(
        "INSERT INTO lease (account, holder, fence, expires_at_ms, boot_id, boot_expires_ms,
                                boot_fence)
             VALUES (?1, ?2, 1, ?3, ?5, ?6, CASE WHEN ?5 IS NULL THEN NULL ELSE 1 END)
             ON CONFLICT (account) DO UPDATE
                SET holder = excluded.holder,
                    fence = lease.fence + 1,
                    expires_at_ms = excluded.expires_at_ms,
                    boot_id = excluded.boot_id,
                    boot_expires_ms = excluded.boot_expires_ms,
                    boot_fence = CASE WHEN excluded.boot_id IS NULL THEN NULL
                                      ELSE lease.fence + 1 END
                WHERE lease.holder IS NULL
                   OR lease.holder = excluded.holder
                   OR CASE WHEN ?7 IS NOT NULL AND lease.boot_id IS NOT NULL
                                AND lease.boot_expires_ms IS NOT NULL
                                AND lease.boot_fence = lease.fence
                           THEN lease.boot_id <> ?7 OR lease.boot_expires_ms <= ?8
                           ELSE lease.expires_at_ms <= ?4 END
             RETURNING fence",
    )?
    .query_row(
        params![
            account,
            holder,
            expires.wall_ms,
            now.wall_ms,
            exp_boot_id,
            exp_boot_ms,
            now_boot_id,
            now_boot_ms
        ],
        |r| r.get(0),
    )
    .optional()
}

/// Extends the lease to `expires` (both clocks) if this acquisition still owns the row;
/// `false` if another one took it.
pub(crate) fn renew_row(conn: &Connection, shared: &LeaseShared, expires: &Stamp) -> Result<bool> {
    let (boot_id, boot_ms) = boot_params(expires);
    let n = conn
        .prepare_cached(
            "UPDATE lease SET expires_at_ms = ?4, boot_id = ?5, boot_expires_ms = ?6,
                    boot_fence = CASE WHEN ?5 IS NULL THEN NULL ELSE fence END
             WHERE account = ?1 AND holder = ?2 AND fence = ?3",
        )?
        .execute(params![
            shared.account,
            shared.holder,
            shared.fence_sql()?,
            expires.wall_ms,
            boot_id,
            boot_ms
        ])?;
    Ok(n == 1)
}

/// Frees the row if this acquisition still owns it (keeps the row and its fence).
pub(crate) fn release_row(conn: &Connection, shared: &LeaseShared) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE lease SET holder = NULL, expires_at_ms = 0, boot_id = NULL,
                    boot_expires_ms = NULL, boot_fence = NULL
             WHERE account = ?1 AND holder = ?2 AND fence = ?3",
        )?
        .execute(params![shared.account, shared.holder, shared.fence_sql()?])?;
    Ok(n == 1)
}
