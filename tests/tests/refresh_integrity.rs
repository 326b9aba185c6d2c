//! The paths that used to break the two promises (a rotating refresh token is sent at most
//! once; an answered refresh is never lost), each driven against the real provider with
//! real SQLite files and, where a process must stop mid-step, real worker processes.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey::internals::Coordinator;
use latchkey::CoordinatorConfig;
use latchkey::{Client, Error, RefreshOutcome, SystemClock};
use latchkey_e2e::flow::{file_client, register, sign_in, test_config};
use latchkey_e2e::op::{ProviderOptions, TestProvider};
use latchkey_e2e::workers::{write_registration, WorkerSpec};

async fn provider(ttl: u64) -> TestProvider {
    TestProvider::start(ProviderOptions { access_token_ttl_secs: ttl, ..Default::default() })
        .await
        .expect("test provider")
}

/// A client of the state directory `dir`, registered and with the stored session restored.
async fn restored(op: &TestProvider, dir: &Path, holder: &str) -> Client {
    let c = file_client(test_config(op.issuer(), dir, holder), dir).unwrap();
    let reg: latchkey::ClientRegistration =
        serde_json::from_slice(&std::fs::read(dir.join("registration.json")).unwrap()).unwrap();
    c.restore_registration(reg).unwrap();
    c.restore_session().await.unwrap().expect("a stored session");
    c
}

async fn prepare(op: &TestProvider, dir: &Path) {
    let c = file_client(test_config(op.issuer(), dir, "setup"), dir).unwrap();
    let reg = register(&c, None).await.unwrap();
    write_registration(dir, &reg);
    sign_in(&c, "alice").await.unwrap();
}

fn worker_spec(op: &TestProvider, dir: &Path, args: &[&str]) -> WorkerSpec {
    WorkerSpec::new(env!("CARGO_BIN_EXE_latchkey-worker"), op.issuer(), dir, args)
}

fn committed_generation(dir: &Path) -> u64 {
    let rt = tokio::runtime::Handle::current();
    let c =
        Coordinator::open(dir.join("lock.db"), CoordinatorConfig::default(), Arc::new(SystemClock))
            .unwrap();
    tokio::task::block_in_place(|| rt.block_on(c.generation("default")))
        .unwrap()
        .unwrap()
        .generation
}

