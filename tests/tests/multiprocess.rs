//! Cross-process refresh with real OS processes against the real providers, under faults
//! (invariants I1–I5). The plain multi-process soak runs against node-oidc-provider and
//! django-oauth-toolkit; the fault-injection ones need the node provider's admin API.
//! Longer soaks: `LATCHKEY_SOAK_SECS` (default 30), `LATCHKEY_DOT_SOAK_SECS` (default 6)
//! and `LATCHKEY_KILL_TRIALS` (default 20).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use latchkey::internals::{Coordinator, JournalPhase};
use latchkey::CoordinatorConfig;
use latchkey::{Error, FileSessionStore, SessionBlob, SessionStore, StoreError, SystemClock};
use latchkey_e2e::flow::{register, sign_in, test_config};
use latchkey_e2e::op::{Fault, FaultWhen, ProviderOptions, TestProvider};
use latchkey_e2e::workers::{write_registration, Worker, WorkerSpec};
use latchkey_e2e::ProviderKind;
use rand::Rng;
use serde_json::Value;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn provider(ttl: u64) -> TestProvider {
    TestProvider::start(ProviderOptions { access_token_ttl_secs: ttl, ..Default::default() })
        .await
        .expect("test provider")
}

/// Registers and signs alice in, leaving session.json + registration.json in `dir`.
async fn prepare(op: &TestProvider, dir: &Path) -> latchkey::ClientRegistration {
    prepare_on(op.issuer(), dir).await
}

async fn prepare_on(issuer: &str, dir: &Path) -> latchkey::ClientRegistration {
    let c = latchkey_e2e::flow::file_client(test_config(issuer, dir, "setup"), dir).unwrap();
    let reg = register(&c, None).await.unwrap();
    sign_in(&c, "alice").await.unwrap();
    write_registration(dir, &reg);
    reg
}

fn spec(op: &TestProvider, dir: &Path, args: &[&str]) -> WorkerSpec {
    spec_on(op.issuer(), dir, args)
}

fn spec_on(issuer: &str, dir: &Path, args: &[&str]) -> WorkerSpec {
    WorkerSpec::new(env!("CARGO_BIN_EXE_latchkey-worker"), issuer, dir, args)
}

fn coordinator(dir: &Path) -> Coordinator {
    Coordinator::open(dir.join("lock.db"), CoordinatorConfig::default(), Arc::new(SystemClock))
        .unwrap()
}

fn stored_generation(dir: &Path) -> Option<u64> {
    let v: Value = serde_json::from_slice(&std::fs::read(dir.join("session.json")).ok()?).ok()?;
    v["generation"].as_u64()
}

/// Several processes with several tasks each share one session through 2 s access tokens:
/// one refresh per rotation, nobody signed out, and never a consumed refresh token sent
/// again. node-oidc-provider counts reuse; django-oauth-toolkit has no counters, but a reuse
/// would revoke the whole family, so the final refresh token must still refresh.
/// node: 8 processes for `LATCHKEY_SOAK_SECS` (default 30); django-oauth-toolkit: 4
/// processes for `LATCHKEY_DOT_SOAK_SECS` (default 6).
async fn processes_refresh_once_per_rotation(kind: ProviderKind) {
    let (processes, secs) = match kind {
        ProviderKind::Dot => (4, env_u64("LATCHKEY_DOT_SOAK_SECS", 6)),
        _ => (8, env_u64("LATCHKEY_SOAK_SECS", 30)),
    };
    let op = kind.start(2).await.expect("provider");
    let dir = tempfile::tempdir().unwrap();
    let reg = prepare_on(op.issuer(), dir.path()).await;
    if let Some(node) = op.node() {
        node.reset().await.unwrap();
    }
    let duration = (secs * 1000).to_string();
    let s = spec_on(
        op.issuer(),
        dir.path(),
        &["--tasks", "8", "--duration-ms", &duration, "--interval-ms", "20"],
    );
    let mut workers: Vec<Worker> = (0..processes).map(|i| s.spawn(&format!("w{i}"))).collect();
    let mut summaries = Vec::new();
    for w in &mut workers {
        summaries.push(w.summary(Duration::from_secs(secs + 60)).expect("worker summary"));
    }
    let rec = coordinator(dir.path()).generation("default").await.unwrap().unwrap();
    println!("{kind}: final generation {}", rec.generation);
    for s in &summaries {
        println!("{s}");
        assert_eq!(s["state"], "Authenticated", "{s}");
        assert_eq!(s["generations_monotonic"], true, "{s}");
        assert!(s["errors"].get("ReauthRequired").is_none(), "{s}");
    }
    // About one refresh per (TTL − margin): 2 s tokens, 0.5 s margin.
    let rotations = rec.generation - 1;
    let expected = secs as f64 / 1.5;
    assert!(
        (rotations as f64) >= expected * 0.5 && (rotations as f64) <= expected * 1.5 + 2.0,
        "rotations {rotations} far from {expected:.0}"
    );
    // I2: the others adopted through the store instead of refreshing.
    let adopted: u64 = summaries.iter().map(|s| s["events"]["adopted"].as_u64().unwrap_or(0)).sum();
    assert!(adopted > 0);
    assert_eq!(stored_generation(dir.path()), Some(rec.generation));
    if let Some(c) = op.counters().await.unwrap() {
        println!("counters: {c:?}");
        assert_eq!(c.reuse_detections, 0, "a consumed refresh token was sent again");
        assert_eq!(c.token_error("invalid_grant"), 0);
        // I1: one grant per rotation — every grant served became exactly one generation.
        assert_eq!(c.refresh_grants, rotations, "grants vs committed generations");
    }
    // The family is alive at the provider: the committed refresh token still rotates.
    let check =
        latchkey_e2e::flow::file_client(test_config(op.issuer(), dir.path(), "check"), dir.path())
            .unwrap();
    check.restore_registration(reg).unwrap();
    check.restore_session().await.unwrap().expect("committed session");
    assert_eq!(
        check.refresh().await.unwrap(),
        latchkey::RefreshOutcome::Refreshed { generation: rec.generation + 1 },
        "{}",
        op.log_tail()
    );
}

