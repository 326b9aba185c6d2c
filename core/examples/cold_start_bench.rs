//! What the library itself costs at cold start: in a fresh process, the time from building
//! the runtime and `Client::new` to the first fresh token, measured inside the process (so
//! without exec, dynamic loading and process exit, which the CLI rows of
//! `scripts/bench.sh footprint` include). No network: the session is restored from a file
//! store with a far-away expiry; the coordination database exists already (a warm-up run
//! creates it), as for an app that signed in before.
//!
//! `cargo run --release -p latchkey --example cold_start_bench [-- RUNS]` prints a markdown
//! table: one fresh process per run, medians and minimums.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use latchkey::{Client, ClientConfig, FileSessionStore, SessionStore};

mod shared;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        let dir = args.get(2).ok_or("--child DIR")?;
        return child(Path::new(dir));
    }
    let runs: usize = args.get(1).map_or(Ok(20), |s| s.parse())?;
    parent(runs.max(1))
}

/// One measurement: prints the nanoseconds of each phase, space-separated.
fn child(dir: &Path) -> Res<()> {
    let t0 = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let t1 = Instant::now();
    let (t2, t3, t4) = rt.block_on(async {
        let store = Arc::new(FileSessionStore::new(dir));
        let config = ClientConfig::new(shared::ISSUER, dir.join("lock.db"));
        let client = Client::new(config, store)?;
        let t2 = Instant::now();
        client.restore_session().await?.ok_or("no session restored")?;
        let t3 = Instant::now();
        let token = client.access_token().await?;
        std::hint::black_box(&token);
        Ok::<_, Box<dyn std::error::Error>>((t2, t3, Instant::now()))
    })?;
    let ns = |a: Instant, b: Instant| b.duration_since(a).as_nanos();
    println!("{} {} {} {} {}", ns(t0, t4), ns(t0, t1), ns(t1, t2), ns(t2, t3), ns(t3, t4));
    Ok(())
}

fn parent(runs: usize) -> Res<()> {
    let dir = tempfile::tempdir()?;
    let store = FileSessionStore::new(dir.path());
    let session = shared::fresh_session();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(store.save("default", &session.to_blob()))?;
    drop(rt);

    let exe = std::env::current_exe()?;
    let mut phases: [Vec<u128>; 5] = Default::default();
    let mut walls = Vec::new();
    // The first run creates the coordination database and is not counted.
    for i in 0..=runs {
        let t = Instant::now();
        let out = Command::new(&exe).arg("--child").arg(dir.path()).output()?;
        let wall = t.elapsed();
        if !out.status.success() {
            return Err(format!("child failed: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        if i == 0 {
            continue;
        }
        walls.push(wall);
        let line = String::from_utf8(out.stdout)?;
        let values: Vec<u128> =
            line.split_whitespace().map(str::parse).collect::<Result<_, _>>()?;
        if values.len() != phases.len() {
            return Err(format!("unexpected child output `{}`", line.trim()).into());
        }
        for (p, v) in phases.iter_mut().zip(values) {
            p.push(v);
        }
    }
    let ms = |v: &mut Vec<u128>| {
        v.sort_unstable();
        format!("{:.2} ms ({:.2} ms)", v[v.len() / 2] as f64 / 1e6, v[0] as f64 / 1e6)
    };
    let [total, runtime, new, restore, token] = &mut phases;
    walls.sort_unstable();
    let n = walls.len();
    println!("| in-process, library only (release example, a fresh process per run) | median of {n} (min) |");
    println!("|---|---:|");
    println!(
        "| runtime, `Client::new`, `restore_session()`, first `access_token()` | {} |",
        ms(total)
    );
    println!("| — of which the current-thread Tokio runtime | {} |", ms(runtime));
    println!("| — of which `Client::new` (opens the coordination database) | {} |", ms(new));
    println!(
        "| — of which `restore_session()` (store file, committed generation) | {} |",
        ms(restore)
    );
    println!("| — of which the first `access_token()` | {} |", ms(token));
    println!(
        "| the same process from spawn to exit, measured outside (binary {:.1} MB) | {:.2} ms ({:.2} ms) |",
        std::fs::metadata(&exe).map_or(0, |m| m.len()) as f64 / 1e6,
        walls[n / 2].as_secs_f64() * 1e3,
        walls[0].as_secs_f64() * 1e3,
    );
    Ok(())
}