/// Copies the coordination database (after every connection was closed by `pause`).
fn copy_db(from: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let src = from.join(format!("lock.db{suffix}"));
        let dst = to.join(format!("lock.db{suffix}"));
        let _ = std::fs::remove_file(&dst);
        if src.exists() {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Power loss: the database commits with `synchronous=NORMAL`, so it can lose its last
/// commits while the store (the keychain) keeps the newer session. A process still holding
/// the older generation must adopt the store's session, never refresh with its consumed
/// refresh token.
#[tokio::test(flavor = "multi_thread")]
async fn database_rolled_back_under_a_live_session_is_recovered_from_the_store() {
    let op = provider(60).await;
    let dir = tempfile::tempdir().unwrap();
    let backup = tempfile::tempdir().unwrap();
    prepare(&op, dir.path()).await;
    let app = restored(&op, dir.path(), "app").await;
    assert!(matches!(app.refresh().await.unwrap(), RefreshOutcome::Refreshed { generation: 2 }));
    let ext = restored(&op, dir.path(), "ext").await;
    assert_eq!(ext.session().unwrap().generation, 2);
    // Snapshot the database at generation 2, then rotate once more (generation 3).
    app.pause().await;
    ext.pause().await;
    copy_db(dir.path(), backup.path());
    app.resume();
    ext.resume();
    assert!(matches!(app.refresh().await.unwrap(), RefreshOutcome::Refreshed { generation: 3 }));
    // The power loss: the database is back at generation 2; the store holds 3.
    app.pause().await;
    ext.pause().await;
    copy_db(backup.path(), dir.path());
    app.resume();
    ext.resume();
    assert_eq!(committed_generation(dir.path()), 2);
    op.reset().await.unwrap();

    // The extension holds generation 2, whose refresh token the provider has consumed.
    let outcome = ext.refresh().await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Adopted { generation: 3 }, "{outcome:?}");
    assert_eq!(committed_generation(dir.path()), 3);
    let c = op.counters().await.unwrap();
    assert_eq!(c.reuse_detections, 0, "a consumed refresh token was sent: {c:?}");
    assert_eq!(c.refresh_grants, 0);
    // And the session goes on for both processes.
    assert!(matches!(ext.refresh().await.unwrap(), RefreshOutcome::Refreshed { generation: 4 }));
    assert_eq!(app.sync().await.unwrap().unwrap().generation, 4);
    let c = op.counters().await.unwrap();
    assert_eq!((c.reuse_detections, c.refresh_grants), (0, 1), "{c:?}");
}

/// A store behind the committed generation (it lost a write, or one app target uses a
/// keychain group the others do not) is never installed: `restore_session` says
/// `StoreMismatch` instead of handing out tokens whose refresh token may be consumed.
#[tokio::test(flavor = "multi_thread")]
async fn restore_never_installs_a_session_older_than_the_committed_one() {
    let op = provider(60).await;
    let dir = tempfile::tempdir().unwrap();
    prepare(&op, dir.path()).await;
    let stale = std::fs::read(dir.path().join("session.json")).unwrap();
    let app = restored(&op, dir.path(), "app").await;
    app.refresh().await.unwrap();
    let newest = std::fs::read(dir.path().join("session.json")).unwrap();
    std::fs::write(dir.path().join("session.json"), &stale).unwrap();

    let ext = file_client(test_config(op.issuer(), dir.path(), "ext"), dir.path()).unwrap();
    let reg: latchkey::ClientRegistration =
        serde_json::from_slice(&std::fs::read(dir.path().join("registration.json")).unwrap())
            .unwrap();
    ext.restore_registration(reg).unwrap();
    let err = ext.restore_session().await.unwrap_err();
    assert!(matches!(err, Error::StoreMismatch { generation: 2 }), "{err:?}");
    assert!(err.is_retryable());
    assert!(ext.session().is_none());
    // The stale file was not touched; putting the newest back makes restore work.
    assert_eq!(std::fs::read(dir.path().join("session.json")).unwrap(), stale);
    std::fs::write(dir.path().join("session.json"), &newest).unwrap();
    assert_eq!(ext.restore_session().await.unwrap().unwrap().generation, 2);
}

/// A process whose generation is two behind: another process committed g+1, saved g+2 and
/// was suspended before committing it. The lapsed lease is taken over; the store (g+2) is
/// ahead of the database (g+1) with the journal naming its hash: it is committed and
/// adopted. Nothing is refreshed with the old token, and the suspended process, woken,
/// finds its tokens committed.
#[tokio::test(flavor = "multi_thread")]
async fn store_two_generations_ahead_is_rolled_forward_not_answered_with_a_refresh() {
    let op = provider(4).await;
    let dir = tempfile::tempdir().unwrap();
    prepare(&op, dir.path()).await;
    let behind = restored(&op, dir.path(), "behind").await;
    assert_eq!(behind.session().unwrap().generation, 1);
    // The worker refreshes twice; the second time it stops itself after the save.
    let spec = worker_spec(
        &op,
        dir.path(),
        &[
            "--tasks",
            "1",
            "--duration-ms",
            "14000",
            "--interval-ms",
            "25",
            "--lease-ms",
            "1500",
            "--margin-ms",
            "1000",
        ],
    );
    let w = spec.spawn_with(
        "committer",
        &[],
        &[("FAILPOINTS", "refresh::after_save=1*off->1*return(stop)".to_string())],
    );
    let since = Instant::now();
    let hit = w.wait_for(since, Duration::from_secs(12), |v| v["event"] == "fault");
    assert!(hit.is_some(), "the worker never reached the fault point");
    assert_eq!(committed_generation(dir.path()), 2);
    // `behind` holds generation 1, expired; its refresh token was consumed long ago.
    op.reset().await.unwrap();
    let token = behind.access_token().await.unwrap();
    let s = behind.session().unwrap();
    assert_eq!(s.generation, 3);
    assert_eq!(s.access_token.expose(), token.expose());
    assert_eq!(committed_generation(dir.path()), 3);
    let c = op.counters().await.unwrap();
    assert_eq!((c.reuse_detections, c.refresh_grants), (0, 0), "{c:?}");
    // The committer wakes: its commit finds its own tokens already committed.
    w.cont();
    let mut w = w;
    let summary = w.summary(Duration::from_secs(30)).expect("worker summary");
    assert_eq!(summary["state"], "Authenticated", "{summary}");
    assert_eq!(summary["generations_monotonic"], true, "{summary}");
    let c = op.counters().await.unwrap();
    assert_eq!(c.reuse_detections, 0, "{c:?}");
}

/// A failed store save (keychain locked) keeps the new tokens in memory only. Before, the
/// fast path served them without saving and another process, seeing an unsaved journal,
/// resent the consumed token once its own access token expired. Now the next call of the
/// process saves them first, and the other process waits for that instead of resending.
#[tokio::test(flavor = "multi_thread")]
async fn unsaved_tokens_are_saved_before_anything_else_and_never_resent_elsewhere() {
    let op = provider(4).await;
    let dir = tempfile::tempdir().unwrap();
    prepare(&op, dir.path()).await;
    let spec = worker_spec(
        &op,
        dir.path(),
        &["--tasks", "2", "--duration-ms", "9000", "--interval-ms", "25", "--lease-ms", "1500"],
    );
    // The refresher's store fails every save for a while (more than its retries).
    let mut flaky = spec.spawn_with(
        "flaky",
        &["--fail-saves".into(), "6".into(), "--margin-ms".into(), "1000".into()],
        &[],
    );
    let mut other = spec.spawn_with("other", &["--margin-ms".into(), "300".into()], &[]);
    let a = flaky.summary(Duration::from_secs(30)).expect("summary");
    let b = other.summary(Duration::from_secs(30)).expect("summary");
    let c = op.counters().await.unwrap();
    assert_eq!(c.reuse_detections, 0, "{c:?} {a} {b}");
    assert_eq!(a["state"], "Authenticated", "{a}");
    assert_eq!(b["state"], "Authenticated", "{b}");
    let committed = committed_generation(dir.path());
    assert_eq!(c.refresh_grants, committed - 1, "{c:?}");
    assert_eq!(b["final_generation"].as_u64(), Some(committed), "{b}");
}

/// Some authorization servers refuse a refresh made while the access token is still valid.
/// A proactive refresh refused that way is not a sign-out: the valid token is served until
/// it expires (from memory, without asking again), then the refresh is tried once more.
#[tokio::test(flavor = "multi_thread")]
async fn an_early_refresh_refused_keeps_the_valid_token_until_expiry() {
    use latchkey_e2e::op::{Fault, FaultWhen};
    let op = provider(3).await;
    let dir = tempfile::tempdir().unwrap();
    prepare(&op, dir.path()).await;
    let app = restored(&op, dir.path(), "app").await;
    let before = app.session().unwrap();
    let refusal = || {
        Fault::status(FaultWhen::Before, 400)
            .refresh_only()
            .body(serde_json::json!({"error": "invalid_grant", "error_description": "too early"}))
    };
    op.push_fault(refusal()).await.unwrap();
    // Asking for 10 s of validity from a 3 s token: a proactive refresh, refused.
    let token = app.access_token_with_min_ttl(Duration::from_secs(10)).await.unwrap();
    assert_eq!(token.expose(), before.access_token.expose());
    assert_eq!(app.state(), latchkey::LifecycleState::Authenticated);
    assert_eq!(op.counters().await.unwrap().faults_applied, 1);
    // Served from memory until it expires: no second request.
    for _ in 0..20 {
        app.access_token().await.unwrap();
    }
    assert_eq!(op.counters().await.unwrap().faults_applied, 1);
    assert_eq!(op.counters().await.unwrap().refresh_grants, 0);
    // At expiry it is refreshed once more, and this time it works.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let fresh = app.access_token().await.unwrap();
    assert_ne!(fresh.expose(), before.access_token.expose());
    assert_eq!(app.session().unwrap().generation, 2);
    // A refusal of an expired token's refresh ends the session (after the re-check).
    tokio::time::sleep(Duration::from_millis(3200)).await;
    op.push_fault(refusal()).await.unwrap();
    let err = app.access_token().await.unwrap_err();
    assert!(matches!(err, Error::ReauthRequired { .. }), "{err:?}");
}

/// The app reports a 401 for its token (the provider revoked it at rotation): one refresh
/// runs and a new token comes back; reporting the same old token again does not refresh
/// again, and a newer generation committed elsewhere is adopted instead of refreshing.
#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_token_is_replaced_once_and_never_loops() {
    let op = provider(60).await;
    let dir = tempfile::tempdir().unwrap();
    prepare(&op, dir.path()).await;
    let app = restored(&op, dir.path(), "app").await;
    let ext = restored(&op, dir.path(), "ext").await;
    op.reset().await.unwrap();
    let old = app.access_token().await.unwrap();
    let new = app.token_rejected(&old).await.unwrap();
    assert_ne!(new.expose(), old.expose());
    assert_eq!(op.counters().await.unwrap().refresh_grants, 1);
    // The same rejection again: the current token, no refresh.
    let again = app.token_rejected(&old).await.unwrap();
    assert_eq!(again.expose(), new.expose());
    assert_eq!(op.counters().await.unwrap().refresh_grants, 1);
    // The extension still holds the old token (fresh in memory, I6); its 401 adopts the
    // generation the app committed.
    let ext_old = ext.access_token().await.unwrap();
    assert_eq!(ext_old.expose(), old.expose());
    let ext_new = ext.token_rejected(&ext_old).await.unwrap();
    assert_eq!(ext_new.expose(), new.expose());
    let c = op.counters().await.unwrap();
    assert_eq!((c.refresh_grants, c.reuse_detections), (1, 0), "{c:?}");
}

