//! Session generations: which committed session is the newest, compared and swapped
//! atomically across processes. See `docs/adr/0002-generations-and-journal.md`.
//!
//! The generation row is independent of the lease: a commit is a compare-and-swap on the
//! generation number, not on lease ownership, because a holder whose lease lapsed while it
//! waited for the provider may hold the only valid refresh token.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::coordinator::Coordinator;
use super::db::{from_sql_int, to_sql_int};
use crate::error::{Error, Result};

/// Whether an account's session is usable, as recorded for every process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionState {
    /// A session is committed and may be refreshed.
    Active,
    /// The session was logged out; every process must drop it.
    LoggedOut,
    /// The provider no longer accepts the session; the user must sign in again.
    ReauthRequired,
}

impl SessionState {
    /// The value stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Active => "active",
            SessionState::LoggedOut => "logged_out",
            SessionState::ReauthRequired => "reauth_required",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "active" => Ok(SessionState::Active),
            "logged_out" => Ok(SessionState::LoggedOut),
            "reauth_required" => Ok(SessionState::ReauthRequired),
            other => Err(Error::Database { message: format!("unknown session state `{other}`") }),
        }
    }
}

/// The committed generation of an account's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationRecord {
    /// Increases with every commit, registration over an ended session, and end.
    pub generation: u64,
    /// The caller's hash of the committed tokens (`None` once the session ended).
    pub token_hash: Option<String>,
    /// Whether the session is usable.
    pub state: SessionState,
    /// When the row was last written (milliseconds since the Unix epoch, caller's clock).
    pub updated_at_ms: i64,
}

fn read(conn: &Connection, account: &str) -> Result<Option<GenerationRecord>> {
    let row = conn
        .prepare_cached(
            "SELECT generation, token_hash, state, updated_at_ms FROM generation WHERE account = ?1",
        )?
        .query_row([account], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .optional()?;
    row.map(|(generation, token_hash, state, updated_at_ms)| {
        Ok(GenerationRecord {
            generation: from_sql_int(generation, "generation")?,
            token_hash,
            state: SessionState::parse(&state)?,
            updated_at_ms,
        })
    })
    .transpose()
}

fn write(
    conn: &Connection,
    account: &str,
    generation: i64,
    token_hash: Option<&str>,
    state: SessionState,
    now_ms: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO generation (account, generation, token_hash, state, updated_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (account) DO UPDATE SET generation = excluded.generation,
            token_hash = excluded.token_hash, state = excluded.state,
            updated_at_ms = excluded.updated_at_ms",
    )?
    .execute(params![account, generation, token_hash, state.as_str(), now_ms])?;
    Ok(())
}

impl Coordinator {
    /// The committed generation of `account`, if any. A plain read; no lease needed.
    pub async fn generation(&self, account: &str) -> Result<Option<GenerationRecord>> {
        let account = account.to_owned();
        self.inner.blocking(move |_, conn| read(conn, &account)).await
    }

    /// Compare-and-swap on the generation (NOT on lease ownership: a holder whose lease
    /// lapsed may still hold the newest tokens).
    ///
    /// Succeeds iff the current generation equals `expected` (`None`: no row yet) and the
    /// state is active; then sets `new_generation`, `token_hash` and state active and
    /// returns `Ok(true)`. Returns `Ok(false)` if someone else committed (or ended the
    /// session) first. `new_generation` must be greater than `expected`, so a generation
    /// never goes back.
    pub async fn commit(
        &self,
        account: &str,
        expected: Option<u64>,
        new_generation: u64,
        token_hash: &str,
    ) -> Result<bool> {
        if expected.is_some_and(|e| new_generation <= e) {
            return Err(Error::config(format!(
                "commit must move the generation forward ({expected:?} -> {new_generation})"
            )));
        }
        let expected = expected.map(|e| to_sql_int(e, "generation")).transpose()?;
        let new_generation = to_sql_int(new_generation, "generation")?;
        let (account, hash) = (account.to_owned(), token_hash.to_owned());
        self.inner
            .blocking(move |inner, conn| {
                let now = inner.now_ms();
                let changed = match expected {
                    None => conn
                        .prepare_cached(
                            "INSERT INTO generation
                                (account, generation, token_hash, state, updated_at_ms)
                             VALUES (?1, ?2, ?3, 'active', ?4)
                             ON CONFLICT (account) DO NOTHING",
                        )?
                        .execute(params![account, new_generation, hash, now])?,
                    Some(expected) => conn
                        .prepare_cached(
                            "UPDATE generation SET generation = ?2, token_hash = ?3,
                                state = 'active', updated_at_ms = ?4
                             WHERE account = ?1 AND generation = ?5 AND state = 'active'",
                        )?
                        .execute(params![account, new_generation, hash, now, expected])?,
                };
                Ok(changed == 1)
            })
            .await
    }

    /// Registers a newly signed-in or restored session and returns the resulting record,
    /// whose generation is authoritative (save the session under it):
    ///
    /// - no row, or the session ended (logged out / reauth required): the session becomes
    ///   active at `max(generation, current + 1)` — never lower than an ended generation,
    ///   so a process holding the ended session's tokens can never win a commit;
    /// - active and `generation` greater than the current one: replaced;
    /// - active and `generation` not greater: nothing changes and the current (newer or
    ///   equal) record is returned — adopt it instead.
    pub async fn register(
        &self,
        account: &str,
        generation: u64,
        token_hash: &str,
    ) -> Result<GenerationRecord> {
        let requested = to_sql_int(generation, "generation")?;
        let (account, hash) = (account.to_owned(), token_hash.to_owned());
        self.inner
            .blocking(move |inner, conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let now = inner.now_ms();
                let current = read(&tx, &account)?;
                let target = match &current {
                    None => Some(requested),
                    Some(c) if c.state != SessionState::Active => {
                        let next = to_sql_int(c.generation, "generation")?.saturating_add(1);
                        Some(requested.max(next))
                    }
                    Some(c) if generation > c.generation => Some(requested),
                    Some(_) => None,
                };
                if let Some(target) = target {
                    write(&tx, &account, target, Some(&hash), SessionState::Active, now)?;
                }
                let record = read(&tx, &account)?.ok_or_else(|| Error::Database {
                    message: "generation row vanished inside a transaction".into(),
                })?;
                tx.commit()?;
                Ok(record)
            })
            .await
    }

    /// Ends the session for every process: state becomes `state` (logged out or reauth
    /// required), the generation goes up by one (to 1 if there was no row), the token hash
    /// is cleared. Returns the new generation. Ending an ended session bumps it again.
    pub async fn end(&self, account: &str, state: SessionState) -> Result<u64> {
        if state == SessionState::Active {
            return Err(Error::config("end() needs an ending state, not Active"));
        }
        let account = account.to_owned();
        self.inner
            .blocking(move |inner, conn| {
                let generation: i64 = conn
                    .prepare_cached(
                        "INSERT INTO generation
                            (account, generation, token_hash, state, updated_at_ms)
                         VALUES (?1, 1, NULL, ?2, ?3)
                         ON CONFLICT (account) DO UPDATE SET generation = generation.generation + 1,
                            token_hash = NULL, state = excluded.state,
                            updated_at_ms = excluded.updated_at_ms
                         RETURNING generation",
                    )?
                    .query_row(params![account, state.as_str(), inner.now_ms()], |r| r.get(0))?;
                from_sql_int(generation, "generation")
            })
            .await
    }
}
