//! Benchmark (figures, not a test; run by `scripts/bench.sh storm`): a refresh storm at
//! expiry against the real node-oidc-provider. N `latchkey-worker` processes × M tasks ask
//! for a token the moment it expires, either sharing one state directory (Latchkey's
//! coordination) or each with a copy of it and no shared database (per-process refresh, the
//! way AppAuth / Auth0 SDKs refresh today). Prints a markdown table.
//!
//! ```text
//! latchkey-storm-bench [--processes 2,4,8,16] [--tasks 8] [--ttl-secs 4]
//! latchkey-storm-bench --footprint PATH-OF-THE-latchkey-CLI [--runs 20] [--profile release]
//! latchkey-storm-bench --accounts 1,10,100,1000
//! ```
//!
//! `--accounts`: one coordination database holding N accounts (lease, generation row each;
//! one of them signed in for real): its size, and the refresh and `sync()` times of that one.
//!
//! `--footprint`: peak RSS and wall time of fresh `latchkey` CLI processes against a signed-in
//! state directory: `status` (restores the session), `token` with a fresh token (cold start
//! to the first token), `refresh` (restores and refreshes once). `--profile` only names the
//! build profile of that CLI in the table.
//!
//! Needs tests/op/node_modules (`scripts/lib/test-provider.sh`). The worker binary is found
//! next to this one (build both: `cargo build -p latchkey-e2e --bins`).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use latchkey_e2e::flow::{register, sign_in, test_config};
use latchkey_e2e::op::{ProviderOptions, TestProvider};
use latchkey_e2e::workers::{write_registration, Worker, WorkerSpec};
use serde_json::Value;

fn list_arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn worker_bin() -> PathBuf {
    std::env::current_exe().expect("own path").with_file_name("latchkey-worker")
}

/// Registers and signs alice in (a new grant), leaving the state files in `dir`.
async fn prepare(op: &TestProvider, dir: &Path) {
    let c = latchkey_e2e::flow::file_client(test_config(op.issuer(), dir, "setup"), dir).unwrap();
    let reg = register(&c, None).await.unwrap();
    sign_in(&c, "alice").await.unwrap();
    write_registration(dir, &reg);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The first string under `key` anywhere in `v`.
fn find_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    match v {
        Value::Object(m) => {
            m.get(key).and_then(Value::as_str).or_else(|| m.values().find_map(|x| find_str(x, key)))
        }
        Value::Array(a) => a.iter().find_map(|x| find_str(x, key)),
        _ => None,
    }
}

/// The provider's own token endpoint latency: `count` chained refresh_token grants sent
/// directly (one HTTP client, connection reused), starting from the refresh token in `dir`.
async fn endpoint_latency_ms(op: &TestProvider, dir: &Path, count: usize) -> Vec<f64> {
    let http = reqwest::Client::builder().build().unwrap();
    let meta: Value = http.get(op.discovery_url()).send().await.unwrap().json().await.unwrap();
    let endpoint = meta["token_endpoint"].as_str().unwrap().to_string();
    let reg: Value =
        serde_json::from_slice(&std::fs::read(dir.join("registration.json")).unwrap()).unwrap();
    let client_id = find_str(&reg, "client_id").unwrap().to_string();
    let session = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("session"))
        .map(|e| std::fs::read(e.path()).unwrap())
        .unwrap();
    let session: Value = serde_json::from_slice(&session).unwrap();
    let mut refresh = find_str(&session, "refresh_token").unwrap().to_string();
    let mut out = Vec::new();
    for _ in 0..count {
        let t = Instant::now();
        let r: Value = http
            .post(&endpoint)
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
                ("client_id", client_id.as_str()),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        out.push(t.elapsed().as_secs_f64() * 1000.0);
        match r["refresh_token"].as_str() {
            Some(next) => refresh = next.to_string(),
            None => break,
        }
    }
    out
}

struct Run {
    grants_at_expiry: u64,
    reuse: u64,
    revoked: u64,
    alive: usize,
    all_hold_ms: f64,
    max_call_ms: u64,
}

