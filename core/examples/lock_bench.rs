//! Benchmark of the cross-process lease lock with real processes (this binary re-executes
//! itself for each child role).
//!
//! ```text
//! cargo run --release -p latchkey --features internals --example lock_bench -- [all|handoff|storm|renewal|uncontended|wait] [--quick]
//! ```
//!
//! Prints a markdown table on stdout, for quick runs of Latchkey's side alone (e.g. while
//! tuning polling with `LOCK_BENCH_POLL_US`). `scripts/bench.sh` writes BENCHMARKS.md from
//! `bench/` instead, which measures matrix-rust-sdk's lock in the same run.
//!
//! - handoff: two processes take turns (hold 5 ms, pause 1–3 ms); for every acquisition
//!   whose waiter was already waiting when the previous holder started releasing, the time
//!   from "holder calls `release`" to "waiter's `acquire` returned" (wall clock, µs).
//! - storm: N processes, all ready with the database open, start together (a start time
//!   sent on stdin), each acquires once (default 10 s timeout) and holds 10 ms. Wall time
//!   from the start to the last `release` returning; timeouts; overlapping holds.
//! - renewal: a child holds a lease (default timings) for 10 s while this process counts
//!   the commits made to the file (`PRAGMA data_version` changes, polled every 1 ms).
//! - wait: a process waits for a lease another process holds for 3 s; its thread wake-ups
//!   per second while waiting (voluntary + involuntary context switches of all its threads,
//!   from /proc, Linux only) and the handoff after that long hold. Not part of `all`.
//! - uncontended: acquire + release in one process, against a bare write transaction
//!   (`BEGIN IMMEDIATE; UPDATE; COMMIT`) on the same kind of file, called directly and
//!   through `spawn_blocking` as an async caller must.

use std::error::Error as StdError;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use latchkey::internals::Coordinator;
use latchkey::CoordinatorConfig;
use latchkey::{Error, SystemClock};
use rand::Rng as _;

type Res<T> = Result<T, Box<dyn StdError + Send + Sync>>;

const ACCOUNT: &str = "bench@example";

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// The default timings, except `poll_interval` when `LOCK_BENCH_POLL_US` is set (children
/// inherit it), to compare polling intervals.
fn open(path: &Path) -> Res<Coordinator> {
    let mut config = CoordinatorConfig::default();
    if let Ok(us) = std::env::var("LOCK_BENCH_POLL_US") {
        config.poll_interval = Duration::from_micros(us.parse()?);
    }
    Ok(Coordinator::open(path, config, Arc::new(SystemClock))?)
}

fn runtime() -> Res<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

fn holder() -> String {
    format!("bench-{}-{:08x}", std::process::id(), rand::rng().random::<u32>())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mode = args.iter().find(|a| !a.starts_with("--")).map(String::as_str).unwrap_or("all");
    match mode {
        "child-handoff" => child_handoff(&args[1..]),
        "child-storm" => child_storm(&args[1..]),
        "child-hold" => child_hold(&args[1..]),
        "child-hold-rel" => child_hold_rel(&args[1..]),
        "child-wait" => child_wait(&args[1..]),
        "all" | "handoff" | "storm" | "renewal" | "uncontended" | "wait" => parent(mode, quick),
        other => Err(format!("unknown scenario `{other}`").into()),
    }
}

// ----------------------------------------------------------------------------------------
// Children
// ----------------------------------------------------------------------------------------

fn arg(args: &[String], i: usize) -> Res<&str> {
    Ok(args.get(i).ok_or("missing argument")?.as_str())
}

