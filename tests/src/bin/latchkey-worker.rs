//! A worker process for the multi-process tests: restores the session from a
//! file-backed store in a shared state directory and asks for fresh tokens from several
//! tasks in a loop, printing one JSON object per line (events, then a summary).
//!
//! ```text
//! latchkey-worker --issuer URL --state-dir DIR --holder NAME [--tasks 8] [--duration-ms 30000]
//!                 [--interval-ms 50] [--fail-saves N] [--lease-ms 3000] [--margin-ms N]
//!                 [--reuse-interval-ms N] [--in-doubt-ms N] [--answered-limit-ms N]
//!                 [--sign-in USER] [--logout-after-ms N] [--settle-file PATH]
//! ```
//!
//! `--settle-file PATH`: once its callers have stopped, the worker prints `callers_done` and
//! waits (bounded, 30 s) for PATH to exist before it settles on the committed generation, so
//! a harness can hold every worker until no process is still inside a refresh.
//!
//! `--sign-in USER` signs in with the headless browser instead of restoring the stored
//! session (a failure prints `sign_in_failed` and exits 3); without it, an empty store prints
//! `no_session` and exits 0. `--logout-after-ms N` logs out after N ms (`logout_done` or
//! `logout_failed`).
//!
//! `LATCHKEY_WORKER_LOG=<filter>` (e.g. `latchkey=debug`) writes the library's logs to stderr.
//!
//! Fault points (`latchkey::faults`) are configured from the `FAILPOINTS` environment
//! variable, e.g. `FAILPOINTS='refresh::after_answered=1*return(abort)'`.
//! The registration is read from `DIR/registration.json`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use latchkey::{
    ClientRegistration, FileSessionStore, LifecycleEvent, SessionBlob, SessionEvent,
    SessionObserver, SessionStore, StoreError,
};
use latchkey_e2e::flow::test_config;
use serde_json::json;

