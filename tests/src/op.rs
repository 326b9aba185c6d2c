//! The real test provider: node-oidc-provider (`tests/op/server.js`) started on a free
//! loopback port, with its admin API (counters, fault injection, runtime TTLs).
//!
//! ```no_run
//! # async fn demo() -> Result<(), latchkey_e2e::HarnessError> {
//! use latchkey_e2e::{Fault, FaultWhen, ProviderOptions, TestProvider};
//! let op = TestProvider::start(ProviderOptions::default()).await?;
//! println!("issuer {}", op.issuer());
//! op.push_fault(Fault::status(FaultWhen::Before, 503).refresh_only()).await?;
//! let counters = op.counters().await?;
//! assert_eq!(counters.reuse_detections, 0);
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::HarnessError;

/// How long [`TestProvider::start`] waits for the ready line by default.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(90);
/// Longest wait for another process's `npm ci` (lock file) and for `npm ci` itself.
const NPM_TIMEOUT: Duration = Duration::from_secs(300);
/// A lock file older than this is considered abandoned.
const NPM_LOCK_STALE: Duration = Duration::from_secs(330);
/// Lines of provider stderr kept for error messages.
const STDERR_TAIL_LINES: usize = 200;
/// Marker written into node_modules after a successful `npm ci`: the lockfile's SHA-256.
const NPM_MARKER: &str = ".latchkey-npm-ci";
const NPM_LOCK: &str = ".latchkey-npm-ci.lock";

/// Start options of the test provider. `Default` matches the server's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderOptions {
    /// Access token lifetime (`--access-token-ttl`). Default 60.
    pub access_token_ttl_secs: u64,
    /// Provider clock tolerance (`--clock-tolerance`). Default 0, so expiry is exact.
    pub clock_tolerance_secs: u64,
    /// Refresh token lifetime (`--refresh-token-ttl`). Default 86 400 (one day).
    pub refresh_token_ttl_secs: u64,
    /// ID token lifetime (`--id-token-ttl`). Default 3600.
    pub id_token_ttl_secs: u64,
    /// Fixed port on 127.0.0.1; `None` (default) picks a free one.
    pub port: Option<u16>,
    /// How long to wait for the ready line. Default 90 s.
    pub start_timeout: Duration,
    /// Serve the metadata only at the RFC 8414 location (`--oauth-metadata-only`).
    pub oauth_metadata_only: bool,
    /// RFC 8707 resource servers `https://api.example/*` (`--resource-indicators`).
    pub resource_indicators: bool,
}

impl Default for ProviderOptions {
    fn default() -> Self {
        ProviderOptions {
            access_token_ttl_secs: 60,
            clock_tolerance_secs: 0,
            refresh_token_ttl_secs: 86_400,
            id_token_ttl_secs: 3600,
            port: None,
            start_timeout: DEFAULT_START_TIMEOUT,
            oauth_metadata_only: false,
            resource_indicators: false,
        }
    }
}

/// What the provider served since start or the last [`TestProvider::reset`]
/// (`GET /__admin/counters`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Counters {
    /// refresh_token grants the provider processed successfully (tokens rotated), including
    /// those whose response an `after` fault then replaced, delayed or dropped.
    pub refresh_grants: u64,
    /// authorization_code grants processed successfully.
    pub code_grants: u64,
    /// refresh_token grant requests that presented an already consumed refresh token (the
    /// provider answers `invalid_grant` and revokes the whole grant).
    pub reuse_detections: u64,
    /// Error responses of the token endpoint produced by the provider (not by injected
    /// faults), by `error` code.
    pub token_errors: BTreeMap<String, u64>,
    /// Successful revocation endpoint responses.
    pub revocations: u64,
    /// Successful userinfo responses.
    pub userinfo: u64,
    /// Injected faults that took effect.
    pub faults_applied: u64,
    /// Back-channel logout tokens delivered successfully.
    #[serde(default)]
    pub backchannel_logouts: u64,
    /// Back-channel logout deliveries that failed.
    #[serde(default)]
    pub backchannel_logout_errors: u64,
    /// Grants revoked by the provider (reuse detection, revocation, logout, admin).
    #[serde(default)]
    pub grants_revoked: u64,
}