fn child_handoff(args: &[String]) -> Res<()> {
    let path = PathBuf::from(arg(args, 0)?);
    let iterations: usize = arg(args, 1)?.parse()?;
    let rt = runtime()?;
    rt.block_on(async {
        let c = open(&path)?;
        let holder = holder();
        let mut out = String::new();
        for _ in 0..iterations {
            let t_wait = now_us();
            let lease = c.acquire(ACCOUNT, &holder).await?;
            let t_acq = now_us();
            tokio::time::sleep(Duration::from_millis(5)).await;
            let t_rel = now_us();
            let fence = lease.fence();
            lease.release().await?;
            out.push_str(&format!("ACQ {fence} {t_wait} {t_acq}\nREL {fence} {t_rel}\n"));
            let gap = rand::rng().random_range(1_000..=3_000);
            tokio::time::sleep(Duration::from_micros(gap)).await;
        }
        print!("{out}");
        std::io::stdout().flush()?;
        Ok(())
    })
}

fn child_storm(args: &[String]) -> Res<()> {
    let path = PathBuf::from(arg(args, 0)?);
    let account = arg(args, 1)?.to_owned();
    let rt = runtime()?;
    rt.block_on(async {
        let c = open(&path)?;
        c.generation(&account).await?; // connection open and warm
        println!("READY");
        std::io::stdout().flush()?;
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        let start_us: i64 = line.trim().parse()?;
        let wait = u64::try_from(start_us - now_us()).unwrap_or(0);
        tokio::time::sleep(Duration::from_micros(wait)).await;
        match c.acquire(&account, &holder()).await {
            Ok(lease) => {
                let t_acq = now_us();
                // Exactly 10 ms: Tokio's timer would round up to the next millisecond tick.
                std::thread::sleep(Duration::from_millis(10));
                let t_rel = now_us();
                lease.release().await?;
                println!("OK {t_acq} {t_rel} {}", now_us());
            }
            Err(Error::LockTimeout) => println!("TIMEOUT"),
            Err(e) => return Err(e.into()),
        }
        std::io::stdout().flush()?;
        Ok(())
    })
}

fn child_hold(args: &[String]) -> Res<()> {
    let path = PathBuf::from(arg(args, 0)?);
    let hold_ms: u64 = arg(args, 1)?.parse()?;
    let rt = runtime()?;
    rt.block_on(async {
        let c = open(&path)?;
        let lease = c.acquire(ACCOUNT, &holder()).await?;
        println!("ACQ");
        std::io::stdout().flush()?;
        tokio::time::sleep(Duration::from_millis(hold_ms)).await;
        println!("REL");
        std::io::stdout().flush()?;
        // Let the observer stop counting before the release commit.
        tokio::time::sleep(Duration::from_millis(200)).await;
        lease.release().await?;
        Ok(())
    })
}

/// Holds the lease `hold_ms`, then prints `REL <µs>` right before releasing it.
fn child_hold_rel(args: &[String]) -> Res<()> {
    let path = PathBuf::from(arg(args, 0)?);
    let hold_ms: u64 = arg(args, 1)?.parse()?;
    let rt = runtime()?;
    rt.block_on(async {
        let c = open(&path)?;
        let lease = c.acquire(ACCOUNT, &holder()).await?;
        println!("ACQ");
        std::io::stdout().flush()?;
        tokio::time::sleep(Duration::from_millis(hold_ms)).await;
        println!("REL {}", now_us());
        std::io::stdout().flush()?;
        lease.release().await?;
        Ok(())
    })
}

/// Context switches (voluntary + involuntary) of every thread of this process so far.
fn context_switches() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let status = std::fs::read_to_string(task.ok()?.path().join("status")).ok()?;
        for line in status.lines() {
            if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += v.trim().parse::<u64>().ok()?;
            }
        }
    }
    Some(total)
}

/// Waits for the lease held by another process once told to start; prints
/// `WAITED <t_acq µs> <waited ms> <context switches while waiting>`.
fn child_wait(args: &[String]) -> Res<()> {
    let path = PathBuf::from(arg(args, 0)?);
    let rt = runtime()?;
    rt.block_on(async {
        let c = open(&path)?;
        c.generation(ACCOUNT).await?; // connection open and warm
        println!("READY");
        std::io::stdout().flush()?;
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        let before = context_switches();
        let t0 = Instant::now();
        let lease = c.acquire(ACCOUNT, &holder()).await?;
        let t_acq = now_us();
        let waited = t0.elapsed();
        let after = context_switches();
        let switches = match (before, after) {
            (Some(b), Some(a)) => (a - b).to_string(),
            _ => "NaN".to_string(),
        };
        lease.release().await?;
        println!("WAITED {t_acq} {} {switches}", waited.as_secs_f64() * 1000.0);
        std::io::stdout().flush()?;
        Ok(())
    })
}

