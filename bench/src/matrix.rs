//! The anchor: matrix-sdk-common's unmodified `CrossProcessLock`, over a SQLite lease table
//! written the way matrix-sdk-sqlite describes its lease: one upsert that takes the row when
//! this holder already has it or the lease expired (wall-clock milliseconds), returning the
//! generation, inside a `BEGIN DEFERRED` transaction, on one write connection behind a mutex
//! and run on Tokio's blocking pool.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use matrix_sdk_common::cross_process_lock::{CrossProcessLockGeneration, TryLock};
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior};

/// Errors of the lease table.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The blocking task did not finish.
    #[error("blocking task: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The connection mutex was poisoned by a panic.
    #[error("connection mutex poisoned")]
    Poisoned,
}

/// The lease table of one process: its single write connection, and a count of the
/// transactions it ran (every attempt, renewal and release is one write transaction).
#[derive(Clone)]
pub struct SqliteLeases {
    conn: Arc<Mutex<Connection>>,
    attempts: Arc<AtomicU64>,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS lease_locks (
    key TEXT PRIMARY KEY NOT NULL,
    holder TEXT NOT NULL,
    expiration INTEGER NOT NULL,
    generation INTEGER NOT NULL DEFAULT 1
)";

// Take the row if it is free, ours, or its lease ran out; a new holder bumps the generation.
const TAKE: &str = "INSERT INTO lease_locks (key, holder, expiration, generation)
    VALUES (?1, ?2, ?3, 1)
    ON CONFLICT (key) DO UPDATE SET
        generation = CASE WHEN lease_locks.holder = excluded.holder
                          THEN lease_locks.generation ELSE lease_locks.generation + 1 END,
        holder = excluded.holder,
        expiration = excluded.expiration
    WHERE lease_locks.holder = excluded.holder OR lease_locks.expiration < ?4
    RETURNING generation";

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl SqliteLeases {
    /// Opens (creating) the table in WAL mode with the given `synchronous` setting.
    pub fn open(path: &Path, synchronous: &str) -> Result<Self, LeaseError> {
        let conn = Connection::open(path)?;
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))?;
        conn.pragma_update(None, "synchronous", synchronous)?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)), attempts: Arc::default() })
    }

    /// Write transactions run so far by this process.
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    fn take(
        conn: &Mutex<Connection>,
        lease_ms: u32,
        key: &str,
        holder: &str,
    ) -> Result<Option<u64>, LeaseError> {
        let mut conn = conn.lock().map_err(|_| LeaseError::Poisoned)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let now = now_ms();
        let generation = tx
            .prepare_cached(TAKE)?
            .query_row(rusqlite::params![key, holder, now + i64::from(lease_ms), now], |r| {
                r.get::<_, i64>(0)
            })
            .optional()?;
        tx.commit()?;
        Ok(generation.map(|g| g as u64))
    }
}

impl TryLock for SqliteLeases {
    type LockError = LeaseError;

    fn try_lock(
        &self,
        lease_duration_ms: u32,
        key: &str,
        holder: &str,
    ) -> impl std::future::Future<Output = Result<Option<CrossProcessLockGeneration>, LeaseError>> + Send
    {
        let conn = Arc::clone(&self.conn);
        let (key, holder) = (key.to_owned(), holder.to_owned());
        self.attempts.fetch_add(1, Ordering::Relaxed);
        async move {
            tokio::task::spawn_blocking(move || Self::take(&conn, lease_duration_ms, &key, &holder))
                .await?
        }
    }
}
