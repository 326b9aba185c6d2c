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

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::coordinator::Coordinator;
use super::db::{from_sql_int, to_sql_int};
use super::lease::{renew_row, Lease, LeaseShared};
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

    fn parse(s: &str) -> Result<Self> {
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
    /// When the entry was last written.
    pub updated_at_ms: i64,
}

fn read(conn: &Connection, account: &str) -> Result<Option<JournalEntry>> {
    type Row = (String, i64, i64, String, Option<String>, i64, i64);
    let row: Option<Row> = conn
        .prepare_cached(
            "SELECT holder, fence, from_generation, phase, new_token_hash, started_at_ms,
                    updated_at_ms
             FROM journal WHERE account = ?1",
        )?
        .query_row([account], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
        })
        .optional()?;
    row.map(|(holder, fence, from_generation, phase, new_token_hash, started, updated)| {
        Ok(JournalEntry {
            holder,
            fence: from_sql_int(fence, "fence")?,
            from_generation: from_sql_int(from_generation, "generation")?,
            phase: JournalPhase::parse(&phase)?,
            new_token_hash,
            started_at_ms: started,
            updated_at_ms: updated,
        })
    })
    .transpose()
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
            conn.prepare_cached(
                "INSERT INTO journal (account, holder, fence, from_generation, phase,
                                      new_token_hash, started_at_ms, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?4, 'request_sent', NULL, ?5, ?5)
                 ON CONFLICT (account) DO UPDATE SET holder = excluded.holder,
                    fence = excluded.fence, from_generation = excluded.from_generation,
                    phase = excluded.phase, new_token_hash = NULL,
                    started_at_ms = excluded.started_at_ms,
                    updated_at_ms = excluded.updated_at_ms",
            )?
            .execute(params![
                shared.account,
                shared.holder,
                to_sql_int(shared.fence, "fence")?,
                from,
                now
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
            let n = conn
                .prepare_cached(
                    "UPDATE journal SET phase = ?4,
                        new_token_hash = COALESCE(?5, new_token_hash), updated_at_ms = ?6
                     WHERE account = ?1 AND holder = ?2 AND fence = ?3",
                )?
                .execute(params![
                    shared.account,
                    shared.holder,
                    to_sql_int(shared.fence, "fence")?,
                    phase.as_str(),
                    hash,
                    now
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
        write: impl FnOnce(&Connection, &LeaseShared, i64) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        self.inner
            .blocking(move |inner, conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let now = inner.now_ms();
                if !renew_row(&tx, &shared, now.saturating_add(inner.lease_ms()))? {
                    shared.mark_lost();
                    return Err(lost_error(&shared));
                }
                write(&tx, &shared, now)?;
                tx.commit()?;
                shared.touch();
                Ok(())
            })
            .await
    }
}
