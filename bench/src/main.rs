//! Latchkey's lease lock and matrix-rust-sdk's `CrossProcessLock` (matrix-sdk-common 0.19.1,
//! unmodified, over SQLite), measured side by side in one run with the same scenarios, the
//! same hold patterns and real OS processes (this binary re-executes itself for each child),
//! at `synchronous=NORMAL` and `FULL`.
//!
//! ```text
//! cargo run --release --ignore-rust-version --manifest-path bench/Cargo.toml -- \
//!     [all|handoff|storm|renewal|uncontended|wait] [--quick] [--sync normal|full|both]
//! ```
//!
//! Prints a markdown table on stdout (`scripts/bench.sh` puts it in BENCHMARKS.md); the
//! methodology is in the notes that script writes next to it.

#![forbid(unsafe_code)]

mod matrix;

use std::error::Error as StdError;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use latchkey::internals::{Coordinator, JournalPhase, Lease};
use latchkey::CoordinatorConfig;
use latchkey::{Error, SystemClock};
use matrix::SqliteLeases;
use matrix_sdk_common::cross_process_lock::{
    CrossProcessLock, CrossProcessLockConfig, CrossProcessLockGuard,
};
use rand::Rng as _;

type Res<T> = Result<T, Box<dyn StdError + Send + Sync>>;

const ACCOUNT: &str = "bench@example";

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

fn runtime() -> Res<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

fn holder() -> String {
    format!("bench-{}-{:08x}", std::process::id(), rand::rng().random::<u32>())
}

// ----------------------------------------------------------------------------------------
// The two locks behind one interface
// ----------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Imp {
    Latchkey,
    Matrix,
}

impl Imp {
    fn name(self) -> &'static str {
        match self {
            Imp::Latchkey => "latchkey",
            Imp::Matrix => "matrix",
        }
    }
    fn parse(s: &str) -> Res<Imp> {
        match s {
            "latchkey" => Ok(Imp::Latchkey),
            "matrix" => Ok(Imp::Matrix),
            other => Err(format!("unknown lock `{other}`").into()),
        }
    }
}

enum Side {
    Latchkey(Coordinator),
    Matrix(SqliteLeases, AtomicU64),
}

enum Held {
    Latchkey(Lease),
    Matrix(CrossProcessLockGuard),
}

impl Side {
    /// Latchkey reads its `synchronous` setting from `LATCHKEY_BENCH_SYNCHRONOUS` (set on
    /// every child by `spawn`, and by `main` for this process).
    fn open(imp: Imp, sync: &str, path: &Path) -> Res<Side> {
        Ok(match imp {
            Imp::Latchkey => Side::Latchkey(Coordinator::open(
                path,
                CoordinatorConfig::default(),
                Arc::new(SystemClock),
            )?),
            Imp::Matrix => Side::Matrix(SqliteLeases::open(path, sync)?, AtomicU64::new(0)),
        })
    }

    async fn warm(&self) -> Res<()> {
        match self {
            Side::Latchkey(c) => {
                c.generation(ACCOUNT).await?;
            }
            Side::Matrix(..) => {}
        }
        Ok(())
    }

    /// Waits for the lease with the lock's own default wait; `None` when that wait ran out.
    /// matrix: a fresh `CrossProcessLock` per acquisition with its own holder name, so a
    /// process cannot re-take its own unexpired lease in the 50 ms before its renewal task
    /// releases it (with one holder name per process it would, and starve the other side).
    async fn acquire(&self, account: &str, holder: &str) -> Res<Option<Held>> {
        match self {
            Side::Latchkey(c) => match c.acquire(account, holder).await {
                Ok(lease) => Ok(Some(Held::Latchkey(lease))),
                Err(Error::LockTimeout) => Ok(None),
                Err(e) => Err(e.into()),
            },
            Side::Matrix(leases, n) => {
                let i = n.fetch_add(1, Ordering::Relaxed);
                let lock = CrossProcessLock::new(
                    leases.clone(),
                    account.to_owned(),
                    CrossProcessLockConfig::multi_process(format!("{holder}-{i}")),
                );
                match lock.spin_lock(None).await? {
                    Ok(state) => Ok(Some(Held::Matrix(state.into_guard()))),
                    Err(_) => Ok(None),
                }
            }
        }
    }

