//! The refresh journal: one row per account recording an in-flight refresh, so the next
//! holder knows whether the old refresh token may already be consumed.
//! See `docs/adr/0002-generations-and-journal.md` for what each phase tells the next holder.
//!
//! Fencing rules:
//! - `journal_begin` and `journal_phase` write only while this lease's fence is the current
//!   one (checked and written in one transaction, which also renews the lease); otherwise
//!   they fail and mark the lease lost. `journal_begin` replaces any entry left by an older
//!   fence — read [`Coordinator::journal`] first to learn what it says.
//! - `journal_clear` deletes the entry written with this lease's fence (even after the
//!   lease was lost: the writer settled its own refresh), or, while this lease is current,
//!   an entry of an older fence that the caller has examined and settled. It never deletes
//!   an entry of a newer fence.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::coordinator::Coordinator;
use super::db::{from_sql_int, to_sql_int};
use super::lease::{renew_row, Lease, LeaseShared};
use crate::clock::{BootInstant, Stamp};
use crate::error::{Error, Result};

/// How far an in-flight refresh got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JournalPhase {
    /// About to send (or sent) the refresh request: the old refresh token may be consumed.
    RequestSent,
    /// The provider answered with new tokens (hash recorded): the old refresh token is
    /// consumed for sure, and the new tokens are being made durable in the app's store.
    Answered,
    /// The new tokens are being (or were) saved to the app's store; the commit follows.
    Saving,
}

impl JournalPhase {
    /// The value stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            JournalPhase::RequestSent => "request_sent",
            JournalPhase::Answered => "answered",
            JournalPhase::Saving => "saving",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self> {
        match s {
            "request_sent" => Ok(JournalPhase::RequestSent),
            // `response_received` was written by earlier releases for the same phase.
            "answered" | "response_received" => Ok(JournalPhase::Answered),
            "saving" => Ok(JournalPhase::Saving),
            other => Err(Error::Database { message: format!("unknown journal phase `{other}`") }),
        }
    }
}

/// An in-flight (or abandoned) refresh as recorded by its lease holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// The holder that wrote it.
    pub holder: String,
    /// The fence of the lease it was written under.
    pub fence: u64,
    /// The generation the refresh started from.
    pub from_generation: u64,
    /// How far it got.
    pub phase: JournalPhase,
    /// Hash of the tokens received, once known.
    pub new_token_hash: Option<String>,
    /// When `journal_begin` was called (ms since the Unix epoch).
    pub started_at_ms: i64,
    /// When the entry was last written (ms since the Unix epoch).
    pub updated_at_ms: i64,
    /// The boot during which the entry was written, if the writer knew it (and the entry
    /// was written by a release that records it). Boot stamps: `docs/adr/0005-clock.md`.
    pub boot_id: Option<String>,
    /// `started_at_ms` on the boot clock of `boot_id`.
    pub started_boot_ms: Option<i64>,
    /// `updated_at_ms` on the boot clock of `boot_id`.
    pub updated_boot_ms: Option<i64>,
}

impl JournalEntry {
    fn stamp(&self, wall_ms: i64, boot_ms: Option<i64>) -> Stamp {
        let boot = match (&self.boot_id, boot_ms) {
            (Some(boot_id), Some(millis)) => Some(BootInstant { boot_id: boot_id.clone(), millis }),
            _ => None,
        };
        Stamp { wall_ms, boot }
    }

    /// When `journal_begin` wrote the entry, on both clocks.
    pub fn started(&self) -> Stamp {
        self.stamp(self.started_at_ms, self.started_boot_ms)
    }

    /// When the entry was last written, on both clocks.
    pub fn updated(&self) -> Stamp {
        self.stamp(self.updated_at_ms, self.updated_boot_ms)
    }

    /// Time since the entry was last written, seen at `now` (from
    /// [`Coordinator::now_stamp`]): by the boot clock when both are of the same boot, so a
    /// wall-clock jump does not make a fresh entry look old or an old one fresh; by the
    /// wall clock when either boot is unknown; `None` when the entry was written during an
    /// earlier boot (older than anything of this boot; its writer is gone). See
    /// [`Stamp::age`]. Pure: touches nothing.
    pub fn age(&self, now: &Stamp) -> Option<Duration> {
        self.updated().age(now)
    }
}

