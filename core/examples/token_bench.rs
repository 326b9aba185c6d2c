//! What a caller pays for a token: the in-memory fast path (I6: no SQLite, no lock) against
//! a coordinated call that reads the shared database (`sync`). No network: the session is
//! restored from a file store with a far-away expiry.
//!
//! `cargo run --release -p latchkey --example token_bench` prints a markdown table.

use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey::{Client, ClientConfig, FileSessionStore, SessionStore};

mod shared;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Res<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(run())
}

async fn run() -> Res<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(FileSessionStore::new(dir.path()));
    let session = shared::fresh_session();
    store.save("default", &session.to_blob()).await?;
    let config = ClientConfig::new(shared::ISSUER, dir.path().join("lock.db"));
    let client = Client::new(config, store)?;
    client.restore_session().await?;

    // Fast path: batches of 10 000 calls, median per call over 50 batches.
    let mut fast = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        for _ in 0..10_000 {
            std::hint::black_box(client.access_token().await?);
        }
        fast.push(t.elapsed() / 10_000);
    }
    // Coordinated read of the shared database, as every process does when its token is due.
    let mut coordinated = Vec::new();
    for _ in 0..2_000 {
        let t = Instant::now();
        std::hint::black_box(client.sync().await?);
        coordinated.push(t.elapsed());
    }
    // Many tasks at once on the fast path.
    let tasks = 64;
    let t = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let c = client.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..10_000 {
                std::hint::black_box(c.access_token().await.ok());
            }
        }));
    }
    for h in handles {
        h.await?;
    }
    let total = t.elapsed();
    let per_sec = (tasks * 10_000) as f64 / total.as_secs_f64();

    println!("| path | metric | value |");
    println!("|---|---|---:|");
    println!(
        "| `access_token()`, token fresh in memory | median per call (50 × 10 000) | {:.0} ns |",
        median(fast).as_nanos()
    );
    println!(
        "| `access_token()` from 64 tasks at once | calls per second | {:.1} M |",
        per_sec / 1e6
    );
    println!(
        "| `sync()`: read the committed generation (SQLite) | median per call (2 000) | {:.0} µs |",
        median(coordinated).as_secs_f64() * 1e6
    );
    Ok(())
}