    /// Latchkey writes the release now; matrix drops its guard, and its renewal task writes
    /// a 0 ms lease at its next tick (within 50 ms).
    async fn release(&self, held: Held) -> Res<()> {
        match held {
            Held::Latchkey(lease) => lease.release().await?,
            Held::Matrix(guard) => drop(guard),
        }
        Ok(())
    }

    /// SQLite transactions this process ran through the lock, where the lock can count them.
    fn transactions(&self) -> Option<u64> {
        match self {
            Side::Latchkey(_) => None,
            Side::Matrix(leases, _) => Some(leases.attempts()),
        }
    }
}

// ----------------------------------------------------------------------------------------
// Children: `child-<role> <lock> <sync> <path> [args]`
// ----------------------------------------------------------------------------------------

fn arg(args: &[String], i: usize) -> Res<&str> {
    Ok(args.get(i).ok_or("missing argument")?.as_str())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("all");
    if let Some(role) = mode.strip_prefix("child-") {
        let imp = Imp::parse(arg(&args, 1)?)?;
        let sync = arg(&args, 2)?.to_owned();
        let path = PathBuf::from(arg(&args, 3)?);
        let rest = &args[4..];
        let rt = runtime()?;
        return rt.block_on(async {
            let side = Side::open(imp, &sync, &path)?;
            match role {
                "handoff" => child_handoff(&side, rest).await,
                "storm" => child_storm(&side, rest).await,
                "hold" => child_hold(&side, rest).await,
                "wait" => child_wait(&side).await,
                other => Err(format!("unknown child `{other}`").into()),
            }
        });
    }
    let quick = args.iter().any(|a| a == "--quick");
    let syncs: Vec<&str> = match args.iter().position(|a| a == "--sync") {
        Some(i) => match args.get(i + 1).map(String::as_str) {
            Some("normal") => vec!["NORMAL"],
            Some("full") => vec!["FULL"],
            _ => vec!["NORMAL", "FULL"],
        },
        None => vec!["NORMAL", "FULL"],
    };
    let scenario = args
        .iter()
        .enumerate()
        .find(|(i, a)| !a.starts_with("--") && (*i == 0 || args[i - 1] != "--sync"))
        .map(|(_, a)| a.as_str())
        .unwrap_or("all");
    parent(scenario, quick, &syncs)
}

async fn child_handoff(side: &Side, args: &[String]) -> Res<()> {
    let iterations: usize = arg(args, 0)?.parse()?;
    let holder = holder();
    let mut out = String::new();
    let mut done = 0;
    let mut timeouts = 0;
    while done < iterations && timeouts < 50 {
        let t_wait = now_us();
        let Some(held) = side.acquire(ACCOUNT, &holder).await? else {
            timeouts += 1;
            continue;
        };
        let t_acq = now_us();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let t_rel = now_us();
        side.release(held).await?;
        out.push_str(&format!("ACQ {t_wait} {t_acq}\nREL {t_rel}\n"));
        done += 1;
        let gap = rand::rng().random_range(1_000..=3_000);
        tokio::time::sleep(Duration::from_micros(gap)).await;
    }
    out.push_str(&format!("TIMEOUTS {timeouts}\n"));
    // Let a lazy release reach the file before the process ends.
    tokio::time::sleep(Duration::from_millis(120)).await;
    print!("{out}");
    std::io::stdout().flush()?;
    Ok(())
}

async fn child_storm(side: &Side, args: &[String]) -> Res<()> {
    let account = arg(args, 0)?.to_owned();
    side.warm().await?;
    println!("READY");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let start_us: i64 = line.trim().parse()?;
    let wait = u64::try_from(start_us - now_us()).unwrap_or(0);
    tokio::time::sleep(Duration::from_micros(wait)).await;
    match side.acquire(&account, &holder()).await? {
        Some(held) => {
            let t_acq = now_us();
            // Exactly 10 ms: Tokio's timer would round up to the next millisecond tick.
            std::thread::sleep(Duration::from_millis(10));
            let t_rel = now_us();
            side.release(held).await?;
            println!("OK {t_acq} {t_rel} {}", now_us());
            std::io::stdout().flush()?;
            tokio::time::sleep(Duration::from_millis(120)).await;
        }
        None => println!("TIMEOUT"),
    }
    std::io::stdout().flush()?;
    Ok(())
}