/// django-oauth-toolkit sets a refreshed ID token's `auth_time` to the user's latest login
/// (OIDC Core §12.2 says it must stay the original). After the user signs in again
/// elsewhere, the refresh answer is kept — it was made durable before the check — with the
/// previous identity, a `ProviderDeviation` event, and tokens that work at the provider.
#[tokio::test(flavor = "multi_thread")]
async fn dot_auth_time_drift_on_refresh_keeps_the_rotated_tokens() {
    use latchkey::{LifecycleEvent, SessionEvent, SessionObserver};
    use latchkey_e2e::ProviderKind;
    #[derive(Default)]
    struct Events(std::sync::Mutex<Vec<SessionEvent>>);
    impl SessionObserver for Events {
        fn on_event(&self, e: &SessionEvent) {
            self.0.lock().unwrap().push(e.clone());
        }
    }
    let op = ProviderKind::Dot.start(60).await.expect("provider");
    let dir = tempfile::tempdir().unwrap();
    let app = file_client(test_config(op.issuer(), dir.path(), "app"), dir.path()).unwrap();
    let events = Arc::new(Events::default());
    let _observer = app.add_observer(events.clone());
    register(&app, None).await.unwrap();
    let first = sign_in(&app, "alice").await.unwrap();
    // The same user signs in again on another device, a second later.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let other_dir = tempfile::tempdir().unwrap();
    let other =
        file_client(test_config(op.issuer(), other_dir.path(), "other"), other_dir.path()).unwrap();
    register(&other, None).await.unwrap();
    sign_in(&other, "alice").await.unwrap();

    let outcome = app.refresh().await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Refreshed { generation: first.generation + 1 });
    let s = app.session().unwrap();
    assert_eq!(s.auth_time, first.auth_time, "the original identity is kept");
    assert_ne!(s.access_token.expose(), first.access_token.expose());
    let deviations: Vec<_> = events
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.event == LifecycleEvent::ProviderDeviation)
        .map(|e| e.detail.clone().unwrap_or_default())
        .collect();
    assert_eq!(deviations.len(), 1, "{deviations:?}");
    assert!(deviations[0].contains("auth_time"), "{deviations:?}");
    // The rotated tokens are the live ones: userinfo works, and the next refresh too.
    app.userinfo().await.unwrap();
    assert!(matches!(app.refresh().await.unwrap(), RefreshOutcome::Refreshed { .. }));
    app.userinfo().await.unwrap();
    // What the store holds is what memory holds.
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("session.json")).unwrap()).unwrap();
    assert_eq!(stored["generation"].as_u64(), Some(first.generation + 2));
}