// ----------------------------------------------------------------------------------------
// Parent
// ----------------------------------------------------------------------------------------

struct Row {
    scenario: String,
    metric: String,
    value: String,
    anchor: String,
    target: String,
}

fn row(scenario: &str, metric: &str, value: String, anchor: &str, target: &str) -> Row {
    Row {
        scenario: scenario.into(),
        metric: metric.into(),
        value,
        anchor: anchor.into(),
        target: target.into(),
    }
}

fn spawn(args: &[&str], stdin: bool) -> Res<Child> {
    let exe = std::env::current_exe()?;
    Ok(Command::new(exe)
        .args(args)
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn parent(mode: &str, quick: bool) -> Res<()> {
    let dir = tempfile::tempdir()?;
    let mut rows = Vec::new();
    let started = Instant::now();
    if matches!(mode, "all" | "handoff") {
        rows.extend(bench_handoff(dir.path(), if quick { 40 } else { 150 })?);
    }
    if matches!(mode, "all" | "storm") {
        rows.extend(bench_storm(dir.path(), if quick { 2 } else { 10 })?);
    }
    if matches!(mode, "all" | "renewal") {
        rows.extend(bench_renewal(dir.path(), if quick { 3_000 } else { 10_000 })?);
    }
    if mode == "wait" {
        rows.extend(bench_wait(dir.path(), 3_000, if quick { 1 } else { 3 })?);
    }
    if matches!(mode, "all" | "uncontended") {
        rows.extend(bench_uncontended(dir.path(), if quick { 300 } else { 3_000 })?);
    }
    // The anchor column is typed in from another day's run; `scripts/bench.sh` (bench/)
    // measures matrix-rust-sdk in the same run, which is what ratios must be taken from.
    println!(
        "| scenario | metric | Latchkey | matrix-rust-sdk, another day (not this run) | target |"
    );
    println!("|---|---|---:|---:|---|");
    for r in &rows {
        println!("| {} | {} | {} | {} | {} |", r.scenario, r.metric, r.value, r.anchor, r.target);
    }
    eprintln!("lock_bench finished in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn bench_handoff(dir: &Path, iterations: usize) -> Res<Vec<Row>> {
    let path = dir.join("handoff.sqlite");
    drop(open(&path)?);
    let n = iterations.to_string();
    let p = path.display().to_string();
    let children: Vec<Child> =
        (0..2).map(|_| spawn(&["child-handoff", &p, &n], false)).collect::<Res<_>>()?;
    let mut acq = std::collections::HashMap::new(); // fence -> (t_wait, t_acq)
    let mut rel = std::collections::HashMap::new(); // fence -> t_rel
    for child in children {
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(format!("handoff child failed: {}", out.status).into());
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                ["ACQ", fence, w, a] => {
                    acq.insert(fence.parse::<u64>()?, (w.parse::<i64>()?, a.parse::<i64>()?));
                }
                ["REL", fence, r] => {
                    rel.insert(fence.parse::<u64>()?, r.parse::<i64>()?);
                }
                _ => {}
            }
        }
    }
    let mut lat: Vec<f64> = acq
        .iter()
        .filter_map(|(fence, (t_wait, t_acq))| {
            let t_rel = *rel.get(&fence.checked_sub(1)?)?;
            (*t_wait < t_rel).then(|| (t_acq - t_rel) as f64 / 1000.0)
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    let count = format!("{} handoffs", lat.len());
    Ok(vec![
        row(
            "handoff between 2 processes",
            &format!("median ({count})"),
            format!("{:.2} ms", percentile(&lat, 50.0)),
            "97.7 ms",
            "≤ 5 ms",
        ),
        row(
            "handoff between 2 processes",
            "p99",
            format!("{:.2} ms", percentile(&lat, 99.0)),
            "213 ms",
            "≤ 20 ms",
        ),
        row(
            "handoff between 2 processes",
            "max",
            format!("{:.2} ms", lat.last().copied().unwrap_or(f64::NAN)),
            "—",
            "—",
        ),
    ])
}

struct StormRound {
    wall_ms: f64,
    holds_ms: Vec<f64>,
    gaps_ms: Vec<f64>,
    timeouts: usize,
    overlaps: usize,
}

fn storm_round(path: &Path, n: usize, round: usize) -> Res<StormRound> {
    let p = path.display().to_string();
    let account = format!("storm-{n}-{round}");
    let mut children: Vec<Child> =
        (0..n).map(|_| spawn(&["child-storm", &p, &account], true)).collect::<Res<_>>()?;
    let mut readers: Vec<BufReader<ChildStdout>> = Vec::new();
    for child in &mut children {
        let mut reader = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.trim() != "READY" {
            return Err(format!("storm child said `{line}`").into());
        }
        readers.push(reader);
    }
    let start = now_us() + 30_000;
    for child in &mut children {
        let stdin = child.stdin.as_mut().ok_or("no stdin")?;
        writeln!(stdin, "{start}")?;
        stdin.flush()?;
    }
    let mut holds = Vec::new();
    let mut timeouts = 0;
    let mut end = start;
    for (mut child, mut reader) in children.into_iter().zip(readers) {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["OK", a, r, e] => {
                holds.push((a.parse::<i64>()?, r.parse::<i64>()?));
                end = end.max(e.parse::<i64>()?);
            }
            ["TIMEOUT"] => timeouts += 1,
            _ => return Err(format!("storm child said `{line}`").into()),
        }
        child.wait()?;
    }
    holds.sort();
    let overlaps = holds.windows(2).filter(|w| w[1].0 < w[0].1).count();
    let holds_ms = holds.iter().map(|(a, r)| (r - a) as f64 / 1000.0).collect();
    let gaps_ms = holds.windows(2).map(|w| (w[1].0 - w[0].1) as f64 / 1000.0).collect();
    Ok(StormRound { wall_ms: (end - start) as f64 / 1000.0, holds_ms, gaps_ms, timeouts, overlaps })
}

fn bench_storm(dir: &Path, rounds: usize) -> Res<Vec<Row>> {
    let path = dir.join("storm.sqlite");
    drop(open(&path)?);
    let anchors = [(4, "335 ms", "—"), (8, "1456 ms", "20 of 80"), (16, "3869 ms", "100 of 160")];
    let mut rows = Vec::new();
    for (n, anchor_wall, anchor_timeouts) in anchors {
        let mut walls = Vec::new();
        let (mut timeouts, mut overlaps) = (0, 0);
        let (mut holds, mut gaps) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let r = storm_round(&path, n, round)?;
            walls.push(r.wall_ms);
            holds.extend(r.holds_ms);
            gaps.extend(r.gaps_ms);
            timeouts += r.timeouts;
            overlaps += r.overlaps;
        }
        walls.sort_by(f64::total_cmp);
        let ideal = n * 10;
        rows.push(row(
            &format!("storm N = {n}, hold 10 ms"),
            &format!("wall time, median of {rounds} rounds (max)"),
            format!(
                "{:.0} ms ({:.0} ms)",
                percentile(&walls, 50.0),
                walls.last().copied().unwrap_or(f64::NAN)
            ),
            anchor_wall,
            &format!("≤ {} ms (ideal {ideal})", ideal + 20),
        ));
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        gaps.sort_by(f64::total_cmp);
        rows.push(row(
            &format!("storm N = {n}, hold 10 ms"),
            "mean hold as measured; handoff gap median (p99)",
            format!(
                "{:.2} ms; {:.2} ms ({:.2} ms)",
                mean(&holds),
                percentile(&gaps, 50.0),
                percentile(&gaps, 99.0)
            ),
            "—",
            "—",
        ));
        rows.push(row(
            &format!("storm N = {n}, hold 10 ms"),
            "timeouts (overlapping holds)",
            format!("{timeouts} of {} ({overlaps})", n * rounds),
            anchor_timeouts,
            "0",
        ));
    }
    Ok(rows)
}

fn read_line_of(reader: &mut BufReader<ChildStdout>) -> Res<Vec<String>> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    Ok(line.split_whitespace().map(str::to_owned).collect())
}

