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
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::HarnessError;

/// The longest [`TestProvider::start`] waits for the ready line by default, while the
/// provider process is alive (it fails at once when the process exits). Generous on
/// purpose: a loaded machine can take minutes to start node; a provider that is alive is
/// given that time instead of being declared failed.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(300);
/// How often the start-up checks whether the provider process exited.
const START_POLL: Duration = Duration::from_millis(100);
/// A provider that has not printed its ready line and used no CPU time for this long is
/// stuck, not slow (Linux, where /proc tells): it is killed and the start fails (and is
/// retried) instead of waiting for [`DEFAULT_START_TIMEOUT`]. A loaded machine slows a
/// process down; it does not keep it from being scheduled for a minute.
const START_STALL: Duration = Duration::from_secs(60);
/// Set (non-empty, not `0`) by scripts/test.sh after its `npm ci`: test binaries then never
/// run npm themselves and fail with [`HarnessError::NpmNotInstalled`] if node_modules is not
/// current.
pub const NO_NPM_ENV: &str = "LATCHKEY_OP_NO_NPM";
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
    /// The longest wait for the ready line while the provider process is alive (see
    /// [`DEFAULT_START_TIMEOUT`], 300 s). A process that exits fails the start at once.
    pub start_timeout: Duration,
    /// Serve the metadata only at the RFC 8414 location (`--oauth-metadata-only`).
    pub oauth_metadata_only: bool,
    /// Refresh-token reuse interval (`--reuse-interval`): a consumed refresh token
    /// presented again within this many seconds of its first use is served (new tokens
    /// from the same grant) instead of being treated as reuse, like Auth0's and Okta's
    /// reuse interval. `None` (default): no interval, every reuse revokes the grant.
    pub reuse_interval_secs: Option<u64>,
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
            reuse_interval_secs: None,
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
    /// refresh_token grants served for an already consumed refresh token because it came
    /// back within the reuse interval (also counted in `refresh_grants`, not in
    /// `reuse_detections`).
    #[serde(default)]
    pub reuse_within_interval: u64,
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
    stderr_pump: Option<JoinHandle<()>>,
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
    /// Installs the provider's npm dependencies if needed (unless [`NO_NPM_ENV`] is set),
    /// starts it and waits for its ready line: as long as the process lives, up to
    /// `options.start_timeout`; a process that exits fails at once, with its stderr. A
    /// failed start is retried once (with a fresh port unless `options.port` is fixed).
    pub async fn start(options: ProviderOptions) -> Result<TestProvider, HarnessError> {
        crate::install_crypto_provider();
        let dir = op_dir();
        {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || ensure_node_modules(&dir))
                .await
                .map_err(|e| HarnessError::Invalid(format!("npm install task failed: {e}")))??;
        }
        retry_start_once(|| Self::start_once(&dir, &options)).await
    }

    async fn start_once(
        dir: &Path,
        options: &ProviderOptions,
    ) -> Result<TestProvider, HarnessError> {
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
            .current_dir(dir);
        if let Some(secs) = options.reuse_interval_secs {
            cmd.arg("--reuse-interval").arg(secs.to_string());
        }
        let what = format!("node server.js in {}", dir.display());
        let started = launch(cmd, &what, options.start_timeout, START_STALL).await?;
        let mut provider = TestProvider {
            child: started.child,
            stdin: started.stdin,
            issuer: String::new(),
            admin: String::new(),
            http: crate::loopback_client(Duration::from_secs(30))?,
            stderr_tail: started.stderr_tail,
            stderr_pump: started.stderr_pump,
        };
        let first = started.first_line;
        let ready: ReadyLine = serde_json::from_str(&first)
            .map_err(|e| provider.start_error(format!("bad ready line {first:?}: {e}")))?;
        if !ready.ready {
            return Err(provider.start_error(format!("ready line says not ready: {first}")));
        }
        provider.issuer = ready.issuer;
        provider.admin = ready.admin;
        Ok(provider)
    }

    fn start_error(&mut self, reason: String) -> HarnessError {
        let _ = self.child.kill();
        let _ = self.child.wait();
        wait_for_pump(self.stderr_pump.as_ref());
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

    /// Refresh-token reuse interval from now on (`0`: off): a consumed refresh token
    /// presented again within `secs` of its first use is served instead of revoking the
    /// grant. Counted in [`Counters::reuse_within_interval`].
    pub async fn set_reuse_interval(&self, secs: u64) -> Result<(), HarnessError> {
        self.set_config("reuse_interval", secs).await
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

/// Runs `start`; if it fails with [`HarnessError::ProviderStart`], runs it once more and
/// returns that result (a second start failure names the first one too). Other errors are
/// returned at once.
async fn retry_start_once<T, F, Fut>(mut start: F) -> Result<T, HarnessError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, HarnessError>>,
{
    match start().await {
        Err(HarnessError::ProviderStart { reason: first, stderr }) => {
            eprintln!(
                "test provider did not start ({first}); retrying once\n--- its stderr ---\n{stderr}"
            );
            start().await.map_err(|e| match e {
                HarnessError::ProviderStart { reason, stderr } => HarnessError::ProviderStart {
                    reason: format!("{reason} (after a first attempt that failed: {first})"),
                    stderr,
                },
                other => other,
            })
        }
        other => other,
    }
}

/// A spawned child that printed its first stdout line.
struct Started {
    child: Child,
    stdin: Option<ChildStdin>,
    first_line: String,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    stderr_pump: Option<JoinHandle<()>>,
}

/// Spawns `cmd` with piped stdio and waits for its first stdout line as long as it lives,
/// at most `timeout`. Fails at once (with the child killed, reaped, and its stderr tail)
/// when the child exits or closes stdout first, when it used no CPU time for `stall`
/// (Linux only), or when `timeout` passes.
async fn launch(
    mut cmd: Command,
    what: &str,
    timeout: Duration,
    stall: Duration,
) -> Result<Started, HarnessError> {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| HarnessError::io(format!("spawning {what}"), e))?;
    let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
    let echo = std::env::var_os("LATCHKEY_OP_LOG").is_some_and(|v| !v.is_empty() && v != "0");
    let stderr_pump = child.stderr.take().map(|stderr| {
        let tail = Arc::clone(&stderr_tail);
        std::thread::spawn(move || pump_lines(stderr, &tail, echo))
    });
    let (ready_tx, mut ready_rx) = tokio::sync::oneshot::channel::<Option<String>>();
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
            // Keep draining so the child never blocks on a full pipe.
            pump_lines(reader, &tail, echo);
        });
    }
    let stdin = child.stdin.take();
    let started = Instant::now();
    let pid = child.id();
    let mut progress = (proc_stat(pid).map(|p| p.cpu_ticks), Instant::now());
    let fail = |mut child: Child, pump: Option<JoinHandle<()>>, reason: String| {
        let _ = child.kill();
        let _ = child.wait();
        wait_for_pump(pump.as_ref());
        let tail = stderr_tail.lock().unwrap_or_else(|e| e.into_inner());
        let stderr = tail.iter().cloned().collect::<Vec<_>>().join("\n");
        HarnessError::ProviderStart { reason, stderr }
    };
    loop {
        match tokio::time::timeout(START_POLL, &mut ready_rx).await {
            Ok(Ok(Some(first_line))) => {
                return Ok(Started { child, stdin, first_line, stderr_tail, stderr_pump })
            }
            Ok(_) => {
                // stdout closed without a line: the child is exiting (or closed it itself).
                let status = wait_exit(&mut child, Duration::from_secs(2));
                let reason = format!("{what} closed stdout before its ready line ({status})");
                return Err(fail(child, stderr_pump, reason));
            }
            Err(_) => {}
        }
        // Still no line: fail at once if the child is gone (a child of it may hold stdout).
        if let Ok(Some(status)) = child.try_wait() {
            // A line written just before exiting still counts as an exit first: the
            // provider is not running.
            let reason = format!("{what} exited before its ready line ({status})");
            return Err(fail(child, stderr_pump, reason));
        }
        let stat = proc_stat(pid);
        if let Some(stat) = &stat {
            if progress.0 != Some(stat.cpu_ticks) {
                progress = (Some(stat.cpu_ticks), Instant::now());
            } else if progress.1.elapsed() >= stall {
                let reason = format!(
                    "{what} printed no ready line and used no CPU time for {stall:?} (stuck; {})",
                    stat.describe()
                );
                return Err(fail(child, stderr_pump, reason));
            }
        }
        if started.elapsed() >= timeout {
            let state = stat.map(|s| format!("; {}", s.describe())).unwrap_or_default();
            let reason =
                format!("{what} printed no ready line within {timeout:?} (still running{state})");
            return Err(fail(child, stderr_pump, reason));
        }
    }
}

