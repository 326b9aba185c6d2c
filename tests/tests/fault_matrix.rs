//! The fault matrix of the refresh path: every fault point (`latchkey::faults`) × {abort
//! the process, suspend it past the lease, make the step fail} × 3 real worker processes
//! sharing one session, against the real provider (rotation on every use, whole-grant
//! revocation on reuse, no grace).
//!
//! Per cell: reuse detections at the provider, sessions lost, live processes that converged
//! on the committed generation, and the time from the fault until every live process held
//! a newer generation. Asserted: 0 reuse and 0 sessions lost in every cell outside the one
//! window that no client can close without the provider's help, "response read → store
//! save returned" (abort at `refresh::response_read` or `refresh::after_answered`); inside
//! it, losses are counted and printed. With the provider's reuse interval configured (and
//! the client told), 0 losses everywhere.
//!
//! `LATCHKEY_MATRIX_LANES` (default 2) cells run at once, each with its own provider.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey::internals::Coordinator;
use latchkey::{CoordinatorConfig, SessionState};
use latchkey::{RefreshOutcome, SystemClock};
use latchkey_e2e::flow::{register, sign_in, test_config};
use latchkey_e2e::op::{ProviderOptions, TestProvider};
use latchkey_e2e::workers::{release_settle, write_registration, Worker, WorkerSpec};
use serde_json::Value;

/// Access-token lifetime in the matrix: the refresher (margin 1 s) refreshes at 3 s, the
/// others (margin 0.3 s) would at 3.7 s.
const TTL_SECS: u64 = 4;
const LEASE_MS: u64 = 1500;
/// How long a suspended process stays stopped: past its lease.
const STOP_MS: u64 = LEASE_MS + 300;
/// How long the others wait for a holder whose request is out (`in_doubt_wait`) or whose
/// answer is not yet committed (`answered_limit`) before they resend or give the session
/// up. Well above the suspension: a holder that resumes has seconds to finish even on a
/// loaded machine, where a debug build can stall for a few seconds. A suspension longer than
/// these is the designed resend or loss (ADR 0004); the defaults are 33 s and 10 min.
const IN_DOUBT_MS: u64 = 6000;
const ANSWERED_LIMIT_MS: u64 = 8000;
/// Long enough for the holders that wait out `answered_limit` after a refresh at 3 s to
/// settle inside the run.
const RUN_MS: u64 = 12_000;
/// The fault points of the refresh and adoption paths (`latchkey::internals::POINTS`): run in
/// the refresher (the first to refresh); `adopt::*` in an adopter.
fn points() -> Vec<&'static str> {
    latchkey::internals::POINTS
        .iter()
        .copied()
        .filter(|p| p.starts_with("refresh::") || p.starts_with("adopt::"))
        .collect()
}
const ACTIONS: &[&str] = &["abort", "stop", "error"];

#[derive(Debug, Clone)]
struct CellResult {
    point: &'static str,
    action: &'static str,
    hit: bool,
    reuse: u64,
    /// Consumed tokens the provider served again inside its reuse interval.
    reused_in_interval: u64,
    grants: u64,
    lost: usize,
    alive: usize,
    converged: usize,
    converge_ms: Option<u64>,
}

impl CellResult {
    /// "response read → store save returned": the provider rotated and the only copy of
    /// the new tokens dies with the process.
    fn in_window(&self) -> bool {
        self.action == "abort"
            && matches!(self.point, "refresh::response_read" | "refresh::after_answered")
    }

    /// Whether the cell breaks what the matrix asserts: with a reuse interval, everything
    /// everywhere; without, outside the window.
    fn fails(&self, reuse_interval: bool) -> bool {
        let broken = self.reuse != 0 || self.lost != 0 || self.converged != self.alive;
        !self.hit || (broken && (reuse_interval || !self.in_window()))
    }
}

