//! Tests of the lock module on real SQLite files; the cross-process ones spawn this test
//! binary again with `LATCHKEY_LOCK_CHILD` naming the child's role.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::*;
use crate::clock::{from_unix_millis, Clock, Stamp, SystemClock};
use crate::error::Error;

/// A clock the test moves by hand.
#[derive(Debug)]
struct ManualClock(AtomicI64);

impl ManualClock {
    fn at(ms: i64) -> Arc<Self> {
        Arc::new(ManualClock(AtomicI64::new(ms)))
    }
    fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        from_unix_millis(self.0.load(Ordering::SeqCst))
    }
}

fn config(lease_ms: u64, renew_ms: u64) -> CoordinatorConfig {
    CoordinatorConfig {
        lease: Duration::from_millis(lease_ms),
        renew_every: Duration::from_millis(renew_ms),
        ..CoordinatorConfig::default()
    }
}

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("coordination.sqlite")
}

fn open(path: &Path, config: CoordinatorConfig) -> Coordinator {
    Coordinator::open(path, config, Arc::new(SystemClock)).unwrap()
}

fn open_with_clock(path: &Path, config: CoordinatorConfig, clock: Arc<ManualClock>) -> Coordinator {
    Coordinator::open(path, config, clock).unwrap()
}

async fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = tokio::time::Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}

// ---------------------------------------------------------------------------------------
// Lease basics
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn fence_grows_on_every_acquisition_across_holders_and_coordinators() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let a = open(&path, CoordinatorConfig::default());
    let b = open(&path, CoordinatorConfig::default());
    let mut fences = Vec::new();
    for (c, holder) in [(&a, "h1"), (&a, "h2"), (&b, "h3"), (&a, "h1"), (&b, "h1")] {
        let lease = c.acquire(ACC, holder).await.unwrap();
        fences.push(lease.fence());
        lease.release().await.unwrap();
    }
    let lease = a.try_acquire(ACC, "h4").await.unwrap().unwrap();
    fences.push(lease.fence());
    drop(lease); // released by the drop, asynchronously
    let lease = b.acquire_within(ACC, "h5", Duration::from_secs(2)).await.unwrap();
    fences.push(lease.fence());
    assert_eq!(fences, vec![1, 2, 3, 4, 5, 6, 7]);
    // Same holder taking its own row back (restarted process) still bumps the fence.
    let again = a.acquire_within(ACC, "h5", Duration::from_secs(2)).await.unwrap();
    assert_eq!(again.fence(), 8);
    assert!(wait_until(Duration::from_secs(5), || lease.is_lost()).await, "old lease not lost");
    again.release().await.unwrap();
}

const ACC: &str = "alice@example";

#[tokio::test]
async fn held_lease_excludes_others_and_acquire_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let a = open(&path, CoordinatorConfig::default());
    let b = open(&path, CoordinatorConfig::default());
    let lease = a.acquire(ACC, "proc-a").await.unwrap();
    assert!(b.try_acquire(ACC, "proc-b").await.unwrap().is_none());
    let e = b.acquire_within(ACC, "proc-b", Duration::from_millis(100)).await.unwrap_err();
    assert_eq!(e, Error::LockTimeout);
    // Not re-entrant inside one coordinator, whatever the holder name.
    assert!(a.try_acquire(ACC, "proc-a").await.unwrap().is_none());
    let e = a.acquire_within(ACC, "proc-a", Duration::from_millis(50)).await.unwrap_err();
    assert_eq!(e, Error::LockTimeout);
    lease.release().await.unwrap();
    assert!(b.try_acquire(ACC, "proc-b").await.unwrap().is_some());
}