/// How long the refresh-shaped hold of the wait scenario spends between the answer and the
/// release (the store save and the commit of a real refresh).
const FINISH_MS: u64 = 3;

/// Holds the lease `hold_ms`, prints `REL <µs>` right before releasing it. With a second
/// argument `refresh`, the hold has the shape of a refresh waiting on a slow token endpoint:
/// Latchkey's journal says `request_sent` for the hold, then `answered`, [`FINISH_MS`] of
/// store save, the entry cleared, the release. matrix-sdk-common's lock has no journal: it
/// holds for the same time.
async fn child_hold(side: &Side, args: &[String]) -> Res<()> {
    let hold_ms: u64 = arg(args, 0)?.parse()?;
    let refresh = args.get(1).is_some_and(|a| a == "refresh");
    let held = side.acquire(ACCOUNT, &holder()).await?.ok_or("hold child timed out")?;
    println!("ACQ");
    std::io::stdout().flush()?;
    if let (true, Held::Latchkey(lease)) = (refresh, &held) {
        lease.journal_begin(1).await?;
    }
    tokio::time::sleep(Duration::from_millis(hold_ms)).await;
    if refresh {
        if let Held::Latchkey(lease) = &held {
            lease.journal_phase(JournalPhase::Answered, Some("bench-hash")).await?;
        }
        tokio::time::sleep(Duration::from_millis(FINISH_MS)).await;
        if let Held::Latchkey(lease) = &held {
            lease.journal_clear().await?;
        }
    }
    println!("REL {}", now_us());
    std::io::stdout().flush()?;
    side.release(held).await?;
    tokio::time::sleep(Duration::from_millis(120)).await;
    Ok(())
}

/// This process so far: context switches of all threads, CPU time of all threads (µs, from
/// the scheduler's nanosecond accounting), read syscalls.
fn proc_counters() -> Option<(u64, f64, u64)> {
    let (mut switches, mut cpu_ns) = (0, 0u64);
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let status = std::fs::read_to_string(dir.join("status")).ok()?;
        for line in status.lines() {
            if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                switches += v.trim().parse::<u64>().ok()?;
            }
        }
        let sched = std::fs::read_to_string(dir.join("schedstat")).ok()?;
        cpu_ns += sched.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    let syscr = io.lines().find_map(|l| l.strip_prefix("syscr:"))?.trim().parse().ok()?;
    Some((switches, cpu_ns as f64 / 1000.0, syscr))
}

/// Waits (retrying after the lock's own timeouts) for the lease another process holds;
/// prints `WAITED <t_acq µs> <ms> <switches> <cpu µs> <read syscalls> <transactions>`.
async fn child_wait(side: &Side) -> Res<()> {
    side.warm().await?;
    println!("READY");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let before = proc_counters().ok_or("no /proc counters")?;
    let tx_before = side.transactions();
    let t0 = Instant::now();
    let holder = holder();
    let mut timeouts = 0;
    let held = loop {
        if let Some(held) = side.acquire(ACCOUNT, &holder).await? {
            break held;
        }
        timeouts += 1;
        if timeouts > 20 {
            return Err("waiter never got the lease".into());
        }
    };
    let t_acq = now_us();
    let waited = t0.elapsed();
    let after = proc_counters().ok_or("no /proc counters")?;
    let tx = match (tx_before, side.transactions()) {
        (Some(b), Some(a)) => (a - b).to_string(),
        _ => "NaN".into(),
    };
    side.release(held).await?;
    println!(
        "WAITED {t_acq} {} {} {} {} {tx}",
        waited.as_secs_f64() * 1000.0,
        after.0 - before.0,
        after.1 - before.1,
        after.2 - before.2
    );
    std::io::stdout().flush()?;
    tokio::time::sleep(Duration::from_millis(120)).await;
    Ok(())
}

// ----------------------------------------------------------------------------------------
// Parent
// ----------------------------------------------------------------------------------------

/// One figure of one lock: its text, and the number the ratio is taken of (NaN: none).
struct Fig {
    scenario: String,
    metric: String,
    text: String,
    num: f64,
    target: &'static str,
}

fn fig(scenario: &str, metric: &str, text: String, num: f64, target: &'static str) -> Fig {
    Fig { scenario: scenario.into(), metric: metric.into(), text, num, target }
}