fn read(conn: &Connection, account: &str) -> Result<Option<JournalEntry>> {
    struct Row {
        holder: String,
        fence: i64,
        from_generation: i64,
        phase: String,
        new_token_hash: Option<String>,
        started: i64,
        updated: i64,
        boot_id: Option<String>,
        started_boot: Option<i64>,
        updated_boot: Option<i64>,
        boot_fence: Option<i64>,
    }
    let row: Option<Row> = conn
        .prepare_cached(
            "SELECT holder, fence, from_generation, phase, new_token_hash, started_at_ms,
                    updated_at_ms, boot_id, started_boot_ms, updated_boot_ms, boot_fence
             FROM journal WHERE account = ?1",
        )?
        .query_row([account], |r| {
            Ok(Row {
                holder: r.get(0)?,
                fence: r.get(1)?,
                from_generation: r.get(2)?,
                phase: r.get(3)?,
                new_token_hash: r.get(4)?,
                started: r.get(5)?,
                updated: r.get(6)?,
                boot_id: r.get(7)?,
                started_boot: r.get(8)?,
                updated_boot: r.get(9)?,
                boot_fence: r.get(10)?,
            })
        })
        .optional()?;
    row.map(|row| {
        // Boot stamps left by an entry of another fence (overwritten by a release that
        // does not write them) are stale: read as unknown.
        let valid = row.boot_fence == Some(row.fence) && row.boot_id.is_some();
        Ok(JournalEntry {
            holder: row.holder,
            fence: from_sql_int(row.fence, "fence")?,
            from_generation: from_sql_int(row.from_generation, "generation")?,
            phase: JournalPhase::parse(&row.phase)?,
            new_token_hash: row.new_token_hash,
            started_at_ms: row.started,
            updated_at_ms: row.updated,
            boot_id: if valid { row.boot_id } else { None },
            started_boot_ms: row.started_boot.filter(|_| valid),
            updated_boot_ms: row.updated_boot.filter(|_| valid),
        })
    })
    .transpose()
}

/// The boot columns of a stamp: `(boot_id, millis)`, both `NULL` when the boot is unknown.
fn boot_params(stamp: &Stamp) -> (Option<String>, Option<i64>) {
    match &stamp.boot {
        Some(b) => (Some(b.boot_id.clone()), Some(b.millis)),
        None => (None, None),
    }
}

fn lost_error(shared: &LeaseShared) -> Error {
    Error::LeaseLost { account: shared.account.clone() }
}

impl Coordinator {
    /// The journal entry of `account`, if a refresh is in flight or was abandoned.
    pub async fn journal(&self, account: &str) -> Result<Option<JournalEntry>> {
        let account = account.to_owned();
        self.inner.blocking(move |_, conn| read(conn, &account)).await
    }
}

