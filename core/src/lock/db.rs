//! The SQLite connection: opening (file mode 0600, WAL, busy timeout, schema), closing for
//! `pause`, and the one place where the connection's mutex is locked.
//!
//! Every function here is blocking. Callers run them inside `spawn_blocking`; the mutex is
//! never held across an `.await` or outside those closures.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Error, Result};

/// The schema version this code writes (`PRAGMA user_version`).
///
/// Migrations are additive only (new tables, new nullable columns), so a process of an
/// older release that opens a file of a newer version keeps working on the tables it knows.
pub(crate) const SCHEMA_VERSION: i64 = 2;

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS lease (
    account       TEXT PRIMARY KEY NOT NULL,
    holder        TEXT,                       -- NULL: free
    fence         INTEGER NOT NULL,           -- +1 on every acquisition, never reset
    expires_at_ms INTEGER NOT NULL            -- 0 when free
);
CREATE TABLE IF NOT EXISTS generation (
    account       TEXT PRIMARY KEY NOT NULL,
    generation    INTEGER NOT NULL,
    token_hash    TEXT,                       -- caller-supplied hash, never a token
    state         TEXT NOT NULL,              -- active | logged_out | reauth_required
    updated_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS journal (
    account         TEXT PRIMARY KEY NOT NULL,
    holder          TEXT NOT NULL,
    fence           INTEGER NOT NULL,
    from_generation INTEGER NOT NULL,
    phase           TEXT NOT NULL,            -- request_sent | response_received | saving
    new_token_hash  TEXT,
    started_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL
);
";

/// Version 2: the boot clock next to the wall clock (`docs/adr/0005-clock.md`). Each boot
/// stamp is valid only while its `boot_fence` equals the row's `fence`: a release that
/// predates these columns leaves them alone when it takes a row over, and the bumped fence
/// then marks them stale.
const SCHEMA_V2: &str = "
ALTER TABLE lease ADD COLUMN boot_id TEXT;               -- boot of the expiry below
ALTER TABLE lease ADD COLUMN boot_expires_ms INTEGER;    -- expiry on that boot's clock
ALTER TABLE lease ADD COLUMN boot_fence INTEGER;         -- fence the two were written for
ALTER TABLE journal ADD COLUMN boot_id TEXT;             -- boot of the two times below
ALTER TABLE journal ADD COLUMN started_boot_ms INTEGER;
ALTER TABLE journal ADD COLUMN updated_boot_ms INTEGER;
ALTER TABLE journal ADD COLUMN boot_fence INTEGER;       -- fence the three were written for
";

/// The shared database file and this process's connection to it (opened on demand).
#[derive(Debug)]
pub(crate) struct Db {
    path: PathBuf,
    busy_timeout: Duration,
    conn: Mutex<Option<Connection>>,
    /// Pause epoch: odd while paused. `pause` moves an even value to the next odd one,
    /// `resume` an odd one to the next even one, so the blocking part of a pause can tell
    /// whether a `resume` came after it was entered.
    pause_epoch: AtomicU64,
}

/// The epoch a [`Db::begin_pause`] returned: its blocking part acts only while the
/// database is still in that pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PauseToken(u64);

impl Db {
    pub(crate) fn new(path: PathBuf, busy_timeout: Duration) -> Self {
        Db { path, busy_timeout, conn: Mutex::new(None), pause_epoch: AtomicU64::new(0) }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Option<Connection>> {
        // A panic inside a closure leaves the connection usable: rusqlite rolls back an
        // unfinished transaction when it is dropped.
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the connection, opening it first if needed. Fails while paused.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut guard = self.lock();
        // Checked under the mutex: `pause` sets the flag and then takes the mutex, so an
        // operation either completes before the pause drains this process's leases or
        // sees the flag.
        if self.is_paused() {
            return Err(paused_error());
        }
        Self::run(&self.path, self.busy_timeout, &mut guard, f)
    }

    fn run<T>(
        path: &Path,
        busy_timeout: Duration,
        slot: &mut Option<Connection>,
        f: impl FnOnce(&mut Connection) -> Result<T>,
    ) -> Result<T> {
        let conn = match slot {
            Some(conn) => conn,
            None => slot.insert(open_connection(path, busy_timeout)?),
        };
        f(conn)
    }

    /// Whether later calls fail with "paused".
    pub(crate) fn is_paused(&self) -> bool {
        !self.pause_epoch.load(Ordering::SeqCst).is_multiple_of(2)
    }

    /// Pauses now (later calls fail) and returns the pause's token. Already paused: the
    /// current pause's token.
    pub(crate) fn begin_pause(&self) -> PauseToken {
        let previous = self
            .pause_epoch
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |e| {
                (e.is_multiple_of(2)).then_some(e.wrapping_add(1))
            })
            .unwrap_or_else(|current| current);
        PauseToken(if previous.is_multiple_of(2) { previous.wrapping_add(1) } else { previous })
    }

    /// Ends any pause: every pause entered before this call is over, and the blocking part
    /// of such a pause that has not run yet will do nothing.
    pub(crate) fn resume(&self) {
        // An `Err` means "not paused", which leaves nothing to do.
        let _ = self.pause_epoch.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |e| {
            (!e.is_multiple_of(2)).then_some(e.wrapping_add(1))
        });
    }

    /// The blocking part of a pause: if the database is still in the pause of `token` (no
    /// `resume` since), runs `before_close` on the open connection if there is one, then
    /// closes it; returns whether it did. Blocking.
    pub(crate) fn close_for_pause(
        &self,
        token: PauseToken,
        before_close: impl FnOnce(&mut Connection),
    ) -> bool {
        let mut guard = self.lock();
        // Checked under the mutex, which `with` holds while it works: once this passes,
        // no operation runs until the connection is closed, and a `resume` from now on
        // only lets later calls reopen it.
        if self.pause_epoch.load(Ordering::SeqCst) != token.0 {
            return false;
        }
        if let Some(conn) = guard.as_mut() {
            before_close(conn);
        }
        if let Some(conn) = guard.take() {
            if let Err((_conn, e)) = conn.close() {
                // The handle is dropped anyway; SQLite finishes closing it then.
                tracing::warn!(error = %e, "closing the coordination database failed");
            }
        }
        true
    }

    /// Whether the connection is currently open.
    pub(crate) fn is_open(&self) -> bool {
        self.lock().is_some()
    }
}