impl Counters {
    /// How many token endpoint errors with this `error` code the provider returned.
    pub fn token_error(&self, code: &str) -> u64 {
        self.token_errors.get(code).copied().unwrap_or(0)
    }
}

/// Which provider endpoint a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FaultEndpoint {
    /// `/token` (default).
    #[default]
    Token,
    /// `/me`.
    Userinfo,
    /// `/token/revocation`.
    Revocation,
    /// `/token/introspection`.
    Introspection,
    /// `/reg`.
    Registration,
}

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with [`Fault::status`] and [`Fault::body`] (default body
    /// `{"error":"temporarily_unavailable"}`).
    Status,
    /// Wait [`Fault::delay_ms`]. Before: the provider then processes the request only if the
    /// client is still connected. After: the processed response is sent late.
    Delay,
    /// Close the connection without answering.
    Drop,
}

/// When a fault acts, relative to the provider processing the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultWhen {
    /// Before the provider sees the request: nothing is consumed or rotated.
    Before,
    /// After the provider fully processed it (a refresh token IS rotated), instead of or
    /// before sending its response.
    After,
}

/// One queued fault (`POST /__admin/faults`). Each matching request consumes one of `count`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Endpoint to act on.
    pub endpoint: FaultEndpoint,
    /// Only token requests with this `grant_type` match (`None`: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<String>,
    /// What to do.
    pub kind: FaultKind,
    /// Before or after the provider processes the request.
    pub when: FaultWhen,
    /// Status for [`FaultKind::Status`].
    pub status: u16,
    /// Delay for [`FaultKind::Delay`], in milliseconds.
    pub delay_ms: u64,
    /// How many matching requests this fault applies to.
    pub count: u32,
    /// JSON body for [`FaultKind::Status`] (`None`: `{"error":"temporarily_unavailable"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// `Retry-After` seconds for [`FaultKind::Status`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl Fault {
    fn new(kind: FaultKind, when: FaultWhen) -> Self {
        Fault {
            endpoint: FaultEndpoint::Token,
            grant_type: None,
            kind,
            when,
            status: 503,
            delay_ms: 0,
            count: 1,
            body: None,
            retry_after: None,
        }
    }

    /// Answer with `status` on the token endpoint, once.
    pub fn status(when: FaultWhen, status: u16) -> Self {
        Fault { status, ..Fault::new(FaultKind::Status, when) }
    }

    /// Delay the token request (before) or its response (after), once.
    pub fn delay(when: FaultWhen, delay: Duration) -> Self {
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        Fault { delay_ms, ..Fault::new(FaultKind::Delay, when) }
    }

    /// Close the connection without an answer, once.
    pub fn drop_connection(when: FaultWhen) -> Self {
        Fault::new(FaultKind::Drop, when)
    }

    /// Apply to another endpoint.
    pub fn on(mut self, endpoint: FaultEndpoint) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// Only token requests with this grant type.
    pub fn grant_type(mut self, grant_type: impl Into<String>) -> Self {
        self.grant_type = Some(grant_type.into());
        self
    }

    /// Only refresh_token grants.
    pub fn refresh_only(self) -> Self {
        self.grant_type("refresh_token")
    }

    /// Apply to the next `count` matching requests.
    pub fn times(mut self, count: u32) -> Self {
        self.count = count;
        self
    }

    /// JSON body of a status fault.
    pub fn body(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }

    /// `Retry-After` of a status fault.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

#[derive(Deserialize)]
struct ReadyLine {
    ready: bool,
    issuer: String,
    admin: String,
}

/// A running test provider. Killed (SIGKILL by PID, then reaped) on drop; it also exits by
/// itself when this process dies, because its stdin (a pipe from us) closes.
#[derive(Debug)]
pub struct TestProvider {
    child: Child,
    stdin: Option<ChildStdin>,
    issuer: String,
    admin: String,
    http: reqwest::Client,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

/// The directory holding server.js and package.json: `$LATCHKEY_OP_DIR` or
/// `<this crate>/op`.
pub fn op_dir() -> PathBuf {
    match std::env::var_os("LATCHKEY_OP_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("op"),
    }
}

fn program(var: &str, default: &str) -> String {
    std::env::var(var).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())
}

