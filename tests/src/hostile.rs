//! A hostile provider: a real HTTP/1.1 server on 127.0.0.1 that answers every request with
//! whatever the test told it to (crafted metadata, JWKS, token, userinfo and registration
//! responses, odd headers, oversized or endless bodies). It stands in for a malicious or
//! compromised provider, which the real test provider cannot be made to imitate.
//!
//! One tokio task accepts connections; each connection serves one request and closes.
//! Requests are recorded so tests can assert what reached the "provider".

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head or body the server reads (the client under test is Latchkey).
const MAX_REQUEST: usize = 256 * 1024;

/// A canned answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// Extra headers (`Content-Type` defaults to JSON).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Leave `Content-Length` out (the body then ends when the connection closes), so the
    /// client's size cap has to work on the stream rather than on the header.
    pub no_length: bool,
}

impl Reply {
    /// 200 with `v` as JSON.
    pub fn json(v: &Value) -> Reply {
        Reply::raw(200, serde_json::to_vec(v).expect("JSON encodes"))
    }

    /// `status` with `body` as it is.
    pub fn raw(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply { status, headers: Vec::new(), body: body.into(), no_length: false }
    }

    /// The same reply with one more header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The same reply without `Content-Length`.
    pub fn without_length(mut self) -> Reply {
        self.no_length = true;
        self
    }
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The request body as text (form or JSON).
    pub body: String,
}

impl Recorded {
    /// A form field of the body (`application/x-www-form-urlencoded`).
    pub fn form(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

#[derive(Default)]
struct Routes {
    replies: HashMap<String, Reply>,
    log: Vec<Recorded>,
}

/// The running server. Dropping it stops accepting connections.
pub struct HostileProvider {
    issuer: String,
    routes: Arc<Mutex<Routes>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HostileProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HostileProvider {
    /// Binds 127.0.0.1 on a free port and serves `good_metadata` at discovery; every other
    /// path answers 404 until [`HostileProvider::set`] gives it a reply.
    pub async fn start() -> std::io::Result<HostileProvider> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let issuer = format!("http://{}", listener.local_addr()?);
        let routes = Arc::new(Mutex::new(Routes::default()));
        let r = routes.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let r = r.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, r).await;
                });
            }
        });
        let hp = HostileProvider { issuer, routes, task };
        hp.set("/.well-known/openid-configuration", Reply::json(&hp.good_metadata()));
        Ok(hp)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `issuer` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// Well-formed discovery metadata whose endpoints all live on this server.
    pub fn good_metadata(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "authorization_endpoint": self.url("/auth"),
            "token_endpoint": self.url("/token"),
            "jwks_uri": self.url("/jwks"),
            "userinfo_endpoint": self.url("/userinfo"),
            "registration_endpoint": self.url("/reg"),
            "end_session_endpoint": self.url("/session/end"),
            "revocation_endpoint": self.url("/revoke"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "authorization_response_iss_parameter_supported": true,
        })
    }

    /// Answers requests to `path` with `reply` from now on.
    pub fn set(&self, path: &str, reply: Reply) {
        self.lock().replies.insert(path.to_string(), reply);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().log.clone()
    }

    /// The requests received for `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.path == path).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn serve(mut stream: TcpStream, routes: Arc<Mutex<Routes>>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_REQUEST {
            return Ok(());
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("").to_string();
    let target = request_line.next().unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/").to_string();
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_REQUEST);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let end = buf.len().min(head_end + length);
    let body = String::from_utf8_lossy(&buf[head_end..end]).into_owned();
    let reply = {
        let mut r = routes.lock().unwrap_or_else(|p| p.into_inner());
        r.log.push(Recorded { method, path: path.clone(), body });
        r.replies.get(&path).cloned()
    };
    let reply = reply.unwrap_or_else(|| Reply::raw(404, "{\"error\":\"not_found\"}"));
    let mut out = format!("HTTP/1.1 {} Hostile\r\nConnection: close\r\n", reply.status);
    if !reply.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        out.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in &reply.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if !reply.no_length {
        out.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    }
    out.push_str("\r\n");
    stream.write_all(out.as_bytes()).await?;
    // The client may hang up early (size cap): a write error then is expected.
    let _ = stream.write_all(&reply.body).await;
    let _ = stream.shutdown().await;
    Ok(())
}