/// What /proc says about a process: scheduler state and CPU time used.
struct ProcStat {
    state: char,
    cpu_ticks: u64,
    wchan: String,
}

impl ProcStat {
    fn describe(&self) -> String {
        format!(
            "process state {}, {} CPU ticks, waiting in {:?}",
            self.state, self.cpu_ticks, self.wchan
        )
    }
}

/// `/proc/PID/stat` (state, utime + stime) and `/proc/PID/wchan`; `None` where there is no
/// /proc or the process is gone.
fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    Some(ProcStat { state, cpu_ticks: utime + stime, wchan })
}

/// Waits up to `max` for `child` to exit; its status, or "still running".
fn wait_exit(child: &mut Child, max: Duration) -> String {
    let deadline = Instant::now() + max;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.to_string(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => return "still running".to_string(),
            Err(e) => return format!("wait failed: {e}"),
        }
    }
}

/// Lets the stderr pump collect the last lines of an exited child (bounded: a grandchild may
/// keep the pipe open).
fn wait_for_pump(pump: Option<&JoinHandle<()>>) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while pump.is_some_and(|p| !p.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
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
    if std::env::var_os(NO_NPM_ENV).is_some_and(|v| !v.is_empty() && v != "0") {
        return Err(HarnessError::NpmNotInstalled(dir.to_path_buf()));
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    fn start_failure(result: Result<Started, HarnessError>) -> (String, String) {
        match result {
            Err(HarnessError::ProviderStart { reason, stderr }) => (reason, stderr),
            Err(other) => panic!("unexpected error {other}"),
            Ok(started) => panic!("started: {:?}", started.first_line),
        }
    }

    #[tokio::test]
    async fn a_child_exiting_before_its_ready_line_is_reported_at_once_with_its_stderr() {
        let t = Instant::now();
        let result = launch(
            sh("echo 'Error: Cannot find module oidc-provider' >&2; exit 3"),
            "fake provider",
            Duration::from_secs(300),
            START_STALL,
        )
        .await;
        let (reason, stderr) = start_failure(result);
        assert!(t.elapsed() < Duration::from_secs(10), "took {:?}", t.elapsed());
        assert!(reason.contains("exit status: 3"), "{reason}");
        assert!(stderr.contains("Cannot find module oidc-provider"), "{stderr}");
    }

    /// A child of the child keeps stdout open, so no end-of-file tells us: the exit must.
    #[tokio::test]
    async fn a_child_exiting_while_its_stdout_stays_open_is_reported_at_once() {
        let t = Instant::now();
        let result = launch(
            sh("sleep 4 & echo 'listen EADDRINUSE' >&2; exit 5"),
            "fake provider",
            Duration::from_secs(300),
            START_STALL,
        )
        .await;
        let (reason, stderr) = start_failure(result);
        assert!(t.elapsed() < Duration::from_secs(3), "took {:?}", t.elapsed());
        assert!(
            reason.contains("exited before its ready line") && reason.contains('5'),
            "{reason}"
        );
        assert!(stderr.contains("EADDRINUSE"), "{stderr}");
    }

    #[tokio::test]
    async fn a_slow_child_is_waited_for_and_a_silent_one_times_out() {
        let started = launch(
            sh("sleep 1; echo '{\"ready\":true}'; cat >/dev/null"),
            "slow provider",
            Duration::from_secs(300),
            START_STALL,
        )
        .await
        .unwrap();
        assert_eq!(started.first_line, r#"{"ready":true}"#);
        let mut child = started.child;
        drop(started.stdin); // its `cat` ends
        assert!(child.wait().unwrap().success());

        let t = Instant::now();
        let (reason, _) = start_failure(
            launch(
                sh("echo starting >&2; while :; do :; done"),
                "busy provider",
                Duration::from_millis(500),
                START_STALL,
            )
            .await,
        );
        assert!(reason.contains("no ready line") && reason.contains("still running"), "{reason}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    /// Alive but blocked for good (no CPU time used): reported as stuck long before the cap.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_child_that_uses_no_cpu_without_a_ready_line_is_reported_stuck() {
        let t = Instant::now();
        let (reason, stderr) = start_failure(
            launch(
                sh("echo 'loading' >&2; exec sleep 30"),
                "stuck provider",
                Duration::from_secs(300),
                Duration::from_millis(800),
            )
            .await,
        );
        assert!(reason.contains("stuck") && reason.contains("process state S"), "{reason}");
        assert!(stderr.contains("loading"), "{stderr}");
        assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
    }

    #[tokio::test]
    async fn a_failed_start_is_retried_once() {
        // First attempt exits early, the second one is ready.
        let mut attempts = 0;
        let started = retry_start_once(|| {
            attempts += 1;
            let script = if attempts == 1 {
                "echo 'first start crashed' >&2; exit 1"
            } else {
                "echo '{\"ready\":true}'; cat >/dev/null"
            };
            launch(sh(script), "provider", Duration::from_secs(300), START_STALL)
        })
        .await
        .unwrap();
        assert_eq!(attempts, 2);
        assert_eq!(started.first_line, r#"{"ready":true}"#);
        let mut child = started.child;
        drop(started.stdin);
        child.wait().unwrap();

        // Two failures: the error tells both, and there is no third attempt.
        let mut attempts = 0;
        let result = retry_start_once(|| {
            attempts += 1;
            launch(sh("exit 7"), "provider", Duration::from_secs(300), START_STALL)
        })
        .await;
        let (reason, _) = start_failure(result);
        assert_eq!(attempts, 2);
        assert!(reason.contains("after a first attempt that failed"), "{reason}");

        // Other errors are not retried.
        let mut attempts = 0;
        let result: Result<(), HarnessError> = retry_start_once(|| {
            attempts += 1;
            std::future::ready(Err(HarnessError::Invalid("bad options".into())))
        })
        .await;
        assert!(matches!(result, Err(HarnessError::Invalid(_))));
        assert_eq!(attempts, 1);
    }

    #[test]
    fn no_npm_env_refuses_to_install() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("package-lock.json"), "{}").unwrap();
        // Only this test reads the variable through `ensure_node_modules` with a fake dir;
        // set it for the duration via a child process instead of mutating our environment.
        let exe = std::env::current_exe().unwrap();
        let out = Command::new(exe)
            .args(["--exact", "op::tests::no_npm_env_child", "--nocapture", "--ignored"])
            .env(NO_NPM_ENV, "1")
            .env("LATCHKEY_NO_NPM_TEST_DIR", dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("refused: NpmNotInstalled"), "{text}");
    }

    #[test]
    #[ignore = "run by no_npm_env_refuses_to_install in a child process"]
    fn no_npm_env_child() {
        let Some(dir) = std::env::var_os("LATCHKEY_NO_NPM_TEST_DIR") else { return };
        match ensure_node_modules(Path::new(&dir)) {
            Err(e @ HarnessError::NpmNotInstalled(_)) => println!("refused: NpmNotInstalled ({e})"),
            other => panic!("expected NpmNotInstalled, got {other:?}"),
        }
    }
}
