//! [`Coordinator`]: the handle on the shared database, its timings, acquiring leases
//! (waiting, polling, timeouts) and `pause` / `resume`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use tokio::time::Instant;

use super::db::Db;
use super::lease::{self, Handoff, Lease, LeaseShared};
use super::poll::PollSchedule;
use super::wake::Wake;
use crate::clock::{Clock, Stamp};
use crate::error::{Error, Result};

/// What one read of the row found.
enum Step {
    Taken(Handoff),
    /// Not acquirable: the row as read (if it was read) and both clocks then.
    Held(Option<lease::LeaseRow>, Stamp),
}

/// Tells a waiting blocking-pool thread that its caller is gone.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Timings of the lease lock. The defaults suit a refresh that makes one HTTP request.
///
/// - `lease` (3 s): how long a holder that stops renewing (killed, frozen, suspended) blocks
///   the others. It must cover at least two renewal periods so one late renewal is harmless.
/// - `renew_every` (1 s): one small write per second while a lease is held — a refresh
///   usually finishes before the first one.
/// - `acquire_timeout` (10 s): how long [`Coordinator::acquire`] waits before
///   [`Error::LockTimeout`]; longer than `lease`, so a dead holder never causes a timeout.
/// - `busy_timeout` (5 s): SQLite's wait for the write lock of another connection; writes
///   here last microseconds, so it is only reached when a process froze mid-write.
/// - `poll_interval` (1 ms), `poll_fast_for` (25 ms), `poll_max` (40 ms): a waiter whose
///   lease is held by another process reads the row every `poll_interval` for the first
///   `poll_fast_for` of its wait and after the row changed hands, then backs off (doubling)
///   to one read per `poll_max`, and never sleeps past the row's expiry; every delay is
///   jittered by ±50 % so simultaneous waiters spread out. Short holds are handed over in
///   about a millisecond; a hold of seconds costs about 25 reads per second. A read in WAL
///   mode never blocks the holder, and a waiter writes only when the row looks free.
///   Waiters of the same process do not poll: they queue in-process and are woken by the
///   release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// Lease duration: expiry after the last renewal.
    pub lease: Duration,
    /// Renewal period while a lease is held.
    pub renew_every: Duration,
    /// Default wait of [`Coordinator::acquire`].
    pub acquire_timeout: Duration,
    /// SQLite busy timeout for every connection.
    pub busy_timeout: Duration,
    /// Mean interval between two reads of a waiter polling for another process's release,
    /// while a release is likely soon (see `poll_fast_for`).
    pub poll_interval: Duration,
    /// How long a waiter reads every `poll_interval` after its wait starts and after the row
    /// changed hands, before backing off.
    pub poll_fast_for: Duration,
    /// The longest mean interval between two reads once backed off.
    pub poll_max: Duration,
    /// The longest a lease is renewed (default 120 s, far beyond a refresh's bounded steps):
    /// a holder stuck longer — a hung app callback, say — stops being renewed, its lease
    /// lapses and the other processes go on; its own next fenced write fails with the
    /// retryable [`Error::LeaseLost`].
    pub max_hold: Duration,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            lease: Duration::from_secs(3),
            renew_every: Duration::from_secs(1),
            acquire_timeout: Duration::from_secs(10),
            busy_timeout: Duration::from_secs(5),
            poll_interval: Duration::from_millis(1),
            poll_fast_for: Duration::from_millis(25),
            poll_max: Duration::from_millis(40),
            max_hold: Duration::from_secs(120),
        }
    }
}

/// The shared coordination database of all processes of the app: lease lock, session
/// generations and refresh journal, each keyed by account.
///
/// Cheap to clone. Every SQLite call runs on Tokio's blocking pool in one short
/// transaction; nothing holds a SQLite lock across an `.await`. In WAL mode an open
/// connection does keep a shared lock on the `-shm` file, so on iOS call
/// [`Coordinator::pause`] before the app is suspended.
#[derive(Clone, Debug)]
pub struct Coordinator {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) db: Db,
    pub(crate) config: CoordinatorConfig,
    pub(crate) clock: Arc<dyn Clock>,
    /// One async mutex per account: the tasks of this process queue here (FIFO) before
    /// touching the row, and are woken by the release.
    local: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Leases of this process that are held: renewed by the renewer, released by `pause`.
    live: Mutex<HashMap<String, Arc<LeaseShared>>>,
    /// Whether the renewer task runs (it runs only while leases are held).
    pub(crate) renewer_running: AtomicBool,
}