fn bench_wait(dir: &Path, hold_ms: u64, rounds: usize) -> Res<Vec<Row>> {
    let path = dir.join("wait.sqlite");
    drop(open(&path)?);
    let p = path.display().to_string();
    let (mut rates, mut handoffs) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let mut holder = spawn(&["child-hold-rel", &p, &hold_ms.to_string()], false)?;
        let mut hold_out = BufReader::new(holder.stdout.take().ok_or("no stdout")?);
        if read_line_of(&mut hold_out)? != ["ACQ"] {
            return Err("hold child did not acquire".into());
        }
        let mut waiter = spawn(&["child-wait", &p], true)?;
        let mut wait_out = BufReader::new(waiter.stdout.take().ok_or("no stdout")?);
        if read_line_of(&mut wait_out)? != ["READY"] {
            return Err("wait child not ready".into());
        }
        writeln!(waiter.stdin.as_mut().ok_or("no stdin")?, "go")?;
        let rel = read_line_of(&mut hold_out)?;
        let t_rel: i64 = rel.get(1).ok_or("no REL time")?.parse()?;
        let waited = read_line_of(&mut wait_out)?;
        let [_, t_acq, ms, switches] = waited.as_slice() else {
            return Err(format!("wait child said {waited:?}").into());
        };
        let (t_acq, ms, switches): (i64, f64, f64) =
            (t_acq.parse()?, ms.parse()?, switches.parse().unwrap_or(f64::NAN));
        rates.push(switches / (ms / 1000.0));
        handoffs.push((t_acq - t_rel) as f64 / 1000.0);
        holder.wait()?;
        waiter.wait()?;
    }
    rates.sort_by(f64::total_cmp);
    handoffs.sort_by(f64::total_cmp);
    let scenario = format!("wait on a {:.0} s hold of another process", hold_ms as f64 / 1000.0);
    Ok(vec![
        row(
            &scenario,
            &format!("waiter's thread wake-ups per second, median of {rounds} (max)"),
            format!(
                "{:.0} ({:.0})",
                percentile(&rates, 50.0),
                rates.last().copied().unwrap_or(f64::NAN)
            ),
            "—",
            "≤ 50",
        ),
        row(
            &scenario,
            "handoff after the long hold, median (max)",
            format!(
                "{:.2} ms ({:.2} ms)",
                percentile(&handoffs, 50.0),
                handoffs.last().copied().unwrap_or(f64::NAN)
            ),
            "—",
            "—",
        ),
    ])
}

