//! `watch`: keeps the access token fresh for a while, as an app process would, and reports
//! every refresh, adoption and error as one JSON line, then a summary line.
//!
//! Event lines (stdout), all with `holder`, `pid`, `t` (seconds since start) and `at_ms`
//! (Unix milliseconds):
//! - `started`: `generation`, `expires_in`, `tasks`, `duration`
//! - `refreshed`: this process used the refresh token; `generation` is the new one
//! - `adopted`: this process took the generation another process committed
//! - `refresh_failed`: a refresh failed transiently (session kept); `detail`
//! - `error`: a token request failed; `kind`, `message`, `retryable`
//! - `session_ended`: the session ended (reauthentication required or logged out); `kind`,
//!   `message`
//!
//! and finally `{"summary": {...}}`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use latchkey::{LifecycleEvent, SessionEvent, SessionObserver};
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use crate::cli::{Global, WatchArgs};
use crate::error::{self, CliError};
use crate::output::{expires_in, line, now_ms};
use crate::state;

/// Prints event lines, around the progress bar when there is one.
struct Printer {
    bar: Option<ProgressBar>,
}

impl Printer {
    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| line(text)),
            None => line(text),
        }
    }
}

/// What every task and the observer share.
struct Shared {
    start: Instant,
    holder: String,
    pid: u32,
    calls: AtomicU64,
    refreshed: AtomicU64,
    adopted: AtomicU64,
    refresh_failed: AtomicU64,
    errors: AtomicU64,
    generation: AtomicU64,
    slowest_call_ms: AtomicU64,
    stop: AtomicBool,
    /// The error that stopped the watch (session ended or a non-transient failure).
    fatal: Mutex<Option<CliError>>,
    out: Printer,
}

impl Shared {
    fn event(&self, name: &str, fields: Value) {
        let mut obj = Map::new();
        obj.insert("event".into(), json!(name));
        obj.insert("holder".into(), json!(self.holder));
        obj.insert("pid".into(), json!(self.pid));
        let t = self.start.elapsed().as_millis() as f64 / 1000.0;
        obj.insert("t".into(), json!(t));
        obj.insert("at_ms".into(), json!(now_ms()));
        if let Value::Object(m) = fields {
            obj.extend(m.into_iter().filter(|(_, v)| !v.is_null()));
        }
        self.out.line(&Value::Object(obj).to_string());
    }

    /// Records the first fatal error and stops every task.
    fn fail(&self, event: &str, e: CliError) {
        let mut guard = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            self.event(event, json!({"kind": e.kind, "message": e.message, "exit_code": e.code}));
            *guard = Some(e);
        }
        self.stop.store(true, Ordering::SeqCst);
    }

    fn progress(&self, duration: f64) -> String {
        format!(
            "{:>5.1}/{duration} s  generation {}  refreshed {}  adopted {}  errors {}",
            self.start.elapsed().as_secs_f64(),
            self.generation.load(Ordering::Relaxed),
            self.refreshed.load(Ordering::Relaxed),
            self.adopted.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed) + self.refresh_failed.load(Ordering::Relaxed),
        )
    }
}

struct Observer(Arc<Shared>);