impl Inner {
    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_millis()
    }

    /// Both clocks now.
    pub(crate) fn now_stamp(&self) -> Stamp {
        crate::clock::stamp(&*self.clock)
    }

    pub(crate) fn lease_ms(&self) -> i64 {
        i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// Runs `f` with the connection on the blocking pool.
    pub(crate) async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Inner, &mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = Arc::clone(self);
        tokio::task::spawn_blocking(move || inner.db.with(|conn| f(&inner, conn)))
            .await
            .map_err(|e| Error::Database { message: format!("database task failed: {e}") })?
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LeaseShared>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The leases of this process that are held now.
    pub(crate) fn live_leases(&self) -> Vec<Arc<LeaseShared>> {
        self.live().values().cloned().collect()
    }

    fn register(&self, shared: &Arc<LeaseShared>) {
        self.live().insert(shared.account.clone(), Arc::clone(shared));
    }

    /// Forgets `shared` (only that acquisition, not a newer one of the same account).
    pub(crate) fn unregister(&self, shared: &Arc<LeaseShared>) {
        let mut live = self.live();
        if live.get(&shared.account).is_some_and(|s| Arc::ptr_eq(s, shared)) {
            live.remove(&shared.account);
        }
    }

    fn local_slot(&self, account: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(local.entry(account.to_owned()).or_default())
    }
}