/// django-oauth-toolkit deletes the previous access token when it rotates. A process still
/// serving that token from memory learns of it from the resource server's 401: reported
/// through `token_rejected`, the generation the other process committed is adopted (no
/// refresh), and the request can be retried.
#[tokio::test(flavor = "multi_thread")]
async fn dot_access_token_killed_at_rotation_is_replaced_through_token_rejected() {
    use latchkey_e2e::ProviderKind;
    let op = ProviderKind::Dot.start(60).await.expect("provider");
    let dir = tempfile::tempdir().unwrap();
    let setup = file_client(test_config(op.issuer(), dir.path(), "setup"), dir.path()).unwrap();
    let reg = register(&setup, None).await.unwrap();
    write_registration(dir.path(), &reg);
    sign_in(&setup, "alice").await.unwrap();
    let ext = file_client(test_config(op.issuer(), dir.path(), "ext"), dir.path()).unwrap();
    ext.restore_registration(reg.clone()).unwrap();
    ext.restore_session().await.unwrap().unwrap();
    let old = ext.access_token().await.unwrap();
    // The app process rotates.
    let app = file_client(test_config(op.issuer(), dir.path(), "app"), dir.path()).unwrap();
    app.restore_registration(reg).unwrap();
    app.restore_session().await.unwrap().unwrap();
    assert!(matches!(app.refresh().await.unwrap(), RefreshOutcome::Refreshed { generation: 2 }));
    // The extension's in-memory token is dead at the provider; userinfo reports it through
    // token_rejected and retries with the generation the app committed — no refresh (the
    // committed generation stays 2).
    ext.userinfo().await.unwrap();
    assert_eq!(ext.session().unwrap().generation, 2);
    assert_ne!(ext.session().unwrap().access_token.expose(), old.expose());
    assert_eq!(committed_generation(dir.path()), 2);
    // The same through the API an app calls on a 401 of its own resource server.
    let old = ext.access_token().await.unwrap();
    assert!(matches!(app.refresh().await.unwrap(), RefreshOutcome::Refreshed { generation: 3 }));
    let new = ext.token_rejected(&old).await.unwrap();
    assert_eq!(new.expose(), app.session().unwrap().access_token.expose());
    assert_eq!(ext.session().unwrap().generation, 3);
    assert_eq!(committed_generation(dir.path()), 3);
    ext.userinfo().await.unwrap();
}