/// The target, and whether Latchkey's figure meets it (targets of the form `≤ X unit`).
fn verdict(f: &Fig) -> String {
    let Some(rest) = f.target.strip_prefix("≤ ") else { return f.target.to_string() };
    let number: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let unit = rest[number.len()..].split_whitespace().next().unwrap_or("");
    match number.parse::<f64>() {
        Ok(goal) if f.num.is_finite() && f.num > goal => {
            format!("{}: missed by {:.2} {unit}", f.target, f.num - goal)
        }
        Ok(_) if f.num.is_finite() => format!("{}: met", f.target),
        _ => f.target.to_string(),
    }
}

fn spawn(imp: Imp, sync: &str, role: &str, path: &Path, extra: &[&str], stdin: bool) -> Res<Child> {
    let exe = std::env::current_exe()?;
    Ok(Command::new(exe)
        .arg(format!("child-{role}"))
        .arg(imp.name())
        .arg(sync)
        .arg(path)
        .args(extra)
        .env("LATCHKEY_BENCH_SYNCHRONOUS", sync)
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

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn fresh(dir: &Path, name: &str, imp: Imp, sync: &str) -> Res<PathBuf> {
    let path = dir.join(format!("{name}-{}-{}.sqlite", imp.name(), sync.to_lowercase()));
    drop(Side::open(imp, sync, &path)?);
    Ok(path)
}

fn parent(scenario: &str, quick: bool, syncs: &[&str]) -> Res<()> {
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    println!(
        "| scenario | metric | synchronous | Latchkey | matrix-rust-sdk 0.19.1 (same run) | ratio matrix / Latchkey | Latchkey goal |"
    );
    println!("|---|---|---|---:|---:|---:|---|");
    for &sync in syncs {
        // Read by the in-process Latchkey side of `uncontended` when it opens its database
        // (children get it from `spawn`); no other thread runs here yet.
        std::env::set_var("LATCHKEY_BENCH_SYNCHRONOUS", sync);
        let mut pairs: Vec<(Vec<Fig>, Vec<Fig>)> = Vec::new();
        let run = |f: &dyn Fn(Imp) -> Res<Vec<Fig>>| -> Res<(Vec<Fig>, Vec<Fig>)> {
            Ok((f(Imp::Latchkey)?, f(Imp::Matrix)?))
        };
        let d = dir.path();
        if matches!(scenario, "all" | "handoff") {
            pairs.push(run(&|imp| bench_handoff(d, imp, sync, if quick { 30 } else { 100 }))?);
        }
        if matches!(scenario, "all" | "storm") {
            pairs.push(run(&|imp| bench_storm(d, imp, sync, if quick { 1 } else { 5 }))?);
        }
        if matches!(scenario, "all" | "renewal") {
            pairs.push(run(&|imp| bench_renewal(d, imp, sync, if quick { 2_000 } else { 5_000 }))?);
        }
        if matches!(scenario, "all" | "wait") {
            let rounds = if quick { 1 } else { 2 };
            pairs.push(run(&|imp| bench_wait(d, imp, sync, 3_000, rounds, true))?);
            pairs.push(run(&|imp| bench_wait(d, imp, sync, 3_000, rounds, false))?);
        }
        if matches!(scenario, "all" | "uncontended") {
            pairs.push(run(&|imp| bench_uncontended(d, imp, sync, if quick { 30 } else { 150 }))?);
        }
        for (lk, mx) in pairs {
            for (a, b) in lk.iter().zip(&mx) {
                let ratio = b.num / a.num;
                let ratio = if ratio.is_finite() { format!("{ratio:.1}×") } else { "—".into() };
                println!(
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    a.scenario,
                    a.metric,
                    sync,
                    a.text,
                    b.text,
                    ratio,
                    verdict(a)
                );
            }
        }
    }
    eprintln!("anchor_bench finished in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Every acquisition by one process whose wait began before another process's release:
/// the time from that release call to the acquisition (both clocks are this machine's).
fn bench_handoff(dir: &Path, imp: Imp, sync: &str, iterations: usize) -> Res<Vec<Fig>> {
    let path = fresh(dir, "handoff", imp, sync)?;
    let n = iterations.to_string();
    let children: Vec<Child> =
        (0..2).map(|_| spawn(imp, sync, "handoff", &path, &[&n], false)).collect::<Res<_>>()?;
    // (time, process, kind, t_wait)
    let mut events: Vec<(i64, usize, bool, i64)> = Vec::new();
    let mut timeouts = 0u64;
    for (p, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(format!("handoff child failed: {}", out.status).into());
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                ["ACQ", w, a] => events.push((a.parse()?, p, true, w.parse()?)),
                ["REL", r] => events.push((r.parse()?, p, false, 0)),
                ["TIMEOUTS", t] => timeouts += t.parse::<u64>()?,
                _ => {}
            }
        }
    }
    events.sort();
    let total = events.iter().filter(|e| e.2).count();
    let mut lat = Vec::new();
    let mut last_rel: Option<(i64, usize)> = None;
    for &(t, p, is_acq, t_wait) in &events {
        if is_acq {
            if let Some((t_rel, q)) = last_rel {
                if q != p && t_wait < t_rel {
                    lat.push((t - t_rel) as f64 / 1000.0);
                }
            }
        } else {
            last_rel = Some((t, p));
        }
    }
    let lat = sorted(lat);
    let s = "handoff between 2 processes (hold 5 ms, pause 1–3 ms)";
    let med = percentile(&lat, 50.0);
    let p99 = percentile(&lat, 99.0);
    Ok(vec![
        fig(s, "median", format!("{med:.2} ms"), med, "≤ 2 ms"),
        fig(s, "p99", format!("{p99:.2} ms"), p99, "≤ 20 ms"),
        fig(
            s,
            "handoffs measured of acquisitions; waits that timed out",
            format!("{} of {total}; {timeouts}", lat.len()),
            f64::NAN,
            "—",
        ),
    ])
}

struct StormRound {
    wall_ms: f64,
    gaps_ms: Vec<f64>,
    timeouts: usize,
    overlaps: usize,
}

fn storm_round(path: &Path, imp: Imp, sync: &str, n: usize, round: usize) -> Res<StormRound> {
    let account = format!("storm-{n}-{round}");
    let mut children: Vec<Child> =
        (0..n).map(|_| spawn(imp, sync, "storm", path, &[&account], true)).collect::<Res<_>>()?;
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
    let (mut holds, mut timeouts, mut end) = (Vec::new(), 0, start);
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
    let gaps_ms = holds.windows(2).map(|w| (w[1].0 - w[0].1) as f64 / 1000.0).collect();
    Ok(StormRound { wall_ms: (end - start) as f64 / 1000.0, gaps_ms, timeouts, overlaps })
}

fn bench_storm(dir: &Path, imp: Imp, sync: &str, rounds: usize) -> Res<Vec<Fig>> {
    let path = fresh(dir, "storm", imp, sync)?;
    let mut figs = Vec::new();
    for (n, target) in [(2, "≤ 40 ms"), (4, "≤ 60 ms"), (8, "≤ 100 ms"), (16, "≤ 180 ms")] {
        let (mut walls, mut gaps, mut timeouts, mut overlaps) = (Vec::new(), Vec::new(), 0, 0);
        for round in 0..rounds {
            let r = storm_round(&path, imp, sync, n, round)?;
            walls.push(r.wall_ms);
            gaps.extend(r.gaps_ms);
            timeouts += r.timeouts;
            overlaps += r.overlaps;
        }
        let walls = sorted(walls);
        let gaps = sorted(gaps);
        let s = format!("storm N = {n}, hold 10 ms");
        let wall = percentile(&walls, 50.0);
        figs.push(fig(
            &s,
            &format!("wall time to the last release, median of {rounds} (max)"),
            format!("{wall:.0} ms ({:.0} ms)", walls.last().copied().unwrap_or(f64::NAN)),
            wall,
            target,
        ));
        let gap = percentile(&gaps, 50.0);
        figs.push(fig(&s, "handoff gap median", format!("{gap:.2} ms"), gap, "—"));
        figs.push(fig(
            &s,
            "timeouts (overlapping holds)",
            format!("{timeouts} of {} ({overlaps})", n * rounds),
            f64::NAN,
            "0 (0)",
        ));
    }
    Ok(figs)
}

fn read_line_of(reader: &mut BufReader<ChildStdout>) -> Res<Vec<String>> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    Ok(line.split_whitespace().map(str::to_owned).collect())
}

fn bench_wait(
    dir: &Path,
    imp: Imp,
    sync: &str,
    hold_ms: u64,
    rounds: usize,
    refresh: bool,
) -> Res<Vec<Fig>> {
    let path = fresh(dir, if refresh { "wait-refresh" } else { "wait" }, imp, sync)?;
    let (mut wakes, mut cpu, mut reads, mut txs, mut handoffs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let hold = hold_ms.to_string();
        let args: &[&str] = if refresh { &[&hold, "refresh"] } else { &[&hold] };
        let mut holder = spawn(imp, sync, "hold", &path, args, false)?;
        let mut hold_out = BufReader::new(holder.stdout.take().ok_or("no stdout")?);
        if read_line_of(&mut hold_out)? != ["ACQ"] {
            return Err("hold child did not acquire".into());
        }
        let mut waiter = spawn(imp, sync, "wait", &path, &[], true)?;
        let mut wait_out = BufReader::new(waiter.stdout.take().ok_or("no stdout")?);
        if read_line_of(&mut wait_out)? != ["READY"] {
            return Err("wait child not ready".into());
        }
        writeln!(waiter.stdin.as_mut().ok_or("no stdin")?, "go")?;
        let rel = read_line_of(&mut hold_out)?;
        let t_rel: i64 = rel.get(1).ok_or("no REL time")?.parse()?;
        let w = read_line_of(&mut wait_out)?;
        let [_, t_acq, ms, sw, cpu_us, syscr, tx] = w.as_slice() else {
            return Err(format!("wait child said {w:?}").into());
        };
        let secs = ms.parse::<f64>()? / 1000.0;
        wakes.push(sw.parse::<f64>()? / secs);
        cpu.push(cpu_us.parse::<f64>()? / 1e6 / secs * 100.0);
        reads.push(syscr.parse::<f64>()? / secs);
        txs.push(tx.parse::<f64>().unwrap_or(f64::NAN) / secs);
        handoffs.push((t_acq.parse::<i64>()? - t_rel) as f64 / 1000.0);
        holder.wait()?;
        waiter.wait()?;
    }
    let s = if refresh {
        format!(
            "wait on a refresh of another process ({:.0} s request, then answered, {FINISH_MS} ms save)",
            hold_ms as f64 / 1000.0
        )
    } else {
        format!("wait on a {:.0} s hold of another process (no journal)", hold_ms as f64 / 1000.0)
    };
    let med = |v: Vec<f64>| percentile(&sorted(v), 50.0);
    let (w, c, r, t, h) = (med(wakes), med(cpu), med(reads), med(txs), med(handoffs));
    let tx_text = if t.is_nan() { "— (reads only)".to_string() } else { format!("{t:.1}") };
    Ok(vec![
        fig(
            &s,
            &format!("waiter's wake-ups per second, median of {rounds}"),
            format!("{w:.0}"),
            w,
            "≤ 50",
        ),
        fig(&s, "waiter's read syscalls per second (/proc/self/io)", format!("{r:.0}"), r, "—"),
        fig(&s, "waiter's write transactions per second", tx_text, t, "0"),
        fig(&s, "waiter's CPU while waiting", format!("{c:.3} %"), c, "—"),
        fig(&s, "handoff after the long hold", format!("{h:.2} ms"), h, "≤ 2 ms"),
    ])
}

fn bench_renewal(dir: &Path, imp: Imp, sync: &str, hold_ms: u64) -> Res<Vec<Fig>> {
    let path = fresh(dir, "renewal", imp, sync)?;
    let observer = rusqlite::Connection::open(&path)?;
    let mut child = spawn(imp, sync, "hold", &path, &[&hold_ms.to_string()], false)?;
    let mut reader = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    if read_line_of(&mut reader)? != ["ACQ"] {
        return Err("hold child did not acquire".into());
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
    let rate = f64::from(writes) / held;
    Ok(vec![fig(
        "renewal while holding",
        &format!("commits per second over a {:.0} s hold", hold_ms as f64 / 1000.0),
        format!("{rate:.2} ({writes} in {held:.1} s)"),
        rate,
        "≤ 1",
    )])
}

/// One process, one account: acquire, then release, then a bare write transaction on a file
/// of the same settings, interleaved. matrix: after dropping its guard the renewal task
/// writes the release later, so its release is timed as that same write
/// (`try_lock(0, …)`) called directly, and each iteration waits 110 ms for the task to end.
fn bench_uncontended(dir: &Path, imp: Imp, sync: &str, iterations: usize) -> Res<Vec<Fig>> {
    let rt = runtime()?;
    let path = fresh(dir, "uncontended", imp, sync)?;
    let bare_path = dir.join(format!("bare-{}-{}.sqlite", imp.name(), sync.to_lowercase()));
    let side = Side::open(imp, sync, &path)?;
    let bare = rusqlite::Connection::open(&bare_path)?;
    bare.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))?;
    bare.pragma_update(None, "synchronous", sync)?;
    bare.execute_batch(
        "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL);
         INSERT OR IGNORE INTO t VALUES (1, 0);",
    )?;
    let bare = Arc::new(Mutex::new(bare));
    let holder = holder();
    let (mut acq, mut rel, mut bare_us) = (Vec::new(), Vec::new(), Vec::new());
    rt.block_on(async {
        let matrix_lock = match &side {
            Side::Matrix(leases, _) => Some((
                leases.clone(),
                CrossProcessLock::new(
                    leases.clone(),
                    ACCOUNT.to_owned(),
                    CrossProcessLockConfig::multi_process(holder.clone()),
                ),
            )),
            Side::Latchkey(_) => None,
        };
        for i in 0..iterations + iterations / 10 {
            let warm = i < iterations / 10;
            let us = |d: Duration| d.as_secs_f64() * 1e6;
            let (a, r) = match (&side, &matrix_lock) {
                (Side::Latchkey(c), _) => {
                    let t = Instant::now();
                    let lease = c.acquire(ACCOUNT, &holder).await?;
                    let t2 = Instant::now();
                    lease.release().await?;
                    (us(t2 - t), us(t2.elapsed()))
                }
                (Side::Matrix(..), Some((leases, lock))) => {
                    use matrix_sdk_common::cross_process_lock::TryLock as _;
                    let t = Instant::now();
                    let state = lock.spin_lock(None).await?.map_err(|e| e.to_string())?;
                    let t2 = Instant::now();
                    drop(state);
                    let t3 = Instant::now();
                    leases.try_lock(0, ACCOUNT, &holder).await?;
                    let r = us(t3.elapsed());
                    tokio::time::sleep(Duration::from_millis(110)).await;
                    (us(t2 - t), r)
                }
                _ => unreachable!("matrix lock exists for the matrix side"),
            };
            let conn = Arc::clone(&bare);
            let t = Instant::now();
            tokio::task::spawn_blocking(move || -> Result<(), String> {
                let mut c = conn.lock().map_err(|_| "poisoned".to_string())?;
                let tx = c
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(|e| e.to_string())?;
                tx.execute("UPDATE t SET v = v + 1 WHERE id = 1", []).map_err(|e| e.to_string())?;
                tx.commit().map_err(|e| e.to_string())
            })
            .await??;
            let b = us(t.elapsed());
            if !warm {
                acq.push(a);
                rel.push(r);
                bare_us.push(b);
            }
        }
        Ok::<_, Box<dyn StdError + Send + Sync>>(())
    })?;
    let sum: Vec<f64> = acq.iter().zip(&rel).map(|(a, r)| a + r).collect();
    let (s, a, r, b) = (
        percentile(&sorted(sum), 50.0),
        percentile(&sorted(acq), 50.0),
        percentile(&sorted(rel), 50.0),
        percentile(&sorted(bare_us), 50.0),
    );
    let sc = "uncontended, 1 process";
    Ok(vec![
        fig(
            sc,
            &format!("acquire + release, median of {iterations}"),
            format!("{s:.0} µs"),
            s,
            "—",
        ),
        fig(sc, "acquire alone; release alone", format!("{a:.0} µs; {r:.0} µs"), f64::NAN, "—"),
        fig(sc, "bare write transaction via spawn_blocking", format!("{b:.0} µs"), b, "—"),
        fig(sc, "(acquire + release) / bare write", format!("{:.2}×", s / b), s / b, "≤ 2×"),
    ])
}