latchkey_e2e::for_each_provider!(multi_thread; processes_refresh_once_per_rotation);

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_of_the_holder_at_random_points() {
    let trials = env_u64("LATCHKEY_KILL_TRIALS", 20);
    let lease_ms = 1500u64;
    // A killed holder's `request_sent` entry is waited for this long before the old refresh
    // token is tried once more; an `answered` one before the session is declared lost.
    let in_doubt_ms = 2000u64;
    let op = provider(2).await;
    let dir = tempfile::tempdir().unwrap();
    prepare(&op, dir.path()).await;
    let lease = lease_ms.to_string();
    let s = spec(
        &op,
        dir.path(),
        &[
            "--tasks",
            "2",
            "--duration-ms",
            "600000",
            "--interval-ms",
            "20",
            "--lease-ms",
            &lease,
            "--in-doubt-ms",
            &in_doubt_ms.to_string(),
            "--answered-limit-ms",
            &in_doubt_ms.to_string(),
        ],
    );
    let coord = coordinator(dir.path());
    let mut workers: Vec<Worker> = (0..3).map(|i| s.spawn(&format!("k{i}"))).collect();
    let mut next_id = 3;
    let mut rng = rand::rng();
    let mut report = Vec::new();
    let mut lost = 0;
    let mut retired: Vec<Worker> = Vec::new();
    for trial in 0..trials {
        let delayed = trial % 2 == 1;
        if delayed {
            op.push_fault(
                Fault::delay(FaultWhen::Before, Duration::from_millis(300)).refresh_only(),
            )
            .await
            .unwrap();
        }
        // Wait for some worker to start a refresh (it holds the lease then).
        let since = Instant::now();
        let mut holder = None;
        for _ in 0..400 {
            holder = workers.iter().position(|w| {
                w.wait_for(since, Duration::ZERO, |v| v["event"] == "refresh_started").is_some()
            });
            if holder.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let Some(idx) = holder else {
            for w in &workers {
                for (_, v) in w.lines().iter().rev().take(12).rev() {
                    println!("{}: {v}", w.holder);
                }
            }
            println!("{}", serde_json::to_string_pretty(&report).unwrap());
            panic!("trial {trial}: no refresh started")
        };
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..250))).await;
        let journal = coord.journal("default").await.unwrap();
        let mut victim = workers.remove(idx);
        victim.kill();
        let killed_at = Instant::now();
        retired.push(victim);
        let window = match &journal {
            None => "no refresh in flight",
            Some(j) => match j.phase {
                JournalPhase::RequestSent => "request sent",
                JournalPhase::Answered => "answered",
                JournalPhase::Saving => "saving",
                _ => "other",
            },
        };
        // The survivors go on: a new generation appears (refreshed or adopted) or the
        // session is found lost.
        let progressed = workers.iter().find_map(|w| {
            w.wait_for(killed_at, Duration::from_millis(lease_ms + in_doubt_ms + 4000), |v| {
                v["event"] == "refreshed"
                    || v["event"] == "adopted"
                    || v["event"] == "reauth_required"
            })
        });
        let lost_here = workers.iter().any(|w| !w.events("reauth_required").is_empty());
        report.push(serde_json::json!({
            "trial": trial, "provider_delay": delayed, "window": window,
            "progress_ms": progressed.as_ref().map(|(t, _)| t.duration_since(killed_at).as_millis() as u64),
            "session_lost": lost_here,
        }));
        assert!(progressed.is_some(), "trial {trial}: survivors made no progress");
        if lost_here {
            lost += 1;
            // Only a kill after the request left may cost the session (documented window).
            assert_ne!(
                window, "no refresh in flight",
                "session lost although nothing was in flight"
            );
            retired.append(&mut workers);
            op.clear_faults().await.unwrap();
            let c = latchkey_e2e::flow::file_client(
                test_config(op.issuer(), dir.path(), "setup"),
                dir.path(),
            )
            .unwrap();
            let reg: latchkey::ClientRegistration = serde_json::from_slice(
                &std::fs::read(dir.path().join("registration.json")).unwrap(),
            )
            .unwrap();
            c.restore_registration(reg).unwrap();
            sign_in(&c, "alice").await.unwrap();
            workers = (0..3).map(|i| s.spawn(&format!("k{}", next_id + i))).collect();
            next_id += 3;
        } else {
            workers.push(s.spawn(&format!("k{next_id}")));
            next_id += 1;
        }
        op.clear_faults().await.unwrap();
    }
    // Callers of every process that saw a holder die never waited longer than the lease,
    // plus the in-doubt wait for a refresh that may have consumed the token, + 1 s (stats
    // lines come once a second, so killed workers count too).
    let mut slowest = 0;
    for w in workers.iter().chain(retired.iter()) {
        for (_, v) in w.events("stats") {
            slowest = slowest.max(v["max_call_ms"].as_u64().unwrap_or(0));
        }
    }
    assert!(slowest > 0, "no stats from the workers");
    assert!(slowest <= lease_ms + in_doubt_ms + 1000, "a caller waited {slowest} ms");
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    let mut by_window: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for r in &report {
        let e = by_window.entry(r["window"].as_str().unwrap_or("?").to_string()).or_default();
        e.0 += 1;
        e.1 += u64::from(r["session_lost"] == true);
    }
    println!("SIGKILL trials: {trials}, sessions lost: {lost}, slowest call {slowest} ms");
    for (window, (kills, lost)) in &by_window {
        println!("  killed with {window:<22} {kills:>3} times, session lost {lost} times");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigstop_beyond_the_lease_then_sigcont() {
    // Access tokens outlive the stop, so the others keep their valid token instead of
    // risking the refresh token the stopped process may have consumed.
    let op = provider(12).await;
    let dir = tempfile::tempdir().unwrap();
    prepare(&op, dir.path()).await;
    let s = spec(
        &op,
        dir.path(),
        &["--tasks", "2", "--duration-ms", "30000", "--interval-ms", "50", "--lease-ms", "1500"],
    );
    let mut workers: Vec<Worker> = (0..3).map(|i| s.spawn(&format!("s{i}"))).collect();
    // The provider holds the next refresh for 2 s (the request is already sent).
    op.push_fault(Fault::delay(FaultWhen::Before, Duration::from_millis(2000)).refresh_only())
        .await
        .unwrap();
    let since = Instant::now();
    let mut stopped = None;
    for _ in 0..2000 {
        stopped = workers.iter().position(|w| {
            w.wait_for(since, Duration::ZERO, |v| v["event"] == "refresh_started").is_some()
        });
        if stopped.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let idx = stopped.expect("a refresh started");
    tokio::time::sleep(Duration::from_millis(100)).await;
    workers[idx].stop();
    let stopped_at = Instant::now();
    // Beyond the lease: the others proceed.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for (i, w) in workers.iter().enumerate() {
        if i != idx {
            let errors_after: Vec<Value> = w
                .events("error")
                .into_iter()
                .filter(|(t, _)| *t > stopped_at)
                .map(|(_, v)| v)
                .collect();
            assert!(
                errors_after.is_empty(),
                "{} got errors while the holder was stopped: {errors_after:?}",
                w.holder
            );
        }
    }
    workers[idx].cont();
    let mut summaries = Vec::new();
    for w in &mut workers {
        summaries.push(w.summary(Duration::from_secs(60)).expect("summary"));
    }
    let c = op.counters().await.unwrap();
    let rec = coordinator(dir.path()).generation("default").await.unwrap().unwrap();
    for (_, line) in workers[idx].lines() {
        if line["event"] != "summary" {
            println!("stopped worker: {line}");
        }
    }
    for s in &summaries {
        println!("{s}");
        assert_eq!(
            s["generations_monotonic"], true,
            "an older generation replaced a newer one: {s}"
        );
        assert_eq!(s["state"], "Authenticated", "{s}");
    }
    // Documented outcome: the stopped process's request had been sent and was processed
    // after the delay; its response committed on SIGCONT and everyone adopted it.
    assert_eq!(c.reuse_detections, 0);
    assert_eq!(c.refresh_grants, rec.generation - 1);
    assert_eq!(stored_generation(dir.path()), Some(rec.generation));
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_faults_never_log_out() {
    let op = provider(2).await;
    let dir = tempfile::tempdir().unwrap();
    prepare(&op, dir.path()).await;
    for f in [
        Fault::status(FaultWhen::Before, 503).refresh_only().times(3),
        Fault::drop_connection(FaultWhen::Before).refresh_only().times(2),
        // Longer than the client's 5 s request timeout: the provider drops it unprocessed.
        Fault::delay(FaultWhen::Before, Duration::from_millis(6000)).refresh_only(),
        Fault::status(FaultWhen::Before, 500).refresh_only().times(2),
    ] {
        op.push_fault(f).await.unwrap();
    }
    let s =
        spec(&op, dir.path(), &["--tasks", "4", "--duration-ms", "20000", "--interval-ms", "50"]);
    let mut workers: Vec<Worker> = (0..4).map(|i| s.spawn(&format!("t{i}"))).collect();
    let mut summaries = Vec::new();
    for w in &mut workers {
        summaries.push(w.summary(Duration::from_secs(80)).expect("summary"));
    }
    let c = op.counters().await.unwrap();
    for s in &summaries {
        println!("{s}");
        assert_eq!(s["state"], "Authenticated", "{s}");
        assert!(
            s["errors"].get("ReauthRequired").is_none() && s["errors"].get("LoggedOut").is_none(),
            "{s}"
        );
    }
    assert!(c.faults_applied >= 8, "{c:?}");
    assert_eq!(c.reuse_detections, 0);
    assert!(c.refresh_grants >= 3, "refreshes resumed after the faults: {c:?}");
}

/// A store whose saves fail (retryably) while `failing` is set.
struct SwitchStore {
    inner: FileSessionStore,
    fail_next: std::sync::atomic::AtomicU64,
}

#[async_trait]
impl SessionStore for SwitchStore {
    async fn save(&self, a: &str, b: &SessionBlob) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        if self.fail_next.load(Ordering::SeqCst) > 0 {
            self.fail_next.fetch_sub(1, Ordering::SeqCst);
            return Err(StoreError::transient("keychain unavailable"));
        }
        self.inner.save(a, b).await
    }
    async fn load(&self, a: &str) -> Result<Option<SessionBlob>, StoreError> {
        self.inner.load(a).await
    }
    async fn clear(&self, a: &str) -> Result<(), StoreError> {
        self.inner.clear(a).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_store_saves_lose_nothing() {
    use std::sync::atomic::Ordering;
    let op = provider(60).await;
    let dir = tempfile::tempdir().unwrap();
    let reg = prepare(&op, dir.path()).await;
    let store =
        Arc::new(SwitchStore { inner: FileSessionStore::new(dir.path()), fail_next: 2.into() });
    let a =
        latchkey::Client::new(test_config(op.issuer(), dir.path(), "a"), store.clone()).unwrap();
    a.restore_registration(reg.clone()).unwrap();
    a.restore_session().await.unwrap().unwrap();

    // Fails twice, then succeeds within the bounded retries: nothing lost.
    assert!(matches!(
        a.refresh().await.unwrap(),
        latchkey::RefreshOutcome::Refreshed { generation: 2 }
    ));
    assert_eq!(stored_generation(dir.path()), Some(2));

    // Fails for good: a typed error, the new tokens kept in memory.
    store.fail_next.store(1000, Ordering::SeqCst);
    let err = a.refresh().await.unwrap_err();
    assert!(matches!(err, Error::Store { ref operation, .. } if operation == "save"), "{err:?}");
    let kept = a.session().unwrap();
    assert_eq!(kept.generation, 3);
    assert_eq!(a.access_token().await.unwrap(), kept.access_token, "served from memory");
    assert_eq!(stored_generation(dir.path()), Some(2));

    // Another process is unharmed: it keeps its valid token and does not refresh with the
    // consumed one.
    let b = latchkey_e2e::flow::file_client(test_config(op.issuer(), dir.path(), "b"), dir.path())
        .unwrap();
    b.restore_registration(reg).unwrap();
    b.restore_session().await.unwrap().unwrap();
    let out = b.refresh().await;
    assert!(!matches!(out, Err(Error::ReauthRequired { .. }) | Err(Error::LoggedOut)), "{out:?}");
    assert_eq!(op.counters().await.unwrap().reuse_detections, 0);

    // The store recovers: the kept tokens are saved and committed, and b adopts them.
    store.fail_next.store(0, Ordering::SeqCst);
    a.refresh().await.unwrap();
    let g = a.session().unwrap().generation;
    assert!(g >= 3);
    assert_eq!(stored_generation(dir.path()), Some(g));
    b.sync().await.unwrap();
    assert_eq!(b.session().unwrap().generation, g);
    assert_eq!(op.counters().await.unwrap().reuse_detections, 0);
}