#[tokio::test]
async fn freed_or_expired_in_the_current_millisecond_is_acquirable() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let clock = ManualClock::at(1_000_000);
    let cfg = config(3_000, 3_600_000);
    let a = open_with_clock(&path, cfg.clone(), clock.clone());
    let b = open_with_clock(&path, cfg, clock.clone());

    // Released at T, re-acquired at the same T.
    let lease = a.acquire(ACC, "a").await.unwrap();
    lease.release().await.unwrap();
    let lease = b.try_acquire(ACC, "b").await.unwrap().expect("freed row is free at once");
    // Expires at exactly T + lease: taken one millisecond before, free at that millisecond.
    clock.set(1_000_000 + 2_999);
    assert!(a.try_acquire(ACC, "a").await.unwrap().is_none());
    clock.set(1_000_000 + 3_000);
    let taken = a.try_acquire(ACC, "a").await.unwrap().expect("expired at now");
    assert_eq!(taken.fence(), lease.fence() + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_wakes_a_waiter_of_the_same_process() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(&db_path(&dir), config(30_000, 10_000));
    let lease = a.acquire(ACC, "t1").await.unwrap();
    let a2 = a.clone();
    let waiter = tokio::spawn(async move {
        let l = a2.acquire_within(ACC, "t2", Duration::from_secs(20)).await.unwrap();
        (tokio::time::Instant::now(), l.fence())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished());
    let released = tokio::time::Instant::now();
    lease.release().await.unwrap();
    let (acquired, fence) = waiter.await.unwrap();
    assert_eq!(fence, 2);
    // Woken by the release, not by the 30 s expiry (bound generous for loaded CI).
    assert!(acquired.duration_since(released) < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_is_seen_promptly_by_a_waiter_of_another_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let a = open(&path, config(30_000, 10_000));
    let b = open(&path, config(30_000, 10_000));
    let lease = a.acquire(ACC, "a").await.unwrap();
    let waiter = tokio::spawn(async move {
        let l = b.acquire_within(ACC, "b", Duration::from_secs(20)).await.unwrap();
        (tokio::time::Instant::now(), l.fence())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let released = tokio::time::Instant::now();
    lease.release().await.unwrap();
    let (acquired, fence) = waiter.await.unwrap();
    assert_eq!(fence, 2);
    assert!(acquired.duration_since(released) < Duration::from_secs(5));
}

#[tokio::test]
async fn dropped_lease_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let a = open(&path, config(30_000, 10_000));
    let b = open(&path, config(30_000, 10_000));
    let lease = a.acquire(ACC, "a").await.unwrap();
    drop(lease);
    let start = tokio::time::Instant::now();
    b.acquire_within(ACC, "b", Duration::from_secs(10)).await.unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn lease_dropped_outside_a_runtime_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let a = open(&path, config(30_000, 10_000));
    let lease = rt.block_on(a.acquire(ACC, "a")).unwrap();
    drop(lease); // no runtime entered here: released synchronously
    let b = open(&path, config(30_000, 10_000));
    assert!(rt.block_on(b.try_acquire(ACC, "b")).unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_acquires_never_leave_the_row_held() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let a = open(&path, config(30_000, 10_000));
    let b = open(&path, config(30_000, 10_000));
    for i in 0..40u64 {
        let held = a.acquire(ACC, "a").await.unwrap();
        let b2 = b.clone();
        let task = tokio::spawn(async move { b2.acquire(ACC, "b").await });
        tokio::time::sleep(Duration::from_micros(200 * (i % 7))).await;
        held.release().await.unwrap();
        tokio::time::sleep(Duration::from_micros(300 * (i % 5))).await;
        task.abort();
        let _ = task.await; // a lease that was handed over is dropped here, and released
    }
    // Every orphan was given back: the row is free long before the 30 s lease.
    let lease = a.acquire_within(ACC, "a", Duration::from_secs(5)).await.unwrap();
    lease.release().await.unwrap();
}

// ---------------------------------------------------------------------------------------
// Expiry and renewal
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_not_renewed_lapses_after_the_lease_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    // Renewal far beyond the lease: it never runs.
    let a = open(&path, config(300, 3_600_000));
    let b = open(&path, config(300, 3_600_000));
    let stale = a.acquire(ACC, "a").await.unwrap();
    let start = tokio::time::Instant::now();
    let lease = b.acquire_within(ACC, "b", Duration::from_secs(5)).await.unwrap();
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(200), "taken before expiry: {waited:?}");
    assert!(waited <= Duration::from_millis(300 + 1_000), "expiry too slow: {waited:?}");
    assert_eq!(lease.fence(), stale.fence() + 1);
    // The stale holder can no longer journal, and learns it lost the lease.
    assert!(matches!(stale.journal_begin(1).await, Err(crate::Error::LeaseLost { .. })));
    assert!(stale.is_lost());
    // Its release leaves the new holder's row alone.
    stale.release().await.unwrap();
    assert!(a.try_acquire(ACC, "a2").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_keeps_the_lease_past_the_lease_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let a = open(&path, config(300, 100));
    let b = open(&path, config(300, 100));
    let lease = a.acquire(ACC, "a").await.unwrap();
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(b.try_acquire(ACC, "b").await.unwrap().is_none());
    }
    assert!(!lease.is_lost());
    lease.journal_begin(1).await.unwrap();
    lease.release().await.unwrap();
    assert!(b.try_acquire(ACC, "b").await.unwrap().is_some());
}

/// A holder stuck past `max_hold` (a hung callback while it holds the lease) is no longer
/// renewed: the lease lapses for the others, and the stuck holder's next fenced write fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_held_past_max_hold_lapses_for_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let stuck_config =
        CoordinatorConfig { max_hold: Duration::from_millis(400), ..config(300, 50) };
    let a = open(&path, stuck_config);
    let b = open(&path, config(300, 50));
    let lease = a.acquire(ACC, "a").await.unwrap();
    // Renewed while younger than max_hold.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(b.try_acquire(ACC, "b").await.unwrap().is_none());
    // Then it lapses: the other process gets it.
    let mut got = None;
    for _ in 0..60 {
        if let Some(l) = b.try_acquire(ACC, "b").await.unwrap() {
            got = Some(l);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(got.is_some(), "the stuck lease never lapsed");
    let err = lease.confirm().await.unwrap_err();
    assert!(matches!(err, Error::LeaseLost { .. }), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_marks_the_lease_lost_when_another_holder_took_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let clock = ManualClock::at(5_000_000);
    let a = open_with_clock(&path, config(1_000, 200), clock.clone());
    let b = open_with_clock(&path, config(1_000, 200), clock.clone());
    let old = a.acquire(ACC, "a").await.unwrap();
    // "a" is frozen past its lease (the clock jumps), "b" takes the expired row.
    clock.set(5_000_000 + 5_000);
    let new = b.try_acquire(ACC, "b").await.unwrap().expect("expired lease is free");
    assert_eq!(new.fence(), old.fence() + 1);
    assert!(wait_until(Duration::from_secs(5), || old.is_lost()).await, "renewal did not notice");
    // The new holder is unaffected.
    assert!(!new.is_lost());
    old.release().await.unwrap();
    assert!(a.try_acquire(ACC, "a").await.unwrap().is_none());
    new.journal_begin(1).await.unwrap();
}

// ---------------------------------------------------------------------------------------
// Mutual exclusion
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_on_two_coordinators_never_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let coordinators = [open(&path, config(5_000, 1_000)), open(&path, config(5_000, 1_000))];
    let counter = Arc::new(AtomicU64::new(0));
    let fences = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let c = coordinators[t % 2].clone();
        let (counter, fences) = (counter.clone(), fences.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..15 {
                let lease = c
                    .acquire_within(ACC, &format!("task-{t}"), Duration::from_secs(30))
                    .await
                    .unwrap();
                // A read-modify-write with a yield in the middle: loses updates unless
                // the lease excludes every other task.
                let v = counter.load(Ordering::SeqCst);
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_micros(200)).await;
                counter.store(v + 1, Ordering::SeqCst);
                fences.lock().unwrap().push(lease.fence());
                lease.release().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(counter.load(Ordering::SeqCst), 8 * 15);
    let fences = fences.lock().unwrap().clone();
    assert!(fences.windows(2).all(|w| w[0] < w[1]), "fences not increasing: {fences:?}");
}

const CHILD_ENV: &str = "LATCHKEY_LOCK_CHILD";

/// Entry point of child processes (does nothing in a normal test run).
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var(CHILD_ENV) else { return };
    let var = |k: &str| std::env::var(k).unwrap();
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let path = PathBuf::from(var("LK_DB"));
    match role.as_str() {
        "counter" => rt.block_on(async {
            let c = open(&path, config(5_000, 1_000));
            let file = PathBuf::from(var("LK_COUNTER"));
            let iterations: u64 = var("LK_ITER").parse().unwrap();
            let holder = format!("child-{}", std::process::id());
            for _ in 0..iterations {
                let lease = c.acquire_within(ACC, &holder, Duration::from_secs(60)).await.unwrap();
                increment_counter_file(&file, lease.fence());
                lease.release().await.unwrap();
            }
            println!("CHILD:done");
        }),
        "hold" => rt.block_on(async {
            let c = open(&path, config(var("LK_LEASE_MS").parse().unwrap(), 300));
            let lease = c.acquire(ACC, &format!("child-{}", std::process::id())).await.unwrap();
            println!("CHILD:acquired {}", lease.fence());
            std::io::stdout().flush().unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await; // killed by the parent long before
        }),
        other => panic!("unknown child role {other}"),
    }
    std::io::stdout().flush().unwrap();
    std::process::exit(0);
}

/// Read-modify-write of a counter file, plus one line per holder in a log, with a sleep in
/// the middle to widen the window a missing exclusion would need.
fn increment_counter_file(file: &Path, fence: u64) {
    let v: u64 =
        std::fs::read_to_string(file).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    std::thread::sleep(Duration::from_micros(300));
    std::fs::write(file, format!("{}\n", v + 1)).unwrap();
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file.with_extension("log"))
        .unwrap();
    writeln!(log, "{fence}").unwrap();
}

/// Kills the child if the test fails before waiting for it.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn_child(role: &str, envs: &[(&str, String)]) -> Child {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", "lock::tests::child_process_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, role)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Reads the child's stdout until a line starting with `CHILD:prefix`; returns its rest.
fn wait_for_line(child: &mut Child, prefix: &str) -> String {
    let stdout = child.stdout.as_mut().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "child exited before `{prefix}`");
        // The harness prints "test NAME ... " without a newline before the child's output.
        let marker = format!("CHILD:{prefix}");
        if let Some(at) = line.find(&marker) {
            return line[at + marker.len()..].trim().to_owned();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_and_tasks_incrementing_a_file_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let counter = dir.path().join("counter.txt");
    let c = open(&path, config(5_000, 1_000)); // creates the schema before the children start
    const CHILDREN: u64 = 3;
    const ITER: u64 = 20;
    let envs = [
        ("LK_DB", path.display().to_string()),
        ("LK_COUNTER", counter.display().to_string()),
        ("LK_ITER", ITER.to_string()),
    ];
    let children: Vec<KillOnDrop> =
        (0..CHILDREN).map(|_| KillOnDrop(Some(spawn_child("counter", &envs)))).collect();
    let mut tasks = Vec::new();
    for t in 0..2 {
        let (c, counter) = (c.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..ITER {
                let lease = c
                    .acquire_within(ACC, &format!("parent-{t}"), Duration::from_secs(60))
                    .await
                    .unwrap();
                let fence = lease.fence();
                let counter = counter.clone();
                tokio::task::spawn_blocking(move || increment_counter_file(&counter, fence))
                    .await
                    .unwrap();
                lease.release().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for mut guard in children {
        let out = tokio::task::spawn_blocking(move || {
            let mut child = guard.0.take().unwrap();
            let line = wait_for_line(&mut child, "done");
            (line, child.wait().unwrap())
        })
        .await
        .unwrap();
        assert!(out.1.success(), "child failed: {:?}", out.1);
    }
    let total: u64 = std::fs::read_to_string(&counter).unwrap().trim().parse().unwrap();
    assert_eq!(total, (CHILDREN + 2) * ITER, "lost updates");
    let log = std::fs::read_to_string(counter.with_extension("log")).unwrap();
    let fences: Vec<u64> = log.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(fences.len() as u64, (CHILDREN + 2) * ITER);
    assert!(fences.windows(2).all(|w| w[0] < w[1]), "fences not increasing in write order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_holder_blocks_others_for_at_most_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let lease_ms = 1_000u64;
    let c = open(&path, config(lease_ms, 300));
    let child = spawn_child(
        "hold",
        &[("LK_DB", path.display().to_string()), ("LK_LEASE_MS", lease_ms.to_string())],
    );
    let mut guard = KillOnDrop(Some(child));
    let (fence, mut guard) = tokio::task::spawn_blocking(move || {
        let child = guard.0.as_mut().unwrap();
        let fence: u64 = wait_for_line(child, "acquired").parse().unwrap();
        (fence, guard)
    })
    .await
    .unwrap();
    let mut child = guard.0.take().unwrap();
    // Renewed by the child: still held after more than one lease time.
    tokio::time::sleep(Duration::from_millis(lease_ms + 500)).await;
    assert!(c.try_acquire(ACC, "parent").await.unwrap().is_none());
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed = tokio::time::Instant::now();
    let lease = c.acquire_within(ACC, "parent", Duration::from_secs(10)).await.unwrap();
    let blocked = killed.elapsed();
    assert!(blocked <= Duration::from_millis(lease_ms + 1_000), "blocked {blocked:?}");
    assert!(lease.fence() > fence);
}

// ---------------------------------------------------------------------------------------
// Generations
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn commit_is_a_compare_and_swap_that_never_goes_back() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(&db_path(&dir), CoordinatorConfig::default());
    assert_eq!(c.generation(ACC).await.unwrap(), None);
    assert!(c.commit(ACC, None, 1, "h1").await.unwrap());
    assert!(!c.commit(ACC, None, 2, "x").await.unwrap(), "row exists: None is stale");
    assert!(c.commit(ACC, Some(1), 2, "h2").await.unwrap());
    assert!(!c.commit(ACC, Some(1), 3, "stale").await.unwrap(), "stale expected");
    // Older or equal generations are refused outright.
    assert!(matches!(c.commit(ACC, Some(2), 2, "x").await, Err(Error::Config { .. })));
    assert!(matches!(c.commit(ACC, Some(2), 1, "x").await, Err(Error::Config { .. })));
    let rec = c.generation(ACC).await.unwrap().unwrap();
    assert_eq!(
        (rec.generation, rec.token_hash.as_deref(), rec.state),
        (2, Some("h2"), SessionState::Active)
    );
    // An ended session cannot be committed over.
    assert_eq!(c.end(ACC, SessionState::LoggedOut).await.unwrap(), 3);
    assert!(!c.commit(ACC, Some(3), 4, "x").await.unwrap());
    // Commit does not need the lease: a lapsed holder with the newest tokens still wins.
    assert!(c.commit("bob", None, 7, "b7").await.unwrap());
    assert!(c.commit("bob", Some(7), 8, "b8").await.unwrap());
}

#[tokio::test]
async fn register_and_end_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(&db_path(&dir), CoordinatorConfig::default());
    let rec = c.register(ACC, 5, "a").await.unwrap();
    assert_eq!(
        (rec.generation, rec.token_hash.as_deref(), rec.state),
        (5, Some("a"), SessionState::Active)
    );
    // Older or equal: nothing changes, the newer record is returned.
    let rec = c.register(ACC, 3, "b").await.unwrap();
    assert_eq!((rec.generation, rec.token_hash.as_deref()), (5, Some("a")));
    let rec = c.register(ACC, 5, "b").await.unwrap();
    assert_eq!(rec.token_hash.as_deref(), Some("a"));
    let rec = c.register(ACC, 7, "c").await.unwrap();
    assert_eq!((rec.generation, rec.token_hash.as_deref()), (7, Some("c")));
    // End: generation + 1, hash cleared, state for everyone.
    assert_eq!(c.end(ACC, SessionState::ReauthRequired).await.unwrap(), 8);
    let rec = c.generation(ACC).await.unwrap().unwrap();
    assert_eq!(
        (rec.generation, rec.token_hash, rec.state),
        (8, None, SessionState::ReauthRequired)
    );
    assert_eq!(c.end(ACC, SessionState::LoggedOut).await.unwrap(), 9);
    // A new sign-in after an end never lands below the ended generation.
    let rec = c.register(ACC, 2, "d").await.unwrap();
    assert_eq!(
        (rec.generation, rec.token_hash.as_deref(), rec.state),
        (10, Some("d"), SessionState::Active)
    );
    let rec = c.register(ACC, 11, "e").await.unwrap();
    assert_eq!(rec.generation, 11);
    assert!(c.commit(ACC, Some(11), 12, "f").await.unwrap());
    assert!(matches!(c.end(ACC, SessionState::Active).await, Err(Error::Config { .. })));
    assert_eq!(c.end("nobody", SessionState::LoggedOut).await.unwrap(), 1);
    assert_eq!(c.generation("nobody").await.unwrap().unwrap().state, SessionState::LoggedOut);
}

// ---------------------------------------------------------------------------------------
// Journal
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn journal_begin_phase_clear() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(&db_path(&dir), CoordinatorConfig::default());
    let lease = c.acquire(ACC, "a").await.unwrap();
    assert_eq!(c.journal(ACC).await.unwrap(), None);
    assert!(lease.journal_phase(JournalPhase::Saving, None).await.is_err(), "no entry yet");
    lease.journal_begin(4).await.unwrap();
    let e = c.journal(ACC).await.unwrap().unwrap();
    assert_eq!((e.holder.as_str(), e.fence, e.from_generation), ("a", lease.fence(), 4));
    assert_eq!((e.phase, e.new_token_hash), (JournalPhase::RequestSent, None));
    lease.journal_phase(JournalPhase::Answered, Some("newhash")).await.unwrap();
    lease.journal_phase(JournalPhase::Saving, None).await.unwrap();
    let e = c.journal(ACC).await.unwrap().unwrap();
    assert_eq!((e.phase, e.new_token_hash.as_deref()), (JournalPhase::Saving, Some("newhash")));
    assert!(e.updated_at_ms >= e.started_at_ms);
    lease.journal_clear().await.unwrap();
    assert_eq!(c.journal(ACC).await.unwrap(), None);
    lease.journal_clear().await.unwrap(); // nothing to clear: fine
    lease.release().await.unwrap();
}

#[test]
fn a_take_never_waits_in_the_busy_handler_and_keeps_the_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    drop(open(&path, CoordinatorConfig::default())); // creates the schema
    let taker = rusqlite::Connection::open(&path).unwrap();
    let writer = rusqlite::Connection::open(&path).unwrap();
    let busy = Duration::from_secs(30);
    taker.busy_timeout(busy).unwrap();
    let now = Stamp { wall_ms: 1_000, boot: None };
    let expires = now.after_millis(3_000);
    // Another connection is in the middle of a write (a releaser finishing its commit):
    // "not now", at once, instead of SQLite's busy sleeps up to the 30 s timeout or an error.
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    let t = std::time::Instant::now();
    assert_eq!(lease::try_take(&taker, ACC, "w", &now, &expires, busy).unwrap(), None);
    assert!(t.elapsed() < Duration::from_secs(10), "waited {:?}", t.elapsed());
    writer.execute_batch("COMMIT").unwrap();
    assert_eq!(lease::try_take(&taker, ACC, "w", &now, &expires, busy).unwrap(), Some(1));
    let restored: i64 = taker.query_row("PRAGMA busy_timeout", [], |r| r.get(0)).unwrap();
    assert_eq!(restored, 30_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_reads_the_phase_of_the_current_holder_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let clock = ManualClock::at(5_000_000);
    let a = open_with_clock(&path, config(1_000, 3_600_000), clock.clone());
    let b = open_with_clock(&path, config(1_000, 3_600_000), clock.clone());
    let reader = rusqlite::Connection::open(&path).unwrap();
    let phase = || lease::peek(&reader, ACC).unwrap().unwrap().phase;
    let first = a.acquire(ACC, "a").await.unwrap();
    assert_eq!(phase(), None, "a bare hold says nothing");
    first.journal_begin(1).await.unwrap();
    assert_eq!(phase(), Some(JournalPhase::RequestSent));
    first.journal_phase(JournalPhase::Answered, Some("h")).await.unwrap();
    assert_eq!(phase(), Some(JournalPhase::Answered));
    // The holder freezes; its lease expires and another holder takes the row: the entry
    // left under the old fence is not the new holder's phase.
    clock.set(5_000_000 + 10_000);
    let second = b.acquire(ACC, "b").await.unwrap();
    assert_eq!(phase(), None);
    second.journal_begin(2).await.unwrap();
    assert_eq!(phase(), Some(JournalPhase::RequestSent));
    second.journal_clear().await.unwrap();
    assert_eq!(phase(), None);
    second.release().await.unwrap();
    let row = lease::peek(&reader, ACC).unwrap().unwrap();
    assert_eq!((row.holder, row.phase), (None, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_holder_sees_and_replaces_a_stale_journal_the_stale_holder_cannot_touch_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let clock = ManualClock::at(9_000_000);
    let a = open_with_clock(&path, config(1_000, 3_600_000), clock.clone());
    let b = open_with_clock(&path, config(1_000, 3_600_000), clock.clone());
    let old = a.acquire(ACC, "a").await.unwrap();
    old.journal_begin(1).await.unwrap();
    // "a" freezes mid-request; its lease expires; "b" takes over and reads the journal.
    clock.set(9_000_000 + 10_000);
    let new = b.acquire(ACC, "b").await.unwrap();
    let stale = b.journal(ACC).await.unwrap().unwrap();
    assert_eq!((stale.fence, stale.phase), (old.fence(), JournalPhase::RequestSent));
    new.journal_begin(1).await.unwrap();
    // The stale holder wakes up: it can neither advance nor clear the new entry.
    assert!(old.journal_phase(JournalPhase::Answered, Some("x")).await.is_err());
    assert!(old.is_lost());
    assert!(old.journal_begin(1).await.is_err());
    old.journal_clear().await.unwrap();
    assert_eq!(b.journal(ACC).await.unwrap().unwrap().fence, new.fence());
    new.journal_clear().await.unwrap();
    assert_eq!(b.journal(ACC).await.unwrap(), None);
}

#[tokio::test]
async fn current_holder_may_clear_an_older_entry_a_lost_holder_only_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let clock = ManualClock::at(1_000);
    let a = open_with_clock(&path, config(1_000, 3_600_000), clock.clone());
    let b = open_with_clock(&path, config(1_000, 3_600_000), clock.clone());
    let first = a.acquire(ACC, "a").await.unwrap();
    first.journal_begin(3).await.unwrap();
    drop(first); // the holder dies without clearing (its release still frees the row)
    let second = b.acquire(ACC, "b").await.unwrap();
    // Settled (e.g. generation 4 is committed): the current holder clears the old entry.
    second.journal_clear().await.unwrap();
    assert_eq!(b.journal(ACC).await.unwrap(), None);
    second.journal_begin(4).await.unwrap();
    // Lost to a third holder before clearing: "second" may still clear its own entry.
    clock.set(1_000 + 5_000);
    let third = a.acquire(ACC, "c").await.unwrap();
    assert!(third.fence() > second.fence());
    second.journal_clear().await.unwrap();
    assert_eq!(b.journal(ACC).await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------
// Accounts, pause/resume, file
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn accounts_are_independent() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(&db_path(&dir), CoordinatorConfig::default());
    let la = c.acquire("a", "p").await.unwrap();
    let lb = c.try_acquire("b", "p").await.unwrap().expect("other account is free");
    assert_eq!((la.fence(), lb.fence()), (1, 1));
    la.journal_begin(1).await.unwrap();
    assert_eq!(c.journal("b").await.unwrap(), None);
    assert!(c.commit("a", None, 1, "x").await.unwrap());
    assert_eq!(c.generation("b").await.unwrap(), None);
    c.end("b", SessionState::LoggedOut).await.unwrap();
    assert_eq!(c.generation("a").await.unwrap().unwrap().state, SessionState::Active);
    la.release().await.unwrap();
    assert_eq!(lb.account(), "b");
    lb.release().await.unwrap();
}

#[cfg(target_os = "linux")]
fn open_fds_to(prefix: &Path) -> Vec<PathBuf> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|p| p.to_string_lossy().starts_with(&*prefix.to_string_lossy()))
        .collect()
}

#[tokio::test]
async fn pause_releases_leases_and_closes_every_handle_resume_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let a = open(&path, config(30_000, 10_000));
    let b = open(&path, config(30_000, 10_000));
    let lease = a.acquire(ACC, "a").await.unwrap();
    assert!(a.is_open());
    a.pause().await;
    assert!(!a.is_open() && a.is_paused());
    assert!(lease.is_lost());
    #[cfg(target_os = "linux")]
    {
        // b still has the file open; compare with a fresh directory view of a's handles by
        // closing b first.
        b.pause().await;
        assert_eq!(open_fds_to(&path), Vec::<PathBuf>::new(), "file handles left open");
        b.resume();
    }
    // Released by the pause: free at once, not after 30 s.
    let taken = b.try_acquire(ACC, "b").await.unwrap().expect("released by pause");
    // Calls fail (retryably) while paused and do not reopen the file.
    let e = a.generation(ACC).await.unwrap_err();
    assert!(matches!(e, Error::Database { .. }) && e.is_retryable());
    assert!(a.acquire_within(ACC, "a", Duration::from_millis(50)).await.is_err());
    assert!(!a.is_open());
    lease.release().await.unwrap(); // no-op
    a.resume();
    assert!(!a.is_paused());
    assert_eq!(a.generation(ACC).await.unwrap(), None);
    assert!(a.is_open());
    taken.release().await.unwrap();
    a.acquire(ACC, "a").await.unwrap().release().await.unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn database_files_are_private_and_versioned() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let c = open(&path, CoordinatorConfig::default());
    c.acquire(ACC, "a").await.unwrap().release().await.unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    for suffix in ["-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", path.display()));
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{suffix}");
        }
    }
    let raw = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = raw.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, super::db::SCHEMA_VERSION);
    let mode_name: String = raw.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode_name, "wal");
    // No token-looking column anywhere: only hashes.
    let cols: Vec<String> = raw
        .prepare("SELECT name FROM pragma_table_info('generation') UNION ALL SELECT name FROM pragma_table_info('journal')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(cols.iter().all(|c| !c.contains("token") || c.ends_with("hash")), "{cols:?}");
    drop(raw);
    // Reopening an existing file is fine.
    drop(c);
    let c = open(&path, CoordinatorConfig::default());
    assert_eq!(c.path(), path.as_path());
}