impl TestProvider {
    /// Installs the provider's npm dependencies if needed, starts it and waits for its ready
    /// line.
    pub async fn start(options: ProviderOptions) -> Result<TestProvider, HarnessError> {
        crate::install_crypto_provider();
        let dir = op_dir();
        {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || ensure_node_modules(&dir))
                .await
                .map_err(|e| HarnessError::Invalid(format!("npm install task failed: {e}")))??;
        }

        let mut cmd = Command::new(program("LATCHKEY_NODE", "node"));
        cmd.arg("server.js")
            .arg("--access-token-ttl")
            .arg(options.access_token_ttl_secs.to_string())
            .arg("--clock-tolerance")
            .arg(options.clock_tolerance_secs.to_string())
            .arg("--refresh-token-ttl")
            .arg(options.refresh_token_ttl_secs.to_string())
            .arg("--id-token-ttl")
            .arg(options.id_token_ttl_secs.to_string())
            .arg("--port")
            .arg(options.port.unwrap_or(0).to_string())
            .args(options.oauth_metadata_only.then_some("--oauth-metadata-only"))
            .args(options.resource_indicators.then_some("--resource-indicators"))
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            HarnessError::io(format!("spawning node server.js in {}", dir.display()), e)
        })?;

        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let echo = std::env::var_os("LATCHKEY_OP_LOG").is_some_and(|v| !v.is_empty() && v != "0");
        if let Some(stderr) = child.stderr.take() {
            let tail = Arc::clone(&stderr_tail);
            std::thread::spawn(move || pump_lines(stderr, &tail, echo));
        }
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Option<String>>();
        if let Some(stdout) = child.stdout.take() {
            let tail = Arc::clone(&stderr_tail);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stdout);
                let mut line = String::new();
                let first = match reader.read_line(&mut line) {
                    Ok(n) if n > 0 => Some(line.trim().to_string()),
                    _ => None,
                };
                let _ = ready_tx.send(first);
                // Keep draining so the provider never blocks on a full pipe.
                pump_lines(reader, &tail, echo);
            });
        }
        let stdin = child.stdin.take();

        let mut provider = TestProvider {
            child,
            stdin,
            issuer: String::new(),
            admin: String::new(),
            http: crate::loopback_client(Duration::from_secs(30))?,
            stderr_tail,
        };

        let first = match tokio::time::timeout(options.start_timeout, ready_rx).await {
            Ok(Ok(Some(line))) => line,
            Ok(_) => {
                // stdout closed: the provider exited. Give stderr a moment to be collected.
                let status = provider.wait_exit(Duration::from_secs(2));
                return Err(provider.start_error(format!("exited before ready ({status})")));
            }
            Err(_) => {
                return Err(provider
                    .start_error(format!("no ready line within {:?}", options.start_timeout)))
            }
        };
        let ready: ReadyLine = serde_json::from_str(&first)
            .map_err(|e| provider.start_error(format!("bad ready line {first:?}: {e}")))?;
        if !ready.ready {
            return Err(provider.start_error(format!("ready line says not ready: {first}")));
        }
        provider.issuer = ready.issuer;
        provider.admin = ready.admin;
        Ok(provider)
    }

    fn wait_exit(&mut self, max: Duration) -> String {
        let deadline = Instant::now() + max;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    // Let the stderr pump catch the last lines.
                    std::thread::sleep(Duration::from_millis(50));
                    return status.to_string();
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => return "still running".to_string(),
                Err(e) => return format!("wait failed: {e}"),
            }
        }
    }

    fn start_error(&mut self, reason: String) -> HarnessError {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(50));
        HarnessError::ProviderStart { reason, stderr: self.stderr_tail() }
    }

    /// The issuer, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The admin API base, `http://127.0.0.1:PORT/__admin`.
    pub fn admin_url(&self) -> &str {
        &self.admin
    }

    /// `ISSUER/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        url::Url::parse(&self.issuer).ok().and_then(|u| u.port()).unwrap_or(0)
    }

    /// Process id of the node process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines the provider wrote on stderr (and any extra stdout lines).
    pub fn stderr_tail(&self) -> String {
        let tail = self.stderr_tail.lock().unwrap_or_else(|e| e.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    async fn admin_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, HarnessError> {
        let url = format!("{}/{}", self.admin, path);
        let mut req = self.http.request(method, &url);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            return Err(HarnessError::Admin {
                path: path.to_string(),
                status: status.as_u16(),
                body: text,
            });
        }
        serde_json::from_str(&text).map_err(|e| HarnessError::Admin {
            path: path.to_string(),
            status: status.as_u16(),
            body: format!("unparsable JSON ({e}): {text}"),
        })
    }

    /// `GET /__admin/counters`.
    pub async fn counters(&self) -> Result<Counters, HarnessError> {
        let value = self.admin_call(reqwest::Method::GET, "counters", None).await?;
        serde_json::from_value(value.clone()).map_err(|e| HarnessError::Admin {
            path: "counters".into(),
            status: 200,
            body: format!("unexpected shape ({e}): {value}"),
        })
    }

    /// `POST /__admin/reset`: zero all counters (pending faults stay queued).
    pub async fn reset(&self) -> Result<(), HarnessError> {
        self.admin_call(reqwest::Method::POST, "reset", None).await.map(|_| ())
    }

    /// `POST /__admin/faults`: queue a fault.
    pub async fn push_fault(&self, fault: Fault) -> Result<(), HarnessError> {
        let body = serde_json::to_value(&fault)
            .map_err(|e| HarnessError::Invalid(format!("fault does not serialize: {e}")))?;
        self.admin_call(reqwest::Method::POST, "faults", Some(body)).await.map(|_| ())
    }

    /// `GET /__admin/faults`: the faults still pending (with their remaining counts).
    pub async fn pending_faults(&self) -> Result<Vec<Fault>, HarnessError> {
        let value = self.admin_call(reqwest::Method::GET, "faults", None).await?;
        serde_json::from_value(value.clone()).map_err(|e| HarnessError::Admin {
            path: "faults".into(),
            status: 200,
            body: format!("unexpected shape ({e}): {value}"),
        })
    }

    /// `DELETE /__admin/faults`: drop every pending fault.
    pub async fn clear_faults(&self) -> Result<(), HarnessError> {
        self.admin_call(reqwest::Method::DELETE, "faults", None).await.map(|_| ())
    }

    /// Lifetime of access tokens issued from now on.
    pub async fn set_access_token_ttl(&self, secs: u64) -> Result<(), HarnessError> {
        self.set_config("access_token_ttl", secs).await
    }

    /// Lifetime of refresh tokens issued from now on.
    pub async fn set_refresh_token_ttl(&self, secs: u64) -> Result<(), HarnessError> {
        self.set_config("refresh_token_ttl", secs).await
    }

    /// Lifetime of ID tokens issued from now on.
    pub async fn set_id_token_ttl(&self, secs: u64) -> Result<(), HarnessError> {
        self.set_config("id_token_ttl", secs).await
    }

    async fn set_config(&self, key: &str, secs: u64) -> Result<(), HarnessError> {
        let body = serde_json::json!({ key: secs });
        self.admin_call(reqwest::Method::POST, "config", Some(body)).await.map(|_| ())
    }

    /// `POST /__admin/revoke-grants`: revoke every grant (of `account` if given) with all its
    /// tokens, like an administrator would. Returns how many grants were revoked.
    pub async fn revoke_grants(&self, account: Option<&str>) -> Result<u64, HarnessError> {
        let body = match account {
            Some(a) => serde_json::json!({ "account": a }),
            None => serde_json::json!({}),
        };
        let value = self.admin_call(reqwest::Method::POST, "revoke-grants", Some(body)).await?;
        Ok(value.get("revoked").and_then(serde_json::Value::as_u64).unwrap_or(0))
    }

    /// Stops the provider now (same as dropping it).
    pub fn stop(self) {}
}