fn bench_renewal(dir: &Path, hold_ms: u64) -> Res<Vec<Row>> {
    let path = dir.join("renewal.sqlite");
    drop(open(&path)?);
    let observer = rusqlite::Connection::open(&path)?;
    let mut child =
        spawn(&["child-hold", &path.display().to_string(), &hold_ms.to_string()], false)?;
    let mut reader = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if line.trim() != "ACQ" {
        return Err(format!("hold child said `{line}`").into());
    }
    let done = Arc::new(AtomicBool::new(false));
    let done2 = Arc::clone(&done);
    let watcher = std::thread::spawn(move || {
        let mut line = String::new();
        let _ = reader.read_line(&mut line); // "REL", written just before the release
        done2.store(true, Ordering::SeqCst);
    });
    let version = |c: &rusqlite::Connection| -> rusqlite::Result<i64> {
        c.query_row("PRAGMA data_version", [], |r| r.get(0))
    };
    let start = Instant::now();
    let mut last = version(&observer)?;
    let mut writes = 0u32;
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
        let v = version(&observer)?;
        if v != last {
            writes += 1;
            last = v;
        }
    }
    let held = start.elapsed().as_secs_f64();
    let _ = watcher.join();
    child.wait()?;
    Ok(vec![row(
        "renewal while holding (lease 3 s, renew 1 s)",
        &format!("writes per second ({writes} in {held:.1} s)"),
        format!("{:.2}", f64::from(writes) / held),
        "19",
        "≤ 1",
    )])
}