/// One storm: `n` workers with `tasks` tasks from the moment the token (TTL `ttl`) was
/// issued until after its second expiry.
async fn storm(op: &TestProvider, n: usize, tasks: usize, ttl: u64, shared: bool) -> Run {
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("shared");
    std::fs::create_dir_all(&base).unwrap();
    prepare(op, &base).await;
    let issued = Instant::now();
    op.reset().await.unwrap();
    let duration = (ttl * 2 * 1000 + 1500).to_string();
    let args = ["--tasks", &tasks.to_string(), "--duration-ms", &duration, "--interval-ms", "10"]
        .map(String::from)
        .to_vec();
    let mut args = args;
    args.extend(["--margin-ms".to_string(), "0".to_string()]);
    let mut workers: Vec<Worker> = (0..n)
        .map(|i| {
            let dir = if shared {
                base.clone()
            } else {
                let d = root.path().join(format!("copy{i}"));
                copy_dir(&base, &d);
                d
            };
            WorkerSpec {
                bin: worker_bin(),
                issuer: op.issuer().to_string(),
                state_dir: dir,
                args: args.clone(),
            }
            .spawn(&format!("w{i}"))
        })
        .collect();
    // The first expiry, then 1.5 s for the storm to settle: the grants it cost.
    let settle = issued + Duration::from_secs(ttl) + Duration::from_millis(1500);
    tokio::time::sleep(settle.saturating_duration_since(Instant::now())).await;
    let first = op.counters().await.unwrap();
    let read_at_ms = issued.elapsed().as_secs_f64() * 1000.0;
    let mut summaries = Vec::new();
    for w in &mut workers {
        summaries.push(w.summary(Duration::from_secs(ttl * 2 + 60)).expect("worker summary"));
    }
    let started = workers
        .iter()
        .flat_map(|w| w.events("refresh_started"))
        .map(|(t, _)| t)
        .min()
        .unwrap_or(settle);
    let holds = workers.iter().filter_map(|w| {
        w.lines()
            .into_iter()
            .find(|(_, v)| {
                (v["event"] == "refreshed" || v["event"] == "adopted") && v["generation"] == 2
            })
            .map(|(t, _)| t)
    });
    let last = holds.max();
    let all_hold_ms = match last {
        Some(t)
            if workers.iter().all(|w| {
                w.lines().iter().any(|(_, v)| {
                    (v["event"] == "refreshed" || v["event"] == "adopted") && v["generation"] == 2
                })
            }) =>
        {
            t.saturating_duration_since(started).as_secs_f64() * 1000.0
        }
        _ => f64::NAN,
    };
    let alive = summaries
        .iter()
        .filter(|s| s["state"] == "Authenticated" && s["errors"].get("ReauthRequired").is_none())
        .count();
    let max_call_ms = summaries.iter().filter_map(|s| s["max_call_ms"].as_u64()).max().unwrap_or(0);
    let end = op.counters().await.unwrap();
    // STORM_BENCH_TRACE=1: every worker's refresh events, to see who refreshed when.
    if std::env::var_os("STORM_BENCH_TRACE").is_some() {
        for w in &workers {
            for (t, v) in w.lines() {
                if v["event"] != "stats" && v["event"] != "summary" {
                    eprintln!(
                        "{} +{:.1} ms {v}",
                        w.holder,
                        t.saturating_duration_since(issued).as_secs_f64() * 1000.0
                    );
                }
            }
        }
        eprintln!("counters read at +{read_at_ms:.0} ms: {first:?}");
    }
    Run {
        grants_at_expiry: first.refresh_grants,
        reuse: first.reuse_detections,
        revoked: end.grants_revoked,
        alive,
        all_hold_ms,
        max_call_ms,
    }
}

/// Runs `cli args…` once under /usr/bin/time: (wall ms, peak RSS KiB, success).
fn timed(cli: &Path, dir: &Path, args: &[&str]) -> (f64, u64, bool) {
    let rss_file = dir.join("rss.txt");
    let t = Instant::now();
    let status = std::process::Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .arg(cli)
        .arg("--state-dir")
        .arg(dir)
        .arg("--insecure-loopback")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("/usr/bin/time");
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    let rss = std::fs::read_to_string(&rss_file)
        .ok()
        .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0);
    (ms, rss, status.success())
}

/// Cold start (wall time of the whole process, median) and peak RSS (max) of the CLI.
async fn footprint(cli: &Path, profile: &str, runs: usize) {
    let op =
        TestProvider::start(ProviderOptions { access_token_ttl_secs: 3600, ..Default::default() })
            .await
            .expect("test provider");
    let dir = tempfile::tempdir().unwrap();
    prepare(&op, dir.path()).await;
    println!("| process (`latchkey` CLI, profile `{profile}`) | wall time, median of {runs} (min) | peak RSS, max | all succeeded |");
    println!("|---|---:|---:|---|");
    for (name, args) in [
        ("`status`: restore the session, print it", vec!["status"]),
        ("`token`: restore, print the fresh token (cold start to the first token)", vec!["token"]),
        ("`refresh`: restore, refresh once against the provider", vec!["refresh"]),
    ] {
        let (mut walls, mut peak, mut ok) = (Vec::new(), 0, true);
        for _ in 0..runs {
            let (ms, rss, success) = timed(cli, dir.path(), &args);
            walls.push(ms);
            peak = peak.max(rss);
            ok &= success;
        }
        walls.sort_by(f64::total_cmp);
        println!(
            "| {name} | {:.1} ms ({:.1} ms) | {:.1} MB | {} |",
            walls[walls.len() / 2],
            walls[0],
            peak as f64 / 1024.0,
            if ok { "yes" } else { "NO" }
        );
    }
}