impl Lease {
    /// Records that a refresh from `from_generation` starts (phase `request_sent`),
    /// replacing any entry of an older fence. Call it before sending the request. Fails
    /// (and marks the lease lost) if another acquisition took the lease. Also renews the
    /// lease.
    pub async fn journal_begin(&self, from_generation: u64) -> Result<()> {
        let from = to_sql_int(from_generation, "generation")?;
        self.journal_write(move |conn, shared, now| {
            let (boot_id, boot_ms) = boot_params(now);
            conn.prepare_cached(
                "INSERT INTO journal (account, holder, fence, from_generation, phase,
                                      new_token_hash, started_at_ms, updated_at_ms, boot_id,
                                      started_boot_ms, updated_boot_ms, boot_fence)
                 VALUES (?1, ?2, ?3, ?4, 'request_sent', NULL, ?5, ?5, ?6, ?7, ?7,
                         CASE WHEN ?6 IS NULL THEN NULL ELSE ?3 END)
                 ON CONFLICT (account) DO UPDATE SET holder = excluded.holder,
                    fence = excluded.fence, from_generation = excluded.from_generation,
                    phase = excluded.phase, new_token_hash = NULL,
                    started_at_ms = excluded.started_at_ms,
                    updated_at_ms = excluded.updated_at_ms,
                    boot_id = excluded.boot_id,
                    started_boot_ms = excluded.started_boot_ms,
                    updated_boot_ms = excluded.updated_boot_ms,
                    boot_fence = excluded.boot_fence",
            )?
            .execute(params![
                shared.account,
                shared.holder,
                to_sql_int(shared.fence, "fence")?,
                from,
                now.wall_ms,
                boot_id,
                boot_ms
            ])?;
            Ok(())
        })
        .await
    }

    /// Moves this lease's journal entry to `phase`, recording `new_token_hash` if given
    /// (a `None` keeps the hash already recorded). Fails if there is no entry of this
    /// lease or another acquisition took the lease. Also renews the lease.
    pub async fn journal_phase(
        &self,
        phase: JournalPhase,
        new_token_hash: Option<&str>,
    ) -> Result<()> {
        let hash = new_token_hash.map(str::to_owned);
        self.journal_write(move |conn, shared, now| {
            let (boot_id, boot_ms) = boot_params(now);
            // The boot time is kept only if it is of the boot `journal_begin` recorded
            // (always so: one lease lives in one process); otherwise it is unknown.
            let n = conn
                .prepare_cached(
                    "UPDATE journal SET phase = ?4,
                        new_token_hash = COALESCE(?5, new_token_hash), updated_at_ms = ?6,
                        updated_boot_ms = CASE WHEN boot_id IS ?7 THEN ?8 ELSE NULL END
                     WHERE account = ?1 AND holder = ?2 AND fence = ?3",
                )?
                .execute(params![
                    shared.account,
                    shared.holder,
                    to_sql_int(shared.fence, "fence")?,
                    phase.as_str(),
                    hash,
                    now.wall_ms,
                    boot_id,
                    boot_ms
                ])?;
            if n == 1 {
                Ok(())
            } else {
                Err(Error::Database {
                    message: "no journal entry of this lease: call journal_begin first".into(),
                })
            }
        })
        .await
    }

    /// Deletes the journal entry once the refresh is settled (committed, or failed without
    /// consuming the token). Deletes the entry written with this lease's fence (even if the
    /// lease was lost since), or — while this lease is current — a stale entry of an older
    /// fence. Never an entry of a newer fence. Deleting nothing is not an error.
    pub async fn journal_clear(&self) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        self.inner
            .blocking(move |_, conn| {
                conn.prepare_cached(
                    "DELETE FROM journal WHERE account = ?1 AND (
                        (holder = ?2 AND fence = ?3)
                        OR (fence < ?3 AND EXISTS (SELECT 1 FROM lease
                             WHERE account = ?1 AND holder = ?2 AND fence = ?3)))",
                )?
                .execute(params![
                    shared.account,
                    shared.holder,
                    to_sql_int(shared.fence, "fence")?
                ])?;
                Ok(())
            })
            .await
    }

    /// Renews the lease and checks, in one transaction, that its fence is still current;
    /// fails with [`Error::LeaseLost`] (and marks the lease lost) otherwise. Called right
    /// before and after every store write, so a holder that lost its lease never writes the
    /// app's store unnoticed. Writes only the lease row.
    pub async fn confirm(&self) -> Result<()> {
        if self.shared.is_lost() {
            return Err(lost_error(&self.shared));
        }
        self.journal_write(|_, _, _| Ok(())).await
    }

    /// Runs `write` in one write transaction after renewing the lease; if the fence is no
    /// longer current, writes nothing, marks the lease lost and fails.
    async fn journal_write(
        &self,
        write: impl FnOnce(&Connection, &LeaseShared, &Stamp) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        self.inner
            .blocking(move |inner, conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let now = inner.now_stamp();
                if !renew_row(&tx, &shared, &now.after_millis(inner.lease_ms()))? {
                    shared.mark_lost();
                    return Err(lost_error(&shared));
                }
                write(&tx, &shared, &now)?;
                tx.commit()?;
                shared.touch();
                Ok(())
            })
            .await
    }
}