impl Drop for TestProvider {
    fn drop(&mut self) {
        // Closing stdin alone makes the server exit; kill by PID too, and reap it.
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pump_lines<R: Read>(reader: R, tail: &Mutex<VecDeque<String>>, echo: bool) {
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                if echo {
                    eprintln!("[op] {line}");
                }
                let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                if tail.len() == STDERR_TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// npm ci, once, serialized within this process (mutex) and across processes (lock file).

static NPM_MUTEX: Mutex<()> = Mutex::new(());

fn lockfile_digest(dir: &Path) -> Result<String, HarnessError> {
    let path = dir.join("package-lock.json");
    let bytes = std::fs::read(&path)
        .map_err(|e| HarnessError::io(format!("reading {}", path.display()), e))?;
    let digest = Sha256::digest(&bytes);
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

fn installed(dir: &Path, digest: &str) -> bool {
    let marker = dir.join("node_modules").join(NPM_MARKER);
    matches!(std::fs::read_to_string(marker), Ok(s) if s.trim() == digest)
        && dir.join("node_modules/oidc-provider/package.json").is_file()
}

/// Runs `npm ci` in `dir` unless node_modules already matches package-lock.json.
pub fn ensure_node_modules(dir: &Path) -> Result<(), HarnessError> {
    let digest = lockfile_digest(dir)?;
    if installed(dir, &digest) {
        return Ok(());
    }
    let _guard = NPM_MUTEX.lock().unwrap_or_else(|e| e.into_inner());
    let lock_path = dir.join(NPM_LOCK);
    let deadline = Instant::now() + NPM_TIMEOUT;
    loop {
        if installed(dir, &digest) {
            return Ok(());
        }
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&lock_path) {
            Ok(mut lock) => {
                let _ = writeln!(lock, "{}", std::process::id());
                let result = run_npm_ci(dir, &digest);
                let _ = std::fs::remove_file(&lock_path);
                return result;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if lock_is_stale(&lock_path) {
                    let _ = std::fs::remove_file(&lock_path);
                    continue;
                }
                if Instant::now() >= deadline {
                    return Err(HarnessError::NpmLockTimeout(dir.to_path_buf()));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(HarnessError::io(format!("creating {}", lock_path.display()), e)),
        }
    }
}

fn lock_is_stale(lock_path: &Path) -> bool {
    // The holder's PID is in the file: gone process → stale. Unreadable/old file → stale.
    if let Ok(text) = std::fs::read_to_string(lock_path) {
        if let Ok(pid) = text.trim().parse::<u32>() {
            if cfg!(target_os = "linux") && !Path::new(&format!("/proc/{pid}")).exists() {
                return true;
            }
        }
    }
    match std::fs::metadata(lock_path).and_then(|m| m.modified()) {
        Ok(modified) => SystemTime::now()
            .duration_since(modified)
            .map(|age| age > NPM_LOCK_STALE)
            .unwrap_or(false),
        Err(_) => false,
    }
}

fn run_npm_ci(dir: &Path, digest: &str) -> Result<(), HarnessError> {
    let npm = program("LATCHKEY_NPM", "npm");
    let log_path = dir.join(".latchkey-npm-ci.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| HarnessError::io(format!("creating {}", log_path.display()), e))?;
    let log_err = log.try_clone().map_err(|e| HarnessError::io("duplicating npm log handle", e))?;
    let mut child = Command::new(&npm)
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|e| HarnessError::io(format!("spawning `{npm} ci` in {}", dir.display()), e))?;
    let deadline = Instant::now() + NPM_TIMEOUT;
    let (ok, status) = loop {
        match child.try_wait() {
            Ok(Some(status)) => break (status.success(), status.to_string()),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break (false, format!("timed out after {NPM_TIMEOUT:?}"));
            }
            Err(e) => return Err(HarnessError::io("waiting for npm ci", e)),
        }
    };
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    if !ok || !dir.join("node_modules/oidc-provider/package.json").is_file() {
        let lines: Vec<&str> = output.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        return Err(HarnessError::NpmCi { dir: dir.to_path_buf(), status, output: tail });
    }
    let marker = dir.join("node_modules").join(NPM_MARKER);
    std::fs::write(&marker, digest)
        .map_err(|e| HarnessError::io(format!("writing {}", marker.display()), e))?;
    Ok(())
}
