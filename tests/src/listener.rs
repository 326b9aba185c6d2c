//! A one-shot loopback HTTP listener, standing in for an app backend that receives the
//! provider's back-channel logout.

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Listens on a free loopback port; answers 200 to the first request on `path` and hands
/// back the raw request (request line, headers and body).
pub async fn one_shot(
    path: &str,
) -> Result<(String, tokio::sync::oneshot::Receiver<String>), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://127.0.0.1:{}{path}", listener.local_addr()?.port());
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let Ok((mut sock, _)) = listener.accept().await else { return };
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        // Read headers, then Content-Length bytes of body (bounded by the socket closing).
        loop {
            let Ok(n) = sock.read(&mut chunk).await else { return };
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0usize);
                if buf.len() >= end + 4 + len {
                    break;
                }
            }
        }
        let _ = sock
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
        let _ = tx.send(String::from_utf8_lossy(&buf).to_string());
    });
    Ok((url, rx))
}