fn bench_uncontended(dir: &Path, iterations: usize) -> Res<Vec<Row>> {
    let rt = runtime()?;
    let lock_path = dir.join("uncontended.sqlite");
    let bare_path = dir.join("bare.sqlite");
    let c = open(&lock_path)?;
    let holder = holder();
    let bare = rusqlite::Connection::open(&bare_path)?;
    bare.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))?;
    bare.pragma_update(None, "synchronous", "NORMAL")?;
    bare.execute_batch(
        "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL);
         INSERT OR IGNORE INTO t VALUES (1, 0);",
    )?;
    fn write(conn: &mut rusqlite::Connection) -> rusqlite::Result<()> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.prepare_cached("UPDATE t SET v = v + 1 WHERE id = 1")?.execute([])?;
        tx.commit()
    }
    let shared = Arc::new(Mutex::new(bare));
    let (mut lock_us, mut acq_us, mut rel_us, mut bare_us, mut async_us) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Interleaved, so the three measurements see the same machine state.
    rt.block_on(async {
        for i in 0..iterations + iterations / 10 {
            let warm = i < iterations / 10;
            let t = Instant::now();
            let lease = c.acquire(ACCOUNT, &holder).await?;
            let t2 = Instant::now();
            lease.release().await?;
            let t3 = Instant::now();
            let conn = Arc::clone(&shared);
            tokio::task::spawn_blocking(move || {
                let mut guard = conn.lock().map_err(|_| "poisoned")?;
                write(&mut guard).map_err(|e| e.to_string())
            })
            .await??;
            let t4 = Instant::now();
            {
                let mut guard = shared.lock().map_err(|_| "poisoned")?;
                write(&mut guard)?;
            }
            let t5 = Instant::now();
            if !warm {
                let us = |d: Duration| d.as_secs_f64() * 1e6;
                lock_us.push(us(t3 - t));
                acq_us.push(us(t2 - t));
                rel_us.push(us(t3 - t2));
                async_us.push(us(t4 - t3));
                bare_us.push(us(t5 - t4));
            }
        }
        Ok::<_, Box<dyn StdError + Send + Sync>>(())
    })?;
    for v in [&mut lock_us, &mut acq_us, &mut rel_us, &mut bare_us, &mut async_us] {
        v.sort_by(f64::total_cmp);
    }
    let (l, b, a) =
        (percentile(&lock_us, 50.0), percentile(&bare_us, 50.0), percentile(&async_us, 50.0));
    Ok(vec![
        row(
            "uncontended, 1 process",
            &format!("acquire + release, median of {iterations}"),
            format!("{l:.0} µs"),
            "580 µs",
            "≤ 2× bare write",
        ),
        row(
            "uncontended, 1 process",
            "acquire alone; release alone (medians)",
            format!("{:.0} µs; {:.0} µs", percentile(&acq_us, 50.0), percentile(&rel_us, 50.0)),
            "—",
            "—",
        ),
        row(
            "uncontended, 1 process",
            "bare write transaction, direct call",
            format!("{b:.0} µs"),
            "120 µs",
            "—",
        ),
        row(
            "uncontended, 1 process",
            "bare write transaction via spawn_blocking",
            format!("{a:.0} µs"),
            "—",
            "—",
        ),
        row(
            "uncontended, 1 process",
            "ratio acquire+release / bare write (direct; via spawn_blocking)",
            format!("{:.2}×; {:.2}×", l / b, l / a),
            "4.8×",
            "≤ 2×",
        ),
    ])
}