/// Adoption re-checks freshness: a process that adopts a generation whose access token has
/// already expired goes on to refresh instead of handing out the expired token.
#[tokio::test(flavor = "multi_thread")]
async fn an_adopted_generation_that_expired_is_refreshed_not_handed_out() {
    let op = provider(2).await;
    let dir = tempfile::tempdir().unwrap();
    prepare(&op, dir.path()).await;
    let app = restored(&op, dir.path(), "app").await;
    let ext = restored(&op, dir.path(), "ext").await;
    assert!(matches!(app.refresh().await.unwrap(), RefreshOutcome::Refreshed { generation: 2 }));
    tokio::time::sleep(Duration::from_millis(2300)).await;
    // Generation 2 is committed and expired; ext still holds generation 1.
    let token = ext.access_token().await.unwrap();
    let s = ext.session().unwrap();
    assert_eq!(s.generation, 3, "adopted 2, then refreshed");
    assert_eq!(s.access_token.expose(), token.expose());
    assert!(s.is_fresh(std::time::SystemTime::now(), Duration::ZERO));
    let c = op.counters().await.unwrap();
    assert_eq!((c.refresh_grants, c.reuse_detections), (2, 0), "{c:?}");
}

/// A store call that never returns (a hung keychain) cannot hold the refresh lease of every
/// process: it fails as a retryable store error within the store timeout, the new tokens are
/// kept in memory, the lease is free for the next process, and the tokens are saved once the
/// store answers again.
#[tokio::test(flavor = "multi_thread")]
async fn a_hung_store_times_out_and_frees_the_lease() {
    use async_trait::async_trait;
    use latchkey::{FileSessionStore, SessionBlob, SessionStore, StoreError};
    use std::sync::atomic::{AtomicBool, Ordering};
    struct Hanging {
        inner: FileSessionStore,
        hang: AtomicBool,
    }
    #[async_trait]
    impl SessionStore for Hanging {
        async fn save(&self, account: &str, blob: &SessionBlob) -> Result<(), StoreError> {
            if self.hang.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            self.inner.save(account, blob).await
        }
        async fn load(&self, account: &str) -> Result<Option<SessionBlob>, StoreError> {
            self.inner.load(account).await
        }
        async fn clear(&self, account: &str) -> Result<(), StoreError> {
            self.inner.clear(account).await
        }
    }
    let op = provider(60).await;
    let dir = tempfile::tempdir().unwrap();
    prepare(&op, dir.path()).await;
    let store =
        Arc::new(Hanging { inner: FileSessionStore::new(dir.path()), hang: AtomicBool::new(true) });
    let mut config = test_config(op.issuer(), dir.path(), "app");
    config.store_timeout = Duration::from_millis(300);
    config.store_retry.max_attempts = 2;
    let app = Client::new(config, store.clone()).unwrap();
    let reg: latchkey::ClientRegistration =
        serde_json::from_slice(&std::fs::read(dir.path().join("registration.json")).unwrap())
            .unwrap();
    app.restore_registration(reg).unwrap();
    app.restore_session().await.unwrap().unwrap();
    let t = Instant::now();
    let err = app.refresh().await.unwrap_err();
    assert!(matches!(err, Error::Store { retryable: true, .. }), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
    // The lease is free at once for another process.
    let coord = Coordinator::open(
        dir.path().join("lock.db"),
        CoordinatorConfig::default(),
        Arc::new(SystemClock),
    )
    .unwrap();
    let lease = coord.try_acquire("default", "other").await.unwrap().expect("lease free");
    lease.release().await.unwrap();
    // The store answers again: the next call saves the tokens kept in memory.
    store.hang.store(false, Ordering::SeqCst);
    let token = app.access_token().await.unwrap();
    assert_eq!(app.session().unwrap().generation, 2);
    assert_eq!(committed_generation(dir.path()), 2);
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("session.json")).unwrap()).unwrap();
    assert_eq!(stored["generation"].as_u64(), Some(2));
    assert_eq!(app.session().unwrap().access_token.expose(), token.expose());
    let c = op.counters().await.unwrap();
    assert_eq!((c.refresh_grants, c.reuse_detections), (1, 0), "{c:?}");
}