pub(crate) fn paused_error() -> Error {
    Error::Database { message: "the coordination database is paused (call resume)".into() }
}

/// Creates the file with mode 0600 if it does not exist, so SQLite (which gives the -wal and
/// -shm files the main file's mode) never creates a world-readable file.
fn create_private_file(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .map(drop)
        .map_err(|e| Error::Database { message: format!("cannot create {}: {e}", path.display()) })
}

fn open_connection(path: &Path, busy_timeout: Duration) -> Result<Connection> {
    if !path.exists() {
        create_private_file(path)?;
    }
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(busy_timeout)?;
    conn.set_prepared_statement_cache_capacity(32);
    // Switching to WAL needs a write lock once per file; later opens only read the mode.
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Database { message: format!("cannot enable WAL (mode {mode})") });
        }
    }
    conn.pragma_update(None, "synchronous", synchronous())?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// `NORMAL`: no fsync per commit; a power loss may drop the last commits, which the refresh
/// decision tolerates (docs/adr/0006). With the `bench-knobs` feature only,
/// `LATCHKEY_BENCH_SYNCHRONOUS=FULL` selects `FULL`, to compare durability settings.
fn synchronous() -> &'static str {
    #[cfg(feature = "bench-knobs")]
    if std::env::var("LATCHKEY_BENCH_SYNCHRONOUS").is_ok_and(|v| v.eq_ignore_ascii_case("full")) {
        return "FULL";
    }
    "NORMAL"
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version >= SCHEMA_VERSION {
        if version > SCHEMA_VERSION {
            tracing::debug!(version, "coordination database has a newer (additive) schema");
        }
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Re-read under the write lock: another process may have migrated meanwhile.
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < 1 {
        tx.execute_batch(SCHEMA_V1)?;
    }
    if version < 2 {
        tx.execute_batch(SCHEMA_V2)?;
    }
    if version < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()?;
    Ok(())
}

/// Converts a `u64` the API takes (generation, fence) to SQLite's signed integer.
pub(crate) fn to_sql_int(value: u64, what: &str) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::config(format!("{what} {value} exceeds i64::MAX")))
}

/// Converts a stored integer back; negative values mean a corrupt row.
pub(crate) fn from_sql_int(value: i64, what: &str) -> Result<u64> {
    u64::try_from(value)
        .map_err(|_| Error::Database { message: format!("negative {what} in the database") })
}