impl Coordinator {
    /// Opens (creating if needed, mode 0600) the database at `path` and its schema.
    ///
    /// Blocking: opens the connection now so a bad path or permission fails here. The
    /// parent directory must exist.
    pub fn open(
        path: impl Into<PathBuf>,
        config: CoordinatorConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let db = Db::new(path.into(), config.busy_timeout);
        db.with(|_| Ok(()))?;
        Ok(Coordinator {
            inner: Arc::new(Inner {
                db,
                config,
                clock,
                local: Mutex::new(HashMap::new()),
                live: Mutex::new(HashMap::new()),
                renewer_running: AtomicBool::new(false),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.inner.db.path()
    }

    /// Both clocks now, as this coordinator's [`Clock`] reads them: compare with recorded
    /// stamps such as [`JournalEntry::updated`](super::JournalEntry::updated) through
    /// [`Stamp::age`] / [`JournalEntry::age`](super::JournalEntry::age), which use the boot
    /// clock within one boot and so ignore wall-clock jumps. Touches nothing.
    pub fn now_stamp(&self) -> Stamp {
        self.inner.now_stamp()
    }

    /// The timings in use.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.inner.config
    }

    /// Acquires the lease on `account`, waiting up to the configured `acquire_timeout`.
    ///
    /// `holder` names the acquiring process (and task, if useful); it must be unique per
    /// process, e.g. `"app-<pid>-<random>"`: a row held by the same holder string counts as
    /// ours and is taken over at once (see the module docs).
    pub async fn acquire(&self, account: &str, holder: &str) -> Result<Lease> {
        self.acquire_within(account, holder, self.inner.config.acquire_timeout).await
    }

    /// Acquires the lease on `account`, waiting up to `timeout`; [`Error::LockTimeout`]
    /// after that. Cancel-safe: dropping the future never leaves the row held.
    pub async fn acquire_within(
        &self,
        account: &str,
        holder: &str,
        timeout: Duration,
    ) -> Result<Lease> {
        let deadline = Instant::now() + timeout;
        let slot = self.inner.local_slot(account);
        let guard = match Arc::clone(&slot).try_lock_owned() {
            Ok(guard) => guard,
            Err(_) => tokio::time::timeout_at(deadline, slot.lock_owned())
                .await
                .map_err(|_| Error::LockTimeout)?,
        };
        // Held by another process: the wait runs on one blocking-pool thread that sleeps
        // between reads (`poll.rs`) and takes the row as soon as it looks free.
        let attempt = tokio::time::timeout_at(deadline, self.attempt(account, holder, deadline));
        match attempt.await {
            Ok(Ok(Some(shared))) => self.lease(shared, guard),
            Ok(Ok(None)) | Err(_) => Err(Error::LockTimeout),
            Ok(Err(e)) => Err(e),
        }
    }

    /// Acquires the lease on `account` if it can be had at once; `None` if another task or
    /// process holds it.
    pub async fn try_acquire(&self, account: &str, holder: &str) -> Result<Option<Lease>> {
        let slot = self.inner.local_slot(account);
        let Ok(guard) = slot.try_lock_owned() else {
            return Ok(None);
        };
        match self.attempt(account, holder, Instant::now()).await? {
            Some(shared) => self.lease(shared, guard).map(Some),
            None => Ok(None),
        }
    }

    /// Wraps a fresh acquisition; fails if a concurrent `pause` already released it.
    fn lease(
        &self,
        shared: Arc<LeaseShared>,
        guard: tokio::sync::OwnedMutexGuard<()>,
    ) -> Result<Lease> {
        if shared.is_released() {
            return Err(super::db::paused_error());
        }
        Ok(Lease::new(shared, Arc::clone(&self.inner), guard))
    }

    /// Takes the row, trying once and then, until `deadline`, reading it on the schedule of
    /// [`PollSchedule`] and trying again whenever it looks acquirable; `None` at the
    /// deadline. Runs on one blocking-pool thread, which sleeps between reads (it never
    /// holds the connection while sleeping). If this future is dropped, the thread stops at
    /// its next read; if the caller is gone by the time the row is taken, the row is given
    /// back.
    async fn attempt(
        &self,
        account: &str,
        holder: &str,
        deadline: Instant,
    ) -> Result<Option<Arc<LeaseShared>>> {
        // The row travels as a `Handoff`, which frees it when dropped: if this future is
        // cancelled, the blocking task's output is dropped unclaimed and the row is given
        // back at once instead of blocking everyone until it expires.
        let inner = Arc::clone(&self.inner);
        let account = account.to_owned();
        let holder = holder.to_owned();
        let cancelled = Arc::new(AtomicBool::new(false));
        let _cancel_on_drop = CancelOnDrop(Arc::clone(&cancelled));
        let deadline = deadline.into_std();
        let task = tokio::task::spawn_blocking(move || -> Result<Option<Handoff>> {
            let mut schedule = PollSchedule::new(&inner.config, std::time::Instant::now());
            // Set up once the wait backs off: a short wait never needs it.
            let mut wake: Option<Wake> = None;
            let mut peek = false;
            loop {
                let step = inner.db.with(|conn| {
                    let now = inner.now_stamp();
                    let mut row = None;
                    if peek {
                        row = lease::peek(conn, &account)?;
                        if row.as_ref().is_some_and(|r| !r.acquirable_by(&holder, &now)) {
                            return Ok(Step::Held(row, now));
                        }
                    }
                    let expires = now.after_millis(inner.lease_ms());
                    let busy = inner.config.busy_timeout;
                    let Some(fence) =
                        lease::try_take(conn, &account, &holder, &now, &expires, busy)?
                    else {
                        return Ok(Step::Held(row, now));
                    };
                    let shared = Arc::new(LeaseShared::new(account.clone(), holder.clone(), fence));
                    // Registered under the connection mutex, so a concurrent `pause` sees it.
                    inner.register(&shared);
                    Ok(Step::Taken(Handoff::new(shared, Arc::clone(&inner))))
                })?;
                let (row, now_stamp) = match step {
                    Step::Taken(handoff) => return Ok(Some(handoff)),
                    Step::Held(row, now) => (row, now),
                };
                let now = std::time::Instant::now();
                if now >= deadline || cancelled.load(Ordering::SeqCst) {
                    return Ok(None);
                }
                let delay = schedule.next_delay(row.as_ref(), &now_stamp, now);
                let delay = delay.min(deadline - now);
                if schedule.is_fast(now) {
                    // Reading every millisecond already: a notification would add nothing.
                    std::thread::sleep(delay);
                } else {
                    let wake = wake.get_or_insert_with(|| Wake::watch(inner.db.path()));
                    if wake.sleep(delay) {
                        schedule.changed(std::time::Instant::now());
                    }
                }
                if cancelled.load(Ordering::SeqCst) {
                    return Ok(None);
                }
                peek = true;
            }
        });
        let handoff = task
            .await
            .map_err(|e| Error::Database { message: format!("lease attempt failed: {e}") })??;
        Ok(handoff.and_then(Handoff::take))
    }

    /// Closes the connection so this process holds no file lock (required before iOS
    /// suspends the app: 0xdead10cc). Leases of this process are released first (and marked
    /// lost); until [`Coordinator::resume`] every call fails with a retryable
    /// [`Error::Database`].
    ///
    /// The pause takes effect when this future is first polled (later calls fail from
    /// then on); the release and close then run on the blocking pool. A
    /// [`Coordinator::resume`] called after that first poll always wins: if it comes before
    /// the blocking part ran, that part does nothing (leases stay held, the connection
    /// stays open).
    pub async fn pause(&self) {
        let token = self.inner.db.begin_pause();
        let inner = Arc::clone(&self.inner);
        let done = tokio::task::spawn_blocking(move || {
            inner.db.close_for_pause(token, |conn| {
                // Every lease still registered, including one whose `release` is queued
                // behind this closure (it would find the database paused): the conditional
                // UPDATE frees only rows that are still ours.
                let leases: Vec<_> = inner.live().drain().map(|(_, s)| s).collect();
                for shared in leases {
                    shared.mark_lost();
                    shared.take_release();
                    if let Err(e) = lease::release_row(conn, &shared) {
                        tracing::debug!(error = %e, "releasing a lease on pause failed; it will expire");
                    }
                }
            })
        })
        .await;
        if let Err(e) = done {
            tracing::warn!(error = %e, "pausing the coordination database failed");
        }
    }

    /// Allows the database to be used again; the next call reopens the connection. Ends
    /// every pause entered before this call, including one whose blocking part has not run
    /// yet. Does not touch persisted state.
    pub fn resume(&self) {
        self.inner.db.resume();
    }

    /// Whether the SQLite connection is open now (it is closed by `pause` and reopened on
    /// demand after `resume`). For tests and diagnostics.
    pub fn is_open(&self) -> bool {
        self.inner.db.is_open()
    }

    /// Whether [`Coordinator::pause`] is in effect.
    pub fn is_paused(&self) -> bool {
        self.inner.db.is_paused()
    }
}
