//! The width of the one window that can still lose a session: from the moment a refresh
//! answer is read to the moment the store's save returned (`refresh::response_read` →
//! `refresh::after_save` fault points, timed through `fail`'s callbacks on the real refresh
//! path). File store, coordination database on the same disk, a minimal OAuth token
//! endpoint on 127.0.0.1 (no ID token, so no validation; validation comes after the window
//! anyway).
//!
//! `cargo run --release -p latchkey --features failpoints --example window_bench [-- N]`
//! prints a markdown table.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use latchkey::{Client, ClientConfig, FileSessionStore, Secret, Session, SessionStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Serves RFC 8414 metadata and a token endpoint that rotates on every call.
async fn serve(listener: TcpListener, issuer: String) {
    let mut counter = 0u64;
    loop {
        let Ok((mut sock, _)) = listener.accept().await else { return };
        counter += 1;
        let mut buf = vec![0u8; 8192];
        let mut len = 0;
        // Read the head and (for POST) the body announced by Content-Length.
        while let Ok(n) = sock.read(&mut buf[len..]).await {
            if n == 0 {
                break;
            }
            len += n;
            let text = String::from_utf8_lossy(&buf[..len]);
            if let Some(end) = text.find("\r\n\r\n") {
                let body_len = text
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if len >= end + 4 + body_len || len == buf.len() {
                    break;
                }
            }
        }
        let head = String::from_utf8_lossy(&buf[..len]).to_string();
        let body = if head.starts_with("GET /.well-known/oauth-authorization-server") {
            Some(format!(
                r#"{{"issuer":"{issuer}","authorization_endpoint":"{issuer}/auth","token_endpoint":"{issuer}/token","response_types_supported":["code"]}}"#
            ))
        } else if head.starts_with("POST /token") {
            Some(format!(
                r#"{{"access_token":"bench-access-{counter}","refresh_token":"bench-refresh-{counter}","token_type":"Bearer","expires_in":3600}}"#
            ))
        } else {
            None
        };
        let resp = match body {
            Some(b) => format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{b}",
                b.len()
            ),
            None => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string(),
        };
        let _ = sock.write_all(resp.as_bytes()).await;
        let _ = sock.shutdown().await;
    }
}

fn main() -> Res<()> {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(300);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(run(n))
}

async fn run(n: usize) -> Res<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let issuer = format!("http://{}", listener.local_addr()?);
    tokio::spawn(serve(listener, issuer.clone()));

    let dir = tempfile::tempdir()?;
    let store = Arc::new(FileSessionStore::new(dir.path()));
    let session = Session {
        account: "default".into(),
        issuer: issuer.clone(),
        client_id: "bench".into(),
        subject: String::new(),
        access_token: Secret::new("bench-access-0"),
        refresh_token: Some(Secret::new("bench-refresh-0")),
        id_token: None,
        expires_at_ms: Some(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64)
                + 3_600_000,
        ),
        issued_at_ms: None,
        scopes: vec![],
        nonce: None,
        auth_time: None,
        session_id: None,
        pending_id_token: None,
        generation: 1,
    };
    store.save("default", &session.to_blob()).await?;
    let mut config = ClientConfig::new(issuer, dir.path().join("lock.db"));
    config.http.allow_insecure_loopback = true;
    let client = Client::new(config, store)?;
    client.restore_session().await?;

    let started: Arc<Mutex<Option<Instant>>> = Arc::default();
    let widths: Arc<Mutex<Vec<Duration>>> = Arc::default();
    {
        let started = started.clone();
        fail::cfg_callback("refresh::response_read", move || {
            *started.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        })?;
    }
    {
        let (started, widths) = (started.clone(), widths.clone());
        fail::cfg_callback("refresh::after_save", move || {
            if let Some(t) = started.lock().unwrap_or_else(|p| p.into_inner()).take() {
                widths.lock().unwrap_or_else(|p| p.into_inner()).push(t.elapsed());
            }
        })?;
    }
    // Warm-up, then the measured refreshes.
    for _ in 0..20 {
        client.refresh().await?;
    }
    widths.lock().unwrap_or_else(|p| p.into_inner()).clear();
    let t = Instant::now();
    for _ in 0..n {
        client.refresh().await?;
    }
    let total = t.elapsed();
    let mut w = widths.lock().unwrap_or_else(|p| p.into_inner()).clone();
    w.sort();
    if w.is_empty() {
        return Err("the fault points were not reached: build with --features failpoints".into());
    }
    println!("| figure | value |");
    println!("|---|---:|");
    println!("| refreshes measured | {} |", w.len());
    println!(
        "| window \"answer read → store save returned\", median | {:.0} µs |",
        percentile(&w, 0.5).as_secs_f64() * 1e6
    );
    println!("| window, p99 | {:.0} µs |", percentile(&w, 0.99).as_secs_f64() * 1e6);
    println!("| window, max | {:.0} µs |", w[w.len() - 1].as_secs_f64() * 1e6);
    println!(
        "| whole refresh (loopback token endpoint), mean | {:.0} µs |",
        total.as_secs_f64() * 1e6 / n as f64
    );
    Ok(())
}