#[test]
fn renewal_survives_a_coordinator_moving_to_another_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let a = open(&path, config(300, 100));
    let b = open(&path, config(300, 100));
    let first = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    first.block_on(async {
        let lease = a.acquire(ACC, "a").await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        lease.release().await.unwrap();
        // Held again while the runtime (and the renewer task on it) goes away.
        std::mem::forget(a.acquire("other", "a").await.unwrap());
    });
    drop(first);
    let second = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    second.block_on(async {
        let lease = a.acquire(ACC, "a").await.unwrap();
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(b.try_acquire(ACC, "b").await.unwrap().is_none(), "not renewed");
        }
        assert!(!lease.is_lost());
        lease.release().await.unwrap();
    });
}

/// `resume()` called after `pause()` was entered wins, even when the blocking part of the
/// pause runs later (here: the only blocking thread is busy until after `resume`).
#[test]
fn resume_after_an_entered_pause_wins_over_its_late_blocking_part() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(1)
        .build()
        .unwrap();
    rt.block_on(async {
        let a = open(&path, config(30_000, 10_000));
        let b = open(&path, config(30_000, 10_000));
        let held = a.acquire(ACC, "a").await.unwrap();
        // Occupy the single blocking thread so the pause's blocking part is queued.
        let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
        let busy = tokio::task::spawn_blocking(move || gate_rx.recv().ok());
        let mut pause = Box::pin(a.pause());
        assert!(futures::poll!(pause.as_mut()).is_pending());
        assert!(a.is_paused(), "pause takes effect when it is entered");
        a.resume();
        gate_tx.send(()).unwrap();
        busy.await.unwrap();
        pause.await;
        assert!(!a.is_paused(), "a resume after the pause was entered must win");
        assert_eq!(a.generation(ACC).await.unwrap(), None);
        // The pause was overtaken: the lease held before it is kept, not released.
        assert!(!held.is_lost());
        assert!(b.try_acquire(ACC, "b").await.unwrap().is_none());
        held.release().await.unwrap();
        a.acquire(ACC, "a").await.unwrap().release().await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------
// Boot clock (docs/adr/0005-clock.md)
// ---------------------------------------------------------------------------------------

/// A clock with a boot clock, both moved by hand.
#[derive(Debug)]
struct BootClock {
    wall: AtomicI64,
    boot_id: Mutex<String>,
    boot_ms: AtomicI64,
}

impl BootClock {
    fn at(wall: i64, boot_id: &str, boot_ms: i64) -> Arc<Self> {
        Arc::new(BootClock {
            wall: AtomicI64::new(wall),
            boot_id: Mutex::new(boot_id.into()),
            boot_ms: AtomicI64::new(boot_ms),
        })
    }
    /// Both clocks move on by `ms`.
    fn advance(&self, ms: i64) {
        self.wall.fetch_add(ms, Ordering::SeqCst);
        self.boot_ms.fetch_add(ms, Ordering::SeqCst);
    }
    /// Only the wall clock moves (the time was set).
    fn jump_wall(&self, ms: i64) {
        self.wall.fetch_add(ms, Ordering::SeqCst);
    }
    /// A reboot: new boot id, boot clock restarts.
    fn reboot(&self, boot_id: &str, boot_ms: i64) {
        *self.boot_id.lock().unwrap() = boot_id.into();
        self.boot_ms.store(boot_ms, Ordering::SeqCst);
    }
}

impl Clock for BootClock {
    fn now(&self) -> SystemTime {
        from_unix_millis(self.wall.load(Ordering::SeqCst))
    }
    fn boot(&self) -> Option<crate::clock::BootInstant> {
        Some(crate::clock::BootInstant {
            boot_id: self.boot_id.lock().unwrap().clone(),
            millis: self.boot_ms.load(Ordering::SeqCst),
        })
    }
}

const HOUR_MS: i64 = 3_600_000;

#[tokio::test]
async fn a_live_lease_survives_a_forward_wall_jump_and_still_expires_by_the_boot_clock() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let clock = BootClock::at(1_000_000, "boot-1", 50_000);
    // Renewal off (1 h) so only the acquisition's expiry counts.
    let cfg = config(3_000, 3_600_000);
    let a = Coordinator::open(&path, cfg.clone(), clock.clone()).unwrap();
    let b = Coordinator::open(&path, cfg, clock.clone()).unwrap();
    let lease = a.acquire(ACC, "a").await.unwrap();
    clock.jump_wall(HOUR_MS);
    assert!(b.try_acquire(ACC, "b").await.unwrap().is_none(), "taken after a wall jump");
    assert!(b.acquire_within(ACC, "b", Duration::from_millis(30)).await.is_err());
    // A backward jump does not stretch it either.
    clock.jump_wall(-2 * HOUR_MS);
    clock.advance(2_999);
    assert!(b.try_acquire(ACC, "b").await.unwrap().is_none(), "expired early");
    clock.advance(1);
    let taken = b.try_acquire(ACC, "b").await.unwrap().expect("expired by the boot clock");
    assert_eq!(taken.fence(), lease.fence() + 1);
    // Journal writes of the lost holder fail; the taker's renewals write both clocks.
    assert!(matches!(lease.journal_begin(0).await, Err(Error::LeaseLost { .. })));
    taken.journal_begin(0).await.unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    let (boot_id, boot_exp, boot_fence, fence): (String, i64, i64, i64) = raw
        .query_row(
            "SELECT boot_id, boot_expires_ms, boot_fence, fence FROM lease WHERE account = ?1",
            [ACC],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!((boot_id.as_str(), boot_exp, boot_fence), ("boot-1", 50_000 + 3_000 + 3_000, fence));
}

#[tokio::test]
async fn a_lease_of_another_boot_is_acquirable_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let before = BootClock::at(1_000_000, "boot-1", 90_000);
    let cfg = config(HOUR_MS as u64, 3_600_000);
    let a = Coordinator::open(&path, cfg.clone(), before.clone()).unwrap();
    let lease = a.acquire(ACC, "a").await.unwrap();
    std::mem::forget(lease); // the holder "dies" with the boot: never released
                             // After the reboot: a boot clock restarted near zero, a wall clock barely moved (an
                             // hour-long lease is nowhere near its wall expiry).
    let after = BootClock::at(1_000_500, "boot-2", 10);
    let b = Coordinator::open(&path, cfg.clone(), after.clone()).unwrap();
    let taken = b.try_acquire(ACC, "b").await.unwrap().expect("a lease of another boot is dead");
    // In the same boot, the same hour-long lease is respected.
    let c = Coordinator::open(&path, cfg.clone(), after.clone()).unwrap();
    assert!(c.try_acquire(ACC, "c").await.unwrap().is_none());
    taken.journal_begin(3).await.unwrap();
    let entry = c.journal(ACC).await.unwrap().unwrap();
    assert_eq!(entry.boot_id.as_deref(), Some("boot-2"));
    assert_eq!(entry.started_boot_ms, Some(10));
    after.advance(250);
    after.jump_wall(-HOUR_MS);
    assert_eq!(entry.age(&c.now_stamp()), Some(Duration::from_millis(250)));
    // Seen from a later boot the entry has no age (older than that boot).
    after.reboot("boot-3", 5);
    assert_eq!(entry.age(&c.now_stamp()), None);
    // A reader that does not know its boot compares wall clocks (the hour-long lease of
    // boot-2 is not over by the wall clock).
    let wall_only = ManualClock::at(1_000_500 + 1_000);
    let d = open_with_clock(&path, cfg, wall_only);
    assert!(d.try_acquire(ACC, "d").await.unwrap().is_none());
}

/// Builds a version-1 database file as the previous release wrote it.
fn write_v1_file(path: &Path, lease_expires_ms: i64, journal_started_ms: i64) {
    let raw = rusqlite::Connection::open(path).unwrap();
    raw.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE lease (account TEXT PRIMARY KEY NOT NULL, holder TEXT,
             fence INTEGER NOT NULL, expires_at_ms INTEGER NOT NULL);
         CREATE TABLE generation (account TEXT PRIMARY KEY NOT NULL,
             generation INTEGER NOT NULL, token_hash TEXT, state TEXT NOT NULL,
             updated_at_ms INTEGER NOT NULL);
         CREATE TABLE journal (account TEXT PRIMARY KEY NOT NULL, holder TEXT NOT NULL,
             fence INTEGER NOT NULL, from_generation INTEGER NOT NULL, phase TEXT NOT NULL,
             new_token_hash TEXT, started_at_ms INTEGER NOT NULL,
             updated_at_ms INTEGER NOT NULL);
         PRAGMA user_version = 1;",
    )
    .unwrap();
    raw.execute(
        "INSERT INTO lease VALUES (?1, 'old-release', 7, ?2)",
        rusqlite::params![ACC, lease_expires_ms],
    )
    .unwrap();
    raw.execute("INSERT INTO generation VALUES (?1, 4, 'h4', 'active', 1)", rusqlite::params![ACC])
        .unwrap();
    raw.execute(
        "INSERT INTO journal VALUES (?1, 'old-release', 7, 4, 'request_sent', NULL, ?2, ?2)",
        rusqlite::params![ACC, journal_started_ms],
    )
    .unwrap();
}