/// Database size, refresh and `sync()` time with `n` accounts in one coordination database.
async fn accounts(counts: &[usize]) {
    let op =
        TestProvider::start(ProviderOptions { access_token_ttl_secs: 3600, ..Default::default() })
            .await
            .expect("test provider");
    println!("| accounts in one database | lock.db + WAL size | `refresh()`, median of 10 | `sync()`, median of 200 |");
    println!("|---:|---:|---:|---:|");
    for &n in counts {
        let dir = tempfile::tempdir().unwrap();
        prepare(&op, dir.path()).await;
        let coord = latchkey::internals::Coordinator::open(
            dir.path().join("lock.db"),
            latchkey::CoordinatorConfig::default(),
            std::sync::Arc::new(latchkey::SystemClock),
        )
        .unwrap();
        let hash = "0".repeat(64);
        for i in 1..n {
            let account = format!("user-{i:04}@example");
            let lease = coord.acquire(&account, "filler").await.unwrap();
            coord.register(&account, 1, &hash).await.unwrap();
            lease.release().await.unwrap();
        }
        drop(coord);
        let client = latchkey_e2e::flow::file_client(
            test_config(op.issuer(), dir.path(), "bench"),
            dir.path(),
        )
        .unwrap();
        let reg: latchkey::ClientRegistration =
            serde_json::from_slice(&std::fs::read(dir.path().join("registration.json")).unwrap())
                .unwrap();
        client.restore_registration(reg).unwrap();
        client.restore_session().await.unwrap().expect("session");
        let mut refresh = Vec::new();
        for _ in 0..10 {
            let t = Instant::now();
            client.refresh().await.unwrap();
            refresh.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let mut sync = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            client.sync().await.unwrap();
            sync.push(t.elapsed().as_secs_f64() * 1e6);
        }
        refresh.sort_by(f64::total_cmp);
        sync.sort_by(f64::total_cmp);
        let size =
            |name: &str| std::fs::metadata(dir.path().join(name)).map(|m| m.len()).unwrap_or(0);
        println!(
            "| {n} | {:.0} KiB + {:.0} KiB | {:.2} ms | {:.0} µs |",
            size("lock.db") as f64 / 1024.0,
            size("lock.db-wal") as f64 / 1024.0,
            refresh[refresh.len() / 2],
            sync[sync.len() / 2]
        );
    }
}

#[tokio::main]
async fn main() {
    let counts = list_arg("--accounts", "");
    if !counts.is_empty() {
        let counts: Vec<usize> =
            counts.split(',').map(|s| s.trim().parse().expect("--accounts: numbers")).collect();
        accounts(&counts).await;
        return;
    }
    let cli = list_arg("--footprint", "");
    if !cli.is_empty() {
        let runs: usize = list_arg("--runs", "20").parse().expect("--runs");
        footprint(Path::new(&cli), &list_arg("--profile", "release"), runs).await;
        return;
    }
    let processes: Vec<usize> = list_arg("--processes", "2,4,8,16")
        .split(',')
        .map(|s| s.trim().parse().expect("--processes: numbers"))
        .collect();
    let tasks: usize = list_arg("--tasks", "8").parse().expect("--tasks");
    let ttl: u64 = list_arg("--ttl-secs", "4").parse().expect("--ttl-secs");
    let op =
        TestProvider::start(ProviderOptions { access_token_ttl_secs: ttl, ..Default::default() })
            .await
            .expect("test provider");
    // The provider's own latency, on a grant of its own.
    let lat_dir = tempfile::tempdir().unwrap();
    prepare(&op, lat_dir.path()).await;
    let mut lat = endpoint_latency_ms(&op, lat_dir.path(), 20).await;
    lat.sort_by(f64::total_cmp);
    let lat_med = lat.get(lat.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "| N processes × {tasks} tasks | coordination | refresh grants at expiry | reuse detections | grants revoked | sessions alive after the next expiry | every process holds the new token | slowest caller | vs token endpoint median ({lat_med:.1} ms) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &processes {
        for shared in [true, false] {
            let r = storm(&op, n, tasks, ttl, shared).await;
            let mode = if shared {
                "Latchkey, one shared directory"
            } else {
                "per process (copied directories, no shared database)"
            };
            let hold = if r.all_hold_ms.is_nan() {
                "never (not every process got it)".to_string()
            } else {
                format!("{:.1} ms", r.all_hold_ms)
            };
            let ratio = if r.all_hold_ms.is_nan() {
                "—".to_string()
            } else {
                format!("{:.1}×", r.all_hold_ms / lat_med)
            };
            println!(
                "| {n} × {tasks} | {mode} | {} | {} | {} | {} of {n} | {hold} | {} ms | {ratio} |",
                r.grants_at_expiry, r.reuse, r.revoked, r.alive, r.max_call_ms
            );
        }
    }
}
