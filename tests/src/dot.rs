//! The second real provider: django-oauth-toolkit (`tests/dot/serve.py`, a minimal Django
//! project) started on a free loopback port with a fresh SQLite database and a freshly
//! generated RS256 key, in a virtualenv installed by `scripts/install-dot.sh`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), latchkey_e2e::HarnessError> {
//! use latchkey_e2e::dot::{DotOptions, DotProvider};
//! let dot = DotProvider::start(DotOptions::default()).await?;
//! println!("issuer {}", dot.issuer());
//! # Ok(()) }
//! ```
//!
//! Unlike the node provider it has no admin API: no counters and no fault injection.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::HarnessError;

/// How long [`DotProvider::start`] waits for the ready line by default (a cold start runs
/// the migrations once).
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest wait for `scripts/install-dot.sh` (a cold virtualenv install).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
const STDERR_TAIL_LINES: usize = 200;

/// Start options of django-oauth-toolkit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DotOptions {
    /// `ACCESS_TOKEN_EXPIRE_SECONDS`. Default 60.
    pub access_token_ttl_secs: u64,
    /// `ID_TOKEN_EXPIRE_SECONDS`. Default 3600.
    pub id_token_ttl_secs: u64,
    /// `REFRESH_TOKEN_EXPIRE_SECONDS`. Default 86 400.
    pub refresh_token_ttl_secs: u64,
    /// How long to wait for the ready line.
    pub start_timeout: Duration,
    /// Refuse revocation by public clients with `invalid_client`
    /// (`--revocation-requires-client-auth`), as providers that accept only
    /// `client_secret_basic` there do. Default false.
    pub revocation_requires_client_auth: bool,
    /// Drop `login` from the `prompt` of authorization requests (`--ignore-prompt-login`),
    /// as a widely used provider does while advertising it. Default false.
    pub ignore_prompt_login: bool,
}

impl Default for DotOptions {
    fn default() -> Self {
        DotOptions {
            access_token_ttl_secs: 60,
            id_token_ttl_secs: 3600,
            refresh_token_ttl_secs: 86_400,
            start_timeout: DEFAULT_START_TIMEOUT,
            revocation_requires_client_auth: false,
            ignore_prompt_login: false,
        }
    }
}

#[derive(Deserialize)]
struct ReadyLine {
    ready: bool,
    issuer: String,
}

/// A running django-oauth-toolkit. Killed (by PID, then reaped) on drop; it also exits by
/// itself when this process dies, because its stdin (a pipe from us) closes. Its database
/// and key live in a temporary directory removed on drop.
#[derive(Debug)]
pub struct DotProvider {
    child: Child,
    stdin: Option<ChildStdin>,
    issuer: String,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    _state: tempfile::TempDir,
}

/// The directory holding serve.py: `$LATCHKEY_DOT_DIR` or `<this crate>/dot`.
pub fn dot_dir() -> PathBuf {
    match std::env::var_os("LATCHKEY_DOT_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("dot"),
    }
}

/// The virtualenv's python: `$LATCHKEY_DOT_PYTHON` (set by scripts/test.sh), else what
/// `scripts/install-dot.sh` prints (installing the virtualenv when missing).
pub fn python() -> Result<PathBuf, HarnessError> {
    if let Some(p) = std::env::var_os("LATCHKEY_DOT_PYTHON").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    static CACHED: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut cached = CACHED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = cached.as_ref() {
        return Ok(p.clone());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-dot.sh");
    let mut child = Command::new(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| HarnessError::io(format!("spawning {}", script.display()), e))?;
    let mut out = String::new();
    let mut err = String::new();
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + INSTALL_TIMEOUT;
    let _ = stdout.read_to_string(&mut out);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HarnessError::Invalid(format!("{} timed out", script.display())));
            }
            Err(e) => return Err(HarnessError::io("waiting for install-dot.sh", e)),
        }
    };
    err.push_str(&err_reader.join().unwrap_or_default());
    let path = out.lines().last().unwrap_or_default().trim().to_string();
    if !status.success() || path.is_empty() {
        return Err(HarnessError::ProviderStart {
            reason: format!("{} failed ({status})", script.display()),
            stderr: err,
        });
    }
    let path = PathBuf::from(path);
    *cached = Some(path.clone());
    Ok(path)
}

impl DotProvider {
    /// Installs the virtualenv if needed, starts django-oauth-toolkit on 127.0.0.1 with a
    /// free port and waits for its ready line (database migrated, users alice and bob).
    pub async fn start(options: DotOptions) -> Result<DotProvider, HarnessError> {
        crate::install_crypto_provider();
        let python = tokio::task::spawn_blocking(python)
            .await
            .map_err(|e| HarnessError::Invalid(format!("install task failed: {e}")))??;
        let state = tempfile::Builder::new()
            .prefix("latchkey-dot-")
            .tempdir()
            .map_err(|e| HarnessError::io("creating the provider's state directory", e))?;
        let dir = dot_dir();
        let mut child = Command::new(&python)
            .arg("serve.py")
            .arg("--access-token-ttl")
            .arg(options.access_token_ttl_secs.to_string())
            .arg("--id-token-ttl")
            .arg(options.id_token_ttl_secs.to_string())
            .arg("--refresh-token-ttl")
            .arg(options.refresh_token_ttl_secs.to_string())
            .arg("--state-dir")
            .arg(state.path())
            .args(
                options
                    .revocation_requires_client_auth
                    .then_some("--revocation-requires-client-auth"),
            )
            .args(options.ignore_prompt_login.then_some("--ignore-prompt-login"))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| HarnessError::io(format!("spawning {} serve.py", python.display()), e))?;

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
                pump_lines(reader, &tail, echo);
            });
        }
        let stdin = child.stdin.take();
        let mut provider =
            DotProvider { child, stdin, issuer: String::new(), stderr_tail, _state: state };
        let first = match tokio::time::timeout(options.start_timeout, ready_rx).await {
            Ok(Ok(Some(line))) => line,
            Ok(_) => return Err(provider.start_error("exited before ready".into())),
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
        Ok(provider)
    }

    fn start_error(&mut self, reason: String) -> HarnessError {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(100));
        HarnessError::ProviderStart { reason, stderr: self.stderr_tail() }
    }

    /// The issuer, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Process id of the python process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines the provider wrote on stderr (request log, errors).
    pub fn stderr_tail(&self) -> String {
        let tail = self.stderr_tail.lock().unwrap_or_else(|e| e.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for DotProvider {
    fn drop(&mut self) {
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
                    eprintln!("[dot] {line}");
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