#[tokio::test]
async fn a_v1_database_is_migrated_and_its_rows_are_judged_by_the_wall_clock() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    write_v1_file(&path, 1_003_000, 999_000);
    let clock = BootClock::at(1_000_000, "boot-1", 40_000);
    let a = Coordinator::open(&path, config(3_000, 3_600_000), clock.clone()).unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = raw.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 2);
    // Old rows survive.
    assert_eq!(a.generation(ACC).await.unwrap().unwrap().generation, 4);
    let entry = a.journal(ACC).await.unwrap().unwrap();
    assert_eq!((entry.fence, entry.boot_id.clone(), entry.started_boot_ms), (7, None, None));
    // A v1 entry has no boot stamp: its age is the wall clock's.
    assert_eq!(entry.age(&a.now_stamp()), Some(Duration::from_millis(1_000)));
    // The v1 lease (no boot columns) expires by the wall clock: not before 1_003_000 even
    // though the boot clock moves; then it is taken and the fence continues.
    clock.advance(2_999);
    assert!(a.try_acquire(ACC, "a").await.unwrap().is_none());
    clock.advance(1);
    let lease = a.try_acquire(ACC, "a").await.unwrap().expect("v1 lease expired by wall");
    assert_eq!(lease.fence(), 8);
    lease.journal_begin(4).await.unwrap();
    let entry = a.journal(ACC).await.unwrap().unwrap();
    assert_eq!(entry.boot_id.as_deref(), Some("boot-1"));
    lease.release().await.unwrap();
    // Reopening a v2 file does not migrate again.
    drop(a);
    let a = Coordinator::open(&path, config(3_000, 3_600_000), clock.clone()).unwrap();
    a.acquire(ACC, "a").await.unwrap().release().await.unwrap();
}

