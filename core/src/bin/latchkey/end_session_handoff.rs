//! Handing the end-session URL, with its `id_token_hint`, to the browser without printing
//! the ID token: `logout` prints a one-time loopback URL
//! (`http://127.0.0.1:PORT/end-session/<random>`) and answers the browser's request for it
//! with a redirect to the provider's end-session URL. Some providers end nothing without
//! the hint; the terminal, logs and `--json` output only ever see the URL without it.

use std::time::Duration;

use base64::Engine as _;
use rand::RngCore as _;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;

use crate::error::CliError;
use crate::login::{read_head, request_line, respond};

const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound one-time loopback URL that redirects to the end-session URL once.
pub(crate) struct Handoff {
    listener: TcpListener,
    path: String,
    /// What to print: `http://127.0.0.1:PORT/end-session/<random>`.
    pub(crate) url: String,
}

impl Handoff {
    /// Binds 127.0.0.1 on a free port. Fails when no loopback port can be bound.
    pub(crate) async fn bind() -> Result<Handoff, CliError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| CliError::io("cannot listen on 127.0.0.1", &e))?;
        let port = listener
            .local_addr()
            .map_err(|e| CliError::io("the loopback listener has no address", &e))?
            .port();
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let path = format!(
            "/end-session/{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(nonce)
        );
        let url = format!("http://127.0.0.1:{port}{path}");
        Ok(Handoff { listener, path, url })
    }

    /// Waits up to `wait` for the browser to open [`Handoff::url`] and redirects it to
    /// `end_session_url` (which carries the `id_token_hint`). Other requests get 404. Returns
    /// whether the browser was redirected.
    pub(crate) async fn serve(self, end_session_url: &str, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.serve_once(end_session_url)).await.unwrap_or(false)
    }

    async fn serve_once(&self, end_session_url: &str) -> bool {
        loop {
            let Ok((mut sock, _)) = self.listener.accept().await else { return false };
            let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut sock)).await {
                Ok(Some(h)) => h,
                _ => continue,
            };
            match request_line(&head) {
                Some((method, target)) if method == "GET" && target == self.path => {
                    let resp = format!(
                        "HTTP/1.1 303 See Other\r\nLocation: {end_session_url}\r\n\
                         Content-Length: 0\r\nCache-Control: no-store\r\n\
                         Referrer-Policy: no-referrer\r\nConnection: close\r\n\r\n"
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                    tracing::debug!("browser sent on to the end-session endpoint");
                    return true;
                }
                _ => {
                    respond(&mut sock, 404, "Not found", "This is Latchkey's logout hand-off.")
                        .await
                }
            }
        }
    }
}