struct Args {
    issuer: String,
    state_dir: std::path::PathBuf,
    holder: String,
    tasks: usize,
    duration: Duration,
    interval: Duration,
    fail_saves: u64,
    lease: Option<Duration>,
    margin: Option<Duration>,
    reuse_interval: Option<Duration>,
    in_doubt: Option<Duration>,
    answered_limit: Option<Duration>,
    sign_in: Option<String>,
    logout_after: Option<Duration>,
    settle_file: Option<std::path::PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        issuer: String::new(),
        state_dir: ".".into(),
        holder: "worker".into(),
        tasks: 8,
        duration: Duration::from_secs(30),
        interval: Duration::from_millis(50),
        fail_saves: 0,
        lease: None,
        margin: None,
        reuse_interval: None,
        in_doubt: None,
        answered_limit: None,
        sign_in: None,
        logout_after: None,
        settle_file: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|_| format!("{flag}: not a number"));
        match flag.as_str() {
            "--issuer" => a.issuer = val()?,
            "--state-dir" => a.state_dir = val()?.into(),
            "--holder" => a.holder = val()?,
            "--tasks" => a.tasks = num(val()?)? as usize,
            "--duration-ms" => a.duration = Duration::from_millis(num(val()?)?),
            "--interval-ms" => a.interval = Duration::from_millis(num(val()?)?),
            "--fail-saves" => a.fail_saves = num(val()?)?,
            "--lease-ms" => a.lease = Some(Duration::from_millis(num(val()?)?)),
            "--margin-ms" => a.margin = Some(Duration::from_millis(num(val()?)?)),
            "--reuse-interval-ms" => a.reuse_interval = Some(Duration::from_millis(num(val()?)?)),
            "--in-doubt-ms" => a.in_doubt = Some(Duration::from_millis(num(val()?)?)),
            "--answered-limit-ms" => a.answered_limit = Some(Duration::from_millis(num(val()?)?)),
            "--sign-in" => a.sign_in = Some(val()?),
            "--logout-after-ms" => a.logout_after = Some(Duration::from_millis(num(val()?)?)),
            "--settle-file" => a.settle_file = Some(val()?.into()),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.issuer.is_empty() {
        return Err("--issuer is required".into());
    }
    Ok(a)
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn now_ms() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

fn emit(v: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (the harness went away) ends the line silently.
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

struct Printer {
    counts: Mutex<BTreeMap<String, u64>>,
}

impl SessionObserver for Printer {
    fn on_event(&self, e: &SessionEvent) {
        let name = match e.event {
            LifecycleEvent::RefreshStarted => "refresh_started",
            LifecycleEvent::Refreshed => "refreshed",
            LifecycleEvent::Adopted => "adopted",
            LifecycleEvent::RefreshFailed => "refresh_failed",
            LifecycleEvent::ReauthRequired => "reauth_required",
            LifecycleEvent::LoggedOut => "logged_out",
            _ => return,
        };
        *self.counts.lock().unwrap().entry(name.into()).or_default() += 1;
        emit(json!({"event": name, "pid": std::process::id(), "t_ms": now_ms(),
                    "generation": e.generation, "detail": e.detail}));
    }
}

/// A store that fails its first N saves (retryably), then behaves like the file store.
struct FlakyStore {
    inner: FileSessionStore,
    failures_left: AtomicU64,
}

#[async_trait]
impl SessionStore for FlakyStore {
    async fn save(&self, account: &str, blob: &SessionBlob) -> Result<(), StoreError> {
        if self.failures_left.load(Ordering::SeqCst) > 0 {
            self.failures_left.fetch_sub(1, Ordering::SeqCst);
            return Err(StoreError::transient("injected save failure"));
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

#[tokio::main]
async fn main() {
    // `LATCHKEY_WORKER_LOG=debug` (an env filter): the library's logs on stderr, with
    // timestamps, for reading a cell of the fault matrix step by step.
    if let Ok(filter) = std::env::var("LATCHKEY_WORKER_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    now_ms();
    // Fault points from FAILPOINTS; kept for the life of the process.
    let _faults = fail::FailScenario::setup();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("latchkey-worker: {e}");
            std::process::exit(1);
        }
    };
    let mut config = test_config(&args.issuer, &args.state_dir, &args.holder);
    if let Some(l) = args.lease {
        config.lock.lease = l;
    }
    if let Some(m) = args.margin {
        config.refresh_margin = m;
    }
    config.reuse_interval = args.reuse_interval;
    config.in_doubt_wait = args.in_doubt;
    if let Some(l) = args.answered_limit {
        config.answered_limit = l;
    }
    let store = Arc::new(FlakyStore {
        inner: FileSessionStore::new(&args.state_dir),
        failures_left: AtomicU64::new(args.fail_saves),
    });
    let client = latchkey::Client::new(config, store).expect("client");
    let reg: ClientRegistration = serde_json::from_slice(
        &std::fs::read(args.state_dir.join("registration.json")).expect("registration.json"),
    )
    .expect("registration");
    client.restore_registration(reg).expect("registration issuer");
    let printer = Arc::new(Printer { counts: Mutex::new(BTreeMap::new()) });
    let _observer = client.add_observer(printer.clone());
    let session = match &args.sign_in {
        Some(user) => match latchkey_e2e::flow::sign_in(&client, user).await {
            Ok(s) => s,
            Err(e) => {
                emit(
                    json!({"event": "sign_in_failed", "pid": std::process::id(), "t_ms": now_ms(),
                            "retryable": e.is_retryable(), "message": e.to_string()}),
                );
                std::process::exit(3);
            }
        },
        None => match client.restore_session().await {
            Ok(Some(s)) => s,
            Ok(None) => {
                emit(json!({"event": "no_session", "pid": std::process::id(), "t_ms": now_ms()}));
                return;
            }
            Err(e) => {
                emit(
                    json!({"event": "restore_failed", "pid": std::process::id(), "t_ms": now_ms(),
                            "retryable": e.is_retryable(), "message": e.to_string()}),
                );
                std::process::exit(3);
            }
        },
    };
    emit(json!({"event": "ready", "pid": std::process::id(), "holder": args.holder,
                "generation": session.generation, "t_ms": now_ms()}));

    if let Some(after) = args.logout_after {
        let client = client.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            match client.logout(latchkey::LogoutOptions::default()).await {
                Ok(_) => emit(
                    json!({"event": "logout_done", "pid": std::process::id(), "t_ms": now_ms()}),
                ),
                Err(e) => emit(
                    json!({"event": "logout_failed", "pid": std::process::id(), "t_ms": now_ms(),
                                      "message": e.to_string()}),
                ),
            }
        });
    }
    let deadline = Instant::now() + args.duration;
    let calls = Arc::new(AtomicU64::new(0));
    let max_call_ms = Arc::new(AtomicU64::new(0));
    let errors: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let generations_seen: Arc<Mutex<Vec<u64>>> = Arc::default();
    let mut handles = Vec::new();
    for _ in 0..args.tasks {
        let client = client.clone();
        let (calls, max_call_ms, errors, gens) =
            (calls.clone(), max_call_ms.clone(), errors.clone(), generations_seen.clone());
        let interval = args.interval;
        handles.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let r = client.access_token().await;
                let ms = t0.elapsed().as_millis() as u64;
                max_call_ms.fetch_max(ms, Ordering::Relaxed);
                calls.fetch_add(1, Ordering::Relaxed);
                match r {
                    Ok(_) => {
                        if let Some(s) = client.session() {
                            let mut g = gens.lock().unwrap();
                            if g.last() != Some(&s.generation) {
                                g.push(s.generation);
                            }
                        }
                    }
                    Err(e) => {
                        let kind = format!("{e:?}").split([' ', '{', '(']).next().unwrap_or("?").to_string();
                        *errors.lock().unwrap().entry(kind.clone()).or_default() += 1;
                        emit(json!({"event": "error", "pid": std::process::id(), "t_ms": now_ms(),
                                    "kind": kind, "retryable": e.is_retryable(), "message": e.to_string()}));
                        if e.requires_reauthentication() {
                            return;
                        }
                    }
                }
                tokio::time::sleep(interval).await;
            }
        }));
    }
    // Once a second: the slowest call so far, so a harness that kills this process still
    // knows how long its callers waited.
    let stats = {
        let (calls, max_call_ms) = (calls.clone(), max_call_ms.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                emit(json!({"event": "stats", "pid": std::process::id(), "t_ms": now_ms(),
                            "calls": calls.load(Ordering::Relaxed),
                            "max_call_ms": max_call_ms.load(Ordering::Relaxed)}));
            }
        })
    };
    for h in handles {
        let _ = h.await;
    }
    stats.abort();
    emit(json!({"event": "callers_done", "pid": std::process::id(), "t_ms": now_ms()}));
    if let Some(path) = &args.settle_file {
        // Bounded: 30 s, then settle anyway.
        for _ in 0..600 {
            if path.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Settle on the committed generation once every worker's callers have stopped, so the
    // summary says whether this process converged (a fresh token is otherwise served from
    // memory, I6, without looking): sync until the generation stayed the same for ~1 s (a
    // refresh another process started just before its deadline may still commit). Bounded.
    let mut last = None;
    let mut stable = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let generation = match client.sync().await {
            Ok(s) => s.map(|s| s.generation),
            Err(e) => {
                emit(json!({"event": "error", "pid": std::process::id(), "t_ms": now_ms(),
                            "kind": "final_sync", "retryable": e.is_retryable(), "message": e.to_string()}));
                if !e.is_retryable() {
                    break;
                }
                None
            }
        };
        if generation.is_some() && generation == last {
            stable += 1;
            if stable >= 3 {
                break;
            }
        } else {
            stable = 0;
            last = generation;
        }
    }
    let gens = generations_seen.lock().unwrap().clone();
    let monotonic = gens.windows(2).all(|w| w[0] < w[1]);
    emit(json!({
        "event": "summary",
        "pid": std::process::id(),
        "holder": args.holder,
        "calls": calls.load(Ordering::Relaxed),
        "max_call_ms": max_call_ms.load(Ordering::Relaxed),
        "errors": *errors.lock().unwrap(),
        "events": *printer.counts.lock().unwrap(),
        "generations_monotonic": monotonic,
        "final_generation": client.session().map(|s| s.generation),
        "state": format!("{:?}", client.state()),
    }));
}