/// Runs a blocking wait of the worker harness (it sleeps on the thread) without holding up
/// the runtime: the other lane's timers, e.g. the one that continues a suspended process,
/// must still fire on time.
fn block<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn coordinator(dir: &Path) -> Coordinator {
    Coordinator::open(dir.join("lock.db"), CoordinatorConfig::default(), Arc::new(SystemClock))
        .unwrap()
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn run_cell(
    op: &TestProvider,
    point: &'static str,
    action: &'static str,
    reuse_interval_ms: Option<u64>,
) -> CellResult {
    let dir = tempfile::tempdir().unwrap();
    let setup =
        latchkey_e2e::flow::file_client(test_config(op.issuer(), dir.path(), "setup"), dir.path())
            .unwrap();
    let reg = register(&setup, None).await.unwrap();
    write_registration(dir.path(), &reg);
    op.reset().await.unwrap();
    sign_in(&setup, "alice").await.unwrap();
    drop(setup);
    let mut args: Vec<String> = [
        "--tasks",
        "2",
        "--duration-ms",
        &RUN_MS.to_string(),
        "--interval-ms",
        "25",
        "--lease-ms",
        &LEASE_MS.to_string(),
        "--in-doubt-ms",
        &IN_DOUBT_MS.to_string(),
        "--answered-limit-ms",
        &ANSWERED_LIMIT_MS.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(ms) = reuse_interval_ms {
        args.extend(["--reuse-interval-ms".to_string(), ms.to_string()]);
    }
    // Every live worker settles only once all of them have stopped their callers: a refresh
    // one of them commits at the end of the run is then seen by all.
    let settle = dir.path().join("settle");
    args.extend(["--settle-file".to_string(), settle.display().to_string()]);
    let spec = WorkerSpec {
        bin: env!("CARGO_BIN_EXE_latchkey-worker").into(),
        issuer: op.issuer().to_string(),
        state_dir: dir.path().to_path_buf(),
        args,
    };
    let failpoint = vec![("FAILPOINTS", format!("{point}=1*return({action})"))];
    let in_adopter = point.starts_with("adopt::");
    let margin = |ms: u64| vec!["--margin-ms".to_string(), ms.to_string()];
    let refresher =
        spec.spawn_with("refresher", &margin(1000), if in_adopter { &[] } else { &failpoint });
    let adopter =
        spec.spawn_with("adopter", &margin(300), if in_adopter { &failpoint } else { &[] });
    let other = spec.spawn_with("other", &margin(300), &[]);
    let mut workers = vec![refresher, adopter, other];
    let victim = usize::from(in_adopter);

    // Wait for the fault point to be reached.
    let started = Instant::now();
    let mut fault_at = None;
    while started.elapsed() < Duration::from_millis(RUN_MS) {
        if let Some((t, _)) = workers[victim].events("fault").first() {
            fault_at = Some(*t);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if fault_at.is_some() && action == "stop" {
        // It stops itself; keep it stopped past its lease from the moment it is, then let
        // it go on.
        assert!(
            block(|| workers[victim].wait_stopped(Duration::from_secs(5))),
            "{point}: the process printed its fault but did not stop"
        );
        tokio::time::sleep(Duration::from_millis(STOP_MS)).await;
        workers[victim].cont();
    }
    let summaries: Vec<Option<Value>> = block(|| {
        release_settle(&mut workers, &settle, Duration::from_millis(RUN_MS + 20_000));
        workers.iter_mut().map(|w| w.summary(Duration::from_millis(RUN_MS + 20_000))).collect()
    });
    // A fault line that arrived after the live wait (a late refresh) still counts.
    let fault_at = fault_at.or_else(|| workers[victim].events("fault").first().map(|(t, _)| *t));
    if std::env::var_os("LATCHKEY_MATRIX_ONLY").is_some() || fault_at.is_none() {
        for w in &workers {
            for (t, v) in w.lines() {
                if v["event"] != "stats" {
                    println!("{} +{:?} {v}", w.holder, t.duration_since(started));
                }
            }
        }
    }
    // A pooled admin connection may have been closed by the server's keep-alive timeout
    // during the run: one retry.
    let counters = match op.counters().await {
        Ok(c) => c,
        Err(_) => op.counters().await.unwrap_or_else(|e| {
            panic!(
                "{point}:{action}: provider counters: {e}\n--- provider stderr ---\n{}",
                op.stderr_tail()
            )
        }),
    };
    let rec = coordinator(dir.path()).generation("default").await.unwrap().unwrap();
    let alive: Vec<(&Worker, &Value)> =
        workers.iter().zip(&summaries).filter_map(|(w, s)| s.as_ref().map(|s| (w, s))).collect();
    let lost = alive
        .iter()
        .filter(|(_, s)| {
            s["state"] != "Authenticated" || s["errors"].get("ReauthRequired").is_some()
        })
        .count()
        + usize::from(rec.state != SessionState::Active && alive.is_empty());
    let converged = alive
        .iter()
        .filter(|(_, s)| {
            rec.state == SessionState::Active
                && s["final_generation"].as_u64() == Some(rec.generation)
        })
        .count();
    let converge_ms = fault_at.and_then(|t0| {
        let mut worst = Duration::ZERO;
        for (w, _) in &alive {
            let first_newer = w.lines().into_iter().find(|(t, v)| {
                *t >= t0
                    && (v["event"] == "refreshed" || v["event"] == "adopted")
                    && v["generation"].as_u64().is_some_and(|g| g >= 2)
            });
            match first_newer {
                Some((t, _)) => worst = worst.max(t - t0),
                None => return None,
            }
        }
        Some(worst.as_millis() as u64)
    });
    let result = CellResult {
        point,
        action,
        hit: fault_at.is_some(),
        reuse: counters.reuse_detections,
        reused_in_interval: counters.reuse_within_interval,
        grants: counters.refresh_grants,
        lost,
        alive: alive.len(),
        converged,
        converge_ms,
    };
    // A process that was only suspended or saw a step fail should live to print its
    // summary; print what happened when one did not, too.
    let missing = action != "abort" && result.alive < 3;
    if (result.fails(reuse_interval_ms.is_some()) || missing)
        && std::env::var_os("LATCHKEY_MATRIX_ONLY").is_none()
    {
        // What every process printed, so that a failing cell explains itself.
        println!("\ncell {point}:{action} failed: {result:?}; committed {rec:?}");
        for w in &workers {
            for (t, v) in w.lines() {
                if v["event"] != "stats" {
                    println!("{} +{:?} {v}", w.holder, t.duration_since(started));
                }
            }
        }
    }
    result
}

async fn run_matrix(reuse_interval_secs: Option<u64>) -> Vec<CellResult> {
    let lanes = env_usize("LATCHKEY_MATRIX_LANES", 2).max(1);
    // `LATCHKEY_MATRIX_ONLY=point:action` runs one cell and prints its processes' lines.
    let only = std::env::var("LATCHKEY_MATRIX_ONLY").ok();
    let points = points();
    let cells: Vec<(&'static str, &'static str)> = points
        .iter()
        .flat_map(|p| ACTIONS.iter().map(move |a| (*p, *a)))
        .filter(|(p, a)| only.as_deref().is_none_or(|o| o == format!("{p}:{a}")))
        .collect();
    let chunks: Vec<Vec<(&'static str, &'static str)>> =
        (0..lanes).map(|lane| cells.iter().skip(lane).step_by(lanes).copied().collect()).collect();
    let mut handles = Vec::new();
    for chunk in chunks {
        handles.push(tokio::spawn(async move {
            let op = TestProvider::start(ProviderOptions {
                access_token_ttl_secs: TTL_SECS,
                ..Default::default()
            })
            .await
            .expect("test provider");
            if let Some(secs) = reuse_interval_secs {
                op.set_reuse_interval(secs).await.expect("reuse interval");
            }
            let mut out = Vec::new();
            for (point, action) in chunk {
                out.push(run_cell(&op, point, action, reuse_interval_secs.map(|s| s * 1000)).await);
            }
            out
        }));
    }
    let mut results = Vec::new();
    for h in handles {
        results.extend(h.await.unwrap());
    }
    results.sort_by_key(|r| {
        (points.iter().position(|p| *p == r.point), ACTIONS.iter().position(|a| *a == r.action))
    });
    results
}

fn print_table(title: &str, results: &[CellResult]) {
    println!("\n{title}\n");
    println!("| fault point | fault | reached | reuse detections | reuses inside the interval | grants | sessions lost | live processes converged | time to converge |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in results {
        println!(
            "| `{}` | {} | {} | {} | {} | {} | {}{} | {}/{} | {} |",
            r.point,
            r.action,
            if r.hit { "yes" } else { "no" },
            r.reuse,
            r.reused_in_interval,
            r.grants,
            r.lost,
            if r.in_window() { " (window)" } else { "" },
            r.converged,
            r.alive,
            r.converge_ms.map(|m| format!("{m} ms")).unwrap_or_else(|| "—".into()),
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_matrix_without_reuse_interval() {
    let results = run_matrix(None).await;
    print_table("fault matrix: provider without a reuse interval", &results);
    for r in &results {
        assert!(r.hit, "fault point never reached: {r:?}");
        if !r.in_window() {
            assert_eq!(r.reuse, 0, "a consumed refresh token was sent again: {r:?}");
            assert_eq!(r.lost, 0, "a session was lost outside the window: {r:?}");
            assert_eq!(r.converged, r.alive, "a live process did not converge: {r:?}");
        }
    }
}

/// Providers with a reuse interval (Auth0's and Okta's rotation leeway): the next holder
/// resends a possibly consumed refresh token while the provider still accepts it, so the
/// window closes and no cell loses a session.
#[tokio::test(flavor = "multi_thread")]
async fn fault_matrix_with_reuse_interval_loses_nothing() {
    let results = run_matrix(Some(10)).await;
    print_table("fault matrix: provider with a 10 s reuse interval", &results);
    for r in &results {
        assert!(r.hit, "fault point never reached: {r:?}");
        assert_eq!(r.reuse, 0, "a reuse outside the interval: {r:?}");
        assert_eq!(r.lost, 0, "a session was lost: {r:?}");
        assert_eq!(r.converged, r.alive, "a live process did not converge: {r:?}");
    }
}

/// Login commit and logout paths: their fault points × the same three faults. A login cut
/// short leaves either a usable session (a new process restores and refreshes it) or none —
/// never one that cannot be restored; a logout cut short still ends the session for every
/// process, and a restore afterwards finds it ended.
#[tokio::test(flavor = "multi_thread")]
async fn login_and_logout_paths_under_faults() {
    let op =
        TestProvider::start(ProviderOptions { access_token_ttl_secs: 60, ..Default::default() })
            .await
            .expect("test provider");
    println!("\nlogin and logout paths under faults\n");
    println!("| fault point | fault | reached | outcome | reuse detections |");
    println!("|---|---|---|---|---|");
    let mut failures = Vec::new();
    for point in ["login::after_exchange", "login::after_save"] {
        for action in ACTIONS {
            let (hit, outcome, reuse) = login_cell(&op, point, action).await;
            println!(
                "| `{point}` | {action} | {} | {outcome} | {reuse} |",
                if hit { "yes" } else { "no" }
            );
            if !hit || reuse != 0 || outcome.starts_with("broken") {
                failures.push(format!("{point} {action}: {outcome}, reuse {reuse}"));
            }
        }
    }
    for action in ACTIONS {
        let (hit, outcome, reuse) = logout_cell(&op, action).await;
        println!(
            "| `logout::after_end` | {action} | {} | {outcome} | {reuse} |",
            if hit { "yes" } else { "no" }
        );
        if !hit || reuse != 0 || outcome.starts_with("broken") {
            failures.push(format!("logout::after_end {action}: {outcome}, reuse {reuse}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

fn worker_spec(op: &TestProvider, dir: &Path, args: &[&str]) -> WorkerSpec {
    WorkerSpec::new(env!("CARGO_BIN_EXE_latchkey-worker"), op.issuer(), dir, args)
}

async fn wait_fault(w: &Worker, action: &str) -> bool {
    let since = Instant::now() - Duration::from_secs(3600);
    let hit =
        block(|| w.wait_for(since, Duration::from_secs(15), |v| v["event"] == "fault").is_some());
    if hit && action == "stop" {
        assert!(
            block(|| w.wait_stopped(Duration::from_secs(5))),
            "printed its fault but did not stop"
        );
        tokio::time::sleep(Duration::from_millis(STOP_MS)).await;
        w.cont();
    }
    hit
}

async fn login_cell(op: &TestProvider, point: &'static str, action: &str) -> (bool, String, u64) {
    let dir = tempfile::tempdir().unwrap();
    let setup =
        latchkey_e2e::flow::file_client(test_config(op.issuer(), dir.path(), "setup"), dir.path())
            .unwrap();
    let reg = register(&setup, None).await.unwrap();
    write_registration(dir.path(), &reg);
    drop(setup);
    op.reset().await.unwrap();
    let spec = worker_spec(
        op,
        dir.path(),
        &["--tasks", "1", "--duration-ms", "500", "--lease-ms", &LEASE_MS.to_string()],
    );
    let mut signer = spec.spawn_with(
        "signer",
        &["--sign-in".to_string(), "alice".to_string()],
        &[("FAILPOINTS", format!("{point}=1*return({action})"))],
    );
    let hit = wait_fault(&signer, action).await;
    signer.summary(Duration::from_secs(20));
    // A new process: restore whatever the store holds, and refresh it once.
    let c =
        latchkey_e2e::flow::file_client(test_config(op.issuer(), dir.path(), "after"), dir.path())
            .unwrap();
    c.restore_registration(reg).unwrap();
    let outcome = match c.restore_session().await {
        Ok(None) => {
            let end = c.recorded_end().await.unwrap();
            let rec = coordinator(dir.path()).generation("default").await.unwrap();
            if rec.is_none() || end.is_some() {
                "no session left behind".to_string()
            } else {
                format!("broken: committed {rec:?} but nothing stored")
            }
        }
        Ok(Some(_)) => match c.refresh().await {
            Ok(RefreshOutcome::Refreshed { generation }) => {
                format!("session usable (restored, refreshed to generation {generation})")
            }
            other => format!("broken: restored but refresh gave {other:?}"),
        },
        Err(e) => format!("broken: restore failed: {e}"),
    };
    let reuse = op.counters().await.unwrap().reuse_detections;
    (hit, outcome, reuse)
}

async fn logout_cell(op: &TestProvider, action: &str) -> (bool, String, u64) {
    let dir = tempfile::tempdir().unwrap();
    let setup =
        latchkey_e2e::flow::file_client(test_config(op.issuer(), dir.path(), "setup"), dir.path())
            .unwrap();
    let reg = register(&setup, None).await.unwrap();
    write_registration(dir.path(), &reg);
    sign_in(&setup, "alice").await.unwrap();
    drop(setup);
    op.reset().await.unwrap();
    let spec = worker_spec(
        op,
        dir.path(),
        &[
            "--tasks",
            "1",
            "--duration-ms",
            "5000",
            "--interval-ms",
            "25",
            "--lease-ms",
            &LEASE_MS.to_string(),
        ],
    );
    let mut leaver = spec.spawn_with(
        "leaver",
        &["--logout-after-ms".to_string(), "800".to_string()],
        &[("FAILPOINTS", format!("logout::after_end=1*return({action})"))],
    );
    let mut others = vec![spec.spawn("o1"), spec.spawn("o2")];
    let hit = wait_fault(&leaver, action).await;
    let mut states = Vec::new();
    if let Some(s) = leaver.summary(Duration::from_secs(30)) {
        states.push(s["state"].as_str().unwrap_or("?").to_string());
    }
    for w in &mut others {
        if let Some(s) = w.summary(Duration::from_secs(30)) {
            states.push(s["state"].as_str().unwrap_or("?").to_string());
        }
    }
    let c =
        latchkey_e2e::flow::file_client(test_config(op.issuer(), dir.path(), "after"), dir.path())
            .unwrap();
    c.restore_registration(reg).unwrap();
    let restore = c.restore_session().await;
    let ended = matches!(restore, Err(latchkey::Error::LoggedOut) | Ok(None));
    let all_out = states.iter().all(|s| s == "LoggedOut");
    let outcome = if ended && all_out && states.len() >= 2 {
        format!("logged out everywhere ({} live processes; restore finds it ended)", states.len())
    } else {
        format!("broken: states {states:?}, restore {restore:?}")
    };
    let reuse = op.counters().await.unwrap().reuse_detections;
    (hit, outcome, reuse)
}