impl SessionObserver for Observer {
    fn on_event(&self, ev: &SessionEvent) {
        let s = &self.0;
        let (name, counter) = match ev.event {
            LifecycleEvent::Refreshed => ("refreshed", &s.refreshed),
            LifecycleEvent::Adopted => ("adopted", &s.adopted),
            LifecycleEvent::RefreshFailed => ("refresh_failed", &s.refresh_failed),
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(g) = ev.generation {
            s.generation.fetch_max(g, Ordering::Relaxed);
        }
        s.event(name, json!({"generation": ev.generation, "detail": ev.detail}));
    }
}

fn progress_bar(holder: &str, duration: f64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let style = ProgressStyle::with_template("{spinner} {prefix} [{bar:24}] {msg}").ok()?;
    let total = (duration * 1000.0) as u64;
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
        .with_style(style.progress_chars("=> "))
        .with_prefix(holder.to_string());
    Some(bar)
}

pub async fn watch(g: &Global, args: WatchArgs) -> Result<(), CliError> {
    let (client, session) = state::session_client(g).await?;
    let duration = Duration::from_secs_f64(args.duration);
    let shared = Arc::new(Shared {
        start: Instant::now(),
        holder: g.holder.clone(),
        pid: std::process::id(),
        calls: AtomicU64::new(0),
        refreshed: AtomicU64::new(0),
        adopted: AtomicU64::new(0),
        refresh_failed: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        generation: AtomicU64::new(session.generation),
        slowest_call_ms: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        fatal: Mutex::new(None),
        out: Printer { bar: progress_bar(&g.holder, args.duration) },
    });
    let _observer = client.add_observer(Arc::new(Observer(shared.clone())));
    shared.event(
        "started",
        json!({
            "generation": session.generation,
            "expires_in": expires_in(session.expires_at_ms),
            "tasks": args.tasks,
            "duration": args.duration,
        }),
    );
    let deadline = shared.start + duration;
    let interval = Duration::from_millis(args.interval_ms);
    let min_ttl = Duration::from_secs(args.min_ttl);
    let mut tasks = Vec::new();
    for _ in 0..args.tasks {
        let client = client.clone();
        let s = shared.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline && !s.stop.load(Ordering::SeqCst) {
                let t0 = Instant::now();
                let result = client.access_token_with_min_ttl(min_ttl).await;
                s.slowest_call_ms.fetch_max(t0.elapsed().as_millis() as u64, Ordering::Relaxed);
                s.calls.fetch_add(1, Ordering::Relaxed);
                match result {
                    // The token itself is never printed.
                    Ok(_) => {}
                    Err(e) if e.requires_reauthentication() => {
                        s.fail("session_ended", CliError::lib("the session has ended", &e));
                        break;
                    }
                    Err(e) if e.is_retryable() => {
                        s.errors.fetch_add(1, Ordering::Relaxed);
                        s.event(
                            "error",
                            json!({
                                "kind": error::kind(&e),
                                "message": e.to_string(),
                                "retryable": true,
                            }),
                        );
                    }
                    Err(e) => {
                        s.errors.fetch_add(1, Ordering::Relaxed);
                        s.fail("error", CliError::lib("no fresh access token", &e));
                        break;
                    }
                }
                // Jitter (±50 %) so the processes do not poll in lockstep: whoever notices
                // first refreshes, the others adopt.
                let pause = interval.mul_f64(rand::random_range(0.5..1.5));
                tokio::time::sleep_until((Instant::now() + pause).min(deadline)).await;
            }
        }));
    }
    let ticker = shared.out.bar.clone().map(|bar| {
        let s = shared.clone();
        let total = args.duration;
        tokio::spawn(async move {
            loop {
                bar.set_position(s.start.elapsed().as_millis() as u64);
                bar.set_message(s.progress(total));
                bar.tick();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });
    for t in tasks {
        if let Err(e) = t.await {
            shared.fail(
                "error",
                CliError::new(
                    error::EXIT_PROTOCOL,
                    "internal",
                    format!("a watch task failed: {e}"),
                ),
            );
        }
    }
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(bar) = &shared.out.bar {
        bar.finish_and_clear();
    }
    let fatal = shared.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let final_generation =
        client.session().map(|s| s.generation).unwrap_or(shared.generation.load(Ordering::Relaxed));
    let summary = json!({"summary": {
        "holder": shared.holder,
        "pid": shared.pid,
        "duration": shared.start.elapsed().as_millis() as f64 / 1000.0,
        "tasks": args.tasks,
        "calls": shared.calls.load(Ordering::Relaxed),
        "refreshed": shared.refreshed.load(Ordering::Relaxed),
        "adopted": shared.adopted.load(Ordering::Relaxed),
        "refresh_failed": shared.refresh_failed.load(Ordering::Relaxed),
        "errors": shared.errors.load(Ordering::Relaxed),
        "first_generation": session.generation,
        "final_generation": final_generation,
        "slowest_call_ms": shared.slowest_call_ms.load(Ordering::Relaxed),
        "session_ended": fatal.as_ref().filter(|e| e.code == error::EXIT_REAUTH).map(|e| e.kind.clone()),
        "exit_code": fatal.as_ref().map(|e| e.code).unwrap_or(0),
    }});
    shared.out.line(&summary.to_string());
    match fatal {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