/// A process of the previous release takes over a row written by this one: its SQL does
/// not know the boot columns, so they stay behind. They must not be trusted (here they
/// would say "expired", while the old release holds the lease by the wall clock).
#[tokio::test]
async fn boot_columns_left_behind_by_an_older_release_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let clock = BootClock::at(1_000_000, "boot-1", 40_000);
    let a = Coordinator::open(&path, config(3_000, 3_600_000), clock.clone()).unwrap();
    let b = Coordinator::open(&path, config(3_000, 3_600_000), clock.clone()).unwrap();
    let lease = b.acquire(ACC, "b").await.unwrap();
    lease.journal_begin(0).await.unwrap();
    std::mem::forget(lease); // never released: expires
    clock.advance(3_000);
    // The previous release's acquisition and journal_begin, verbatim in effect.
    let raw = rusqlite::Connection::open(&path).unwrap();
    let fence: i64 = raw
        .query_row(
            "INSERT INTO lease (account, holder, fence, expires_at_ms) VALUES (?1, 'old', 1, ?2)
             ON CONFLICT (account) DO UPDATE SET holder = excluded.holder,
                fence = lease.fence + 1, expires_at_ms = excluded.expires_at_ms
                WHERE lease.holder IS NULL OR lease.expires_at_ms <= ?3
                   OR lease.holder = excluded.holder
             RETURNING fence",
            rusqlite::params![ACC, 1_003_000 + 60_000, 1_003_000],
            |r| r.get(0),
        )
        .unwrap();
    raw.execute(
        "UPDATE journal SET holder = 'old', fence = ?2, started_at_ms = ?3, updated_at_ms = ?3
         WHERE account = ?1",
        rusqlite::params![ACC, fence, 1_003_000],
    )
    .unwrap();
    // The stale boot expiry (43_000) has passed on the boot clock; the wall expiry has not.
    clock.advance(10_000);
    assert!(a.try_acquire(ACC, "a").await.unwrap().is_none(), "judged by stale boot columns");
    let entry = a.journal(ACC).await.unwrap().unwrap();
    assert_eq!((entry.boot_id, entry.updated_boot_ms), (None, None));
    clock.advance(50_000);
    let lease = a.try_acquire(ACC, "a").await.unwrap().expect("old release's lease expired");
    assert_eq!(lease.fence(), u64::try_from(fence).unwrap() + 1);
}

/// The real clocks: the boot clock is known on Linux and leases written with it work
/// across two coordinators (the common case of every other test here).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_system_clock_writes_the_real_boot_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let a = open(&path, CoordinatorConfig::default());
    let stamp = a.now_stamp();
    let boot = stamp.boot.clone().expect("boot clock on Linux");
    let expected = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    assert_eq!(boot.boot_id, expected.trim());
    let lease = a.acquire(ACC, "a").await.unwrap();
    lease.journal_begin(0).await.unwrap();
    let entry = a.journal(ACC).await.unwrap().unwrap();
    assert_eq!(entry.boot_id.as_deref(), Some(boot.boot_id.as_str()));
    let age = entry.age(&a.now_stamp()).unwrap();
    assert!(age < Duration::from_secs(5), "{age:?}");
    lease.release().await.unwrap();
}
