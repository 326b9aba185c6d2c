//! The `latchkey` command-line tool against the real test provider: every command, exit
//! codes (0 ok, 1 usage, 2 reauthentication / no session, 3 transient, 4 protocol), JSON
//! shapes, and that no token value ever reaches any output but `token`'s.
//!
//! The CLI is a binary of the `latchkey` package (feature `cli`), so Cargo does not build it
//! for this crate's tests and `CARGO_BIN_EXE_latchkey` does not exist here. [`cli_bin`] finds
//! it: `LATCHKEY_CLI_BIN` when set; otherwise it runs
//! `cargo build -p latchkey --features cli --bin latchkey` (a no-op when up to date) into the
//! target directory this test binary was built in (derived from its own path,
//! `<target>/<profile>/deps/cli-…`) and uses `<target>/<profile>/latchkey`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use latchkey_e2e::browser::BrowserLogin;
use latchkey_e2e::op::{Fault, FaultWhen, ProviderOptions, TestProvider};
use serde_json::Value;

// --- finding and running the binary ---------------------------------------------------------

fn cli_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("LATCHKEY_CLI_BIN").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe.parent().and_then(Path::parent).expect("<target>/<profile>");
        let target_dir = profile_dir.parent().expect("<target>");
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace)
            .args(["build", "--quiet", "-p", "latchkey", "--features", "cli", "--bin", "latchkey"])
            .arg("--target-dir")
            .arg(target_dir);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build for the latchkey CLI");
        assert!(status.success(), "building the latchkey CLI failed");
        let bin = profile_dir.join("latchkey");
        assert!(bin.is_file(), "no CLI at {}; set LATCHKEY_CLI_BIN", bin.display());
        bin
    })
}

/// What one invocation printed.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {self:?}"))
    }

    /// The `--json` error object on stderr.
    fn error(&self) -> Value {
        let v: Value = serde_json::from_str(self.stderr.trim())
            .unwrap_or_else(|e| panic!("stderr is not one JSON object ({e}): {self:?}"));
        assert_eq!(v["error"]["code"].as_i64(), Some(self.code as i64), "{self:?}");
        assert!(v["error"]["kind"].is_string() && v["error"]["message"].is_string(), "{v}");
        v["error"].clone()
    }

    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    #[track_caller]
    fn expect(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "exit code; {self:?}");
        self
    }

    /// A plain error: exactly one `latchkey: …` line on stderr.
    #[track_caller]
    fn one_line_error(&self, code: i32, contains: &str) -> &Run {
        self.expect(code);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one stderr line; {self:?}");
        assert!(lines[0].starts_with("latchkey: "), "{self:?}");
        assert!(lines[0].contains(contains), "wanted `{contains}` in {self:?}");
        self
    }
}

fn run_cmd(mut cmd: Command) -> Run {
    let out = cmd.stdin(Stdio::null()).output().expect("run latchkey");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn bare() -> Command {
    let mut cmd = Command::new(cli_bin());
    cmd.env_remove("LATCHKEY_STATE_DIR")
        .env_remove("LATCHKEY_INSECURE_LOOPBACK")
        .env_remove("RUST_LOG");
    cmd
}

/// A state directory and the issuer the commands use.
struct Env {
    dir: tempfile::TempDir,
    issuer: String,
}

impl Env {
    fn new(issuer: &str) -> Env {
        Env { dir: tempfile::tempdir().unwrap(), issuer: issuer.to_string() }
    }

    fn state(&self) -> &Path {
        self.dir.path()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = bare();
        cmd.arg("--state-dir").arg(self.state()).arg("--insecure-loopback").args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        run_cmd(self.cmd(args))
    }

    fn register(&self) -> Run {
        let r = self.run(&[
            "--json",
            "register",
            "--issuer",
            &self.issuer,
            "--redirect-uri",
            "http://127.0.0.1/callback",
        ]);
        r.expect(0);
        r
    }

    /// `login --json`, with the headless browser answering as `opts` says. Returns the
    /// authorization URL line and the finished run.
    async fn login(&self, opts: BrowserLogin, extra: &[&str]) -> (Value, Run) {
        self.login_as(true, opts, extra).await
    }

    /// Like [`Env::login`]; without `json` the first line is the bare URL (returned as a
    /// JSON string).
    async fn login_as(&self, json: bool, opts: BrowserLogin, extra: &[&str]) -> (Value, Run) {
        let mut args = if json { vec!["--json"] } else { vec![] };
        args.extend_from_slice(&["login", "--timeout", "30"]);
        args.extend_from_slice(extra);
        let mut child = self
            .cmd(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn latchkey login");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let (url_line, url) = if json {
            let v: Value = serde_json::from_str(first.trim())
                .unwrap_or_else(|e| panic!("first line is not JSON ({e}): {first:?}"));
            let url = v["authorization_url"].as_str().expect("authorization_url").to_string();
            (v, url)
        } else {
            (Value::String(first.trim().to_string()), first.trim().to_string())
        };
        let redirect = latchkey_e2e::login(&url, &opts).await.expect("headless browser");
        let delivery = latchkey_e2e::deliver(&redirect).await.expect("deliver the redirect");
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        let status = child.wait().unwrap();
        let run = Run { code: status.code().unwrap_or(-1), stdout: rest, stderr };
        assert!(delivery.body.contains("<html>"), "the listener answers with a page");
        (url_line, run)
    }

    async fn signed_in(issuer: &str) -> Env {
        let env = Env::new(issuer);
        env.register();
        let (_, run) = env.login(BrowserLogin::default(), &[]).await;
        run.expect(0);
        env
    }

    /// Every token value the state directory holds right now (session and registration).
    fn secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(text) = std::fs::read_to_string(self.state().join("session.json")) {
            // FileSessionStore: {"generation", "format", "session": {"format", "session": {…}}}
            let v: Value = serde_json::from_str(&text).unwrap();
            let session = &v["session"]["session"];
            assert!(session.is_object(), "session.json layout: {v}");
            for k in ["access_token", "refresh_token", "id_token"] {
                if let Some(s) = session[k].as_str().filter(|s| !s.is_empty()) {
                    out.push(s.to_string());
                }
            }
        }
        if let Ok(text) = std::fs::read_to_string(self.state().join("registration.json")) {
            let v: Value = serde_json::from_str(&text).unwrap();
            if let Some(s) = v["registration_access_token"].as_str() {
                out.push(s.to_string());
            }
        }
        out
    }
}

#[track_caller]
fn assert_no_secret(secrets: &[String], runs: &[&Run]) {
    assert!(!secrets.is_empty());
    for run in runs {
        let text = run.all();
        for s in secrets {
            assert!(!text.contains(s.as_str()), "a token value leaked into {run:?}");
            // The parts of a JWT (header, payload, signature) must not show either.
            for part in s.split('.').filter(|p| p.len() >= 16) {
                assert!(!text.contains(part), "part of a token leaked into {run:?}");
            }
        }
    }
}

async fn provider(ttl: u64) -> TestProvider {
    TestProvider::start(ProviderOptions { access_token_ttl_secs: ttl, ..Default::default() })
        .await
        .expect("test provider")
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// --- usage ---------------------------------------------------------------------------------

#[test]
fn bad_cli_input_exits_1_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for args in [
        vec![],
        vec!["frobnicate"],
        vec!["--state-dir", d, "watch"],
        vec!["--state-dir", d, "watch", "--duration", "-1"],
        vec!["--state-dir", d, "watch", "--duration", "5", "--tasks", "0"],
        vec!["--state-dir", d, "discover"],
        vec!["--state-dir", d, "discover", "--issuer", "not a url"],
        vec!["--state-dir", d, "register", "--issuer", "https://op.example"],
        vec!["--state-dir", d, "token", "--min-ttl", "soon"],
        vec!["--state-dir", d, "--no-such-flag", "status"],
        vec!["--state-dir", d, "--holder", "", "status"],
    ] {
        let mut cmd = bare();
        cmd.args(&args);
        let r = run_cmd(cmd);
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        assert!(r.stdout.is_empty(), "{args:?}: {r:?}");
        assert!(r.stderr.contains("error") || r.stderr.contains("Usage"), "{args:?}: {r:?}");
    }
    // login without --issuer and without a registration is a usage error too.
    let mut cmd = bare();
    cmd.args(["--state-dir", d, "login"]);
    run_cmd(cmd).one_line_error(1, "login needs --issuer");
    // Help and version succeed on stdout.
    for flag in ["--help", "--version"] {
        let mut cmd = bare();
        cmd.arg(flag);
        let r = run_cmd(cmd).expect(0).stdout.clone();
        assert!(r.contains("latchkey"), "{r}");
    }
}

#[test]
fn with_json_every_usage_error_is_one_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for args in [
        vec!["--json"],
        vec!["--json", "frobnicate"],
        vec!["--json", "--state-dir", d, "watch"],
        vec!["--state-dir", d, "watch", "--json", "--duration", "-1"],
        vec!["--json", "--state-dir", d, "watch", "--duration", "5", "--tasks", "0"],
        vec!["--json", "--state-dir", d, "discover"],
        vec!["--json", "--state-dir", d, "discover", "--issuer", "not a url"],
        vec!["--json", "--state-dir", d, "token", "--min-ttl", "soon"],
        vec!["--json", "--state-dir", d, "--no-such-flag", "status"],
        vec!["--json", "--state-dir", d, "--holder", "", "status"],
        vec!["--json", "--state-dir", d, "status", "extra-argument"],
        vec!["--json", "--state-dir", d, "login"],
    ] {
        let mut cmd = bare();
        cmd.args(&args);
        let r = run_cmd(cmd);
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        assert!(r.stdout.is_empty(), "{args:?}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {r:?}");
        let e = r.error();
        assert_eq!(e["kind"], "usage", "{args:?}: {e}");
        let m = e["message"].as_str().unwrap();
        assert!(!m.is_empty() && !m.contains("Usage:"), "{args:?}: {m}");
    }
    // Without --json (or with it after `--`) the error stays clap's text.
    let mut cmd = bare();
    cmd.args(["frobnicate", "--", "--json"]);
    let r = run_cmd(cmd);
    assert_eq!(r.code, 1);
    assert!(serde_json::from_str::<Value>(r.stderr.trim()).is_err(), "{r:?}");
    // --help and --version stay text on stdout.
    for flag in ["--help", "--version"] {
        let mut cmd = bare();
        cmd.args(["--json", flag]);
        let r = run_cmd(cmd).expect(0).stdout.clone();
        assert!(r.contains("latchkey"), "{r}");
    }
}

// --- discovery and issuer errors -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn hostile_provider_metadata_gives_exit_4_and_one_json_error() {
    use latchkey_e2e::hostile::{HostileProvider, Reply};
    let hp = HostileProvider::start().await.unwrap();
    let env = Env::new(hp.issuer());
    let port = url::Url::parse(hp.issuer()).unwrap().port().unwrap();
    let cases = [
        (
            "issuer",
            serde_json::json!("https://evil.example"),
            "invalid_response",
            "discovery document names issuer",
        ),
        (
            "token_endpoint",
            serde_json::json!(format!("http://localhost:{port}/token")),
            "insecure_url",
            "must use https",
        ),
        ("jwks_uri", serde_json::json!("http://op.example/jwks"), "insecure_url", "must use https"),
    ];
    for (field, value, kind, message) in cases {
        let mut m = hp.good_metadata();
        m[field] = value;
        hp.set("/.well-known/openid-configuration", Reply::json(&m));
        for command in ["discover", "register"] {
            let mut args = vec!["--json", command, "--issuer", hp.issuer()];
            if command == "register" {
                args.extend(["--redirect-uri", "http://127.0.0.1/cb"]);
            }
            let r = env.run(&args);
            r.expect(4);
            assert!(r.stdout.is_empty(), "{field}: {r:?}");
            let e = r.error();
            assert_eq!(e["kind"], kind, "{field}: {e}");
            assert!(e["message"].as_str().unwrap().contains(message), "{field}: {e}");
        }
    }
    assert!(!env.state().join("registration.json").exists());
    assert!(hp.requests_to("/reg").is_empty(), "a hostile provider got a registration");
}

#[tokio::test(flavor = "multi_thread")]
async fn discover_human_and_json() {
    let op = provider(60).await;
    let env = Env::new(op.issuer());
    let r = env.run(&["--json", "discover", "--issuer", op.issuer()]);
    let v = r.expect(0).json();
    assert_eq!(v["issuer"], op.issuer());
    assert_eq!(v["metadata_source"], "openid-configuration");
    assert_eq!(v["endpoints"]["token"], format!("{}/token", op.issuer()));
    for f in [
        "pkce_s256",
        "authorization_response_iss_parameter",
        "dynamic_registration",
        "refresh_token_grant",
        "revocation",
        "end_session",
        "userinfo",
    ] {
        assert_eq!(v["features"][f], true, "{f}: {v}");
    }
    assert!(v["scopes_supported"].as_array().unwrap().iter().any(|s| s == "offline_access"));

    let r = env.run(&["discover", "--issuer", op.issuer()]);
    r.expect(0);
    assert!(r.stdout.lines().next().unwrap().starts_with("issuer"), "{r:?}");
    assert!(r.stdout.contains("PKCE S256") && r.stderr.is_empty(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_issuer_unreachable_provider_and_http_issuer() {
    let op = provider(60).await;
    let env = Env::new(op.issuer());

    // A path where no provider lives: protocol error, exit 4.
    let wrong = format!("{}/not-here", op.issuer());
    env.run(&["discover", "--issuer", &wrong]).one_line_error(4, "no OpenID provider at");
    env.run(&["register", "--issuer", &wrong, "--redirect-uri", "http://127.0.0.1/cb"])
        .one_line_error(4, "no OpenID provider at");
    let r = env.run(&["login", "--issuer", &wrong]);
    r.one_line_error(4, "no OpenID provider at");
    assert!(r.stdout.is_empty(), "no authorization URL for a wrong issuer: {r:?}");
    let e = env.run(&["--json", "discover", "--issuer", &wrong]).expect(4).error();
    assert_eq!(e["kind"], "http_status");

    // Nothing listens: transient, exit 3.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let gone = format!("http://127.0.0.1:{port}");
    env.run(&["discover", "--issuer", &gone]).one_line_error(3, "cannot reach the provider");
    env.run(&["login", "--issuer", &gone]).one_line_error(3, "cannot reach the provider");
    let e = env.run(&["--json", "discover", "--issuer", &gone]).expect(3).error();
    assert_eq!(e["kind"], "network");

    // http without --insecure-loopback, or on a non-IP host: refused, exit 4.
    let mut cmd = bare();
    cmd.arg("--state-dir").arg(env.state()).args(["discover", "--issuer", op.issuer()]);
    run_cmd(cmd).one_line_error(4, "--insecure-loopback");
    env.run(&["discover", "--issuer", "http://localhost:1"])
        .one_line_error(4, "only on 127.0.0.1 or ::1");
    let mut cmd = bare();
    cmd.arg("--state-dir").arg(env.state()).args(["discover", "--issuer", "http://op.example"]);
    run_cmd(cmd).one_line_error(4, "must use https");
    // The environment variable works like the flag.
    let mut cmd = bare();
    cmd.env("LATCHKEY_INSECURE_LOOPBACK", "1").arg("--state-dir").arg(env.state());
    cmd.args(["discover", "--issuer", op.issuer()]);
    run_cmd(cmd).expect(0);
}

// --- no registration, no session ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn without_registration_or_session_every_session_command_exits_2() {
    let op = provider(60).await;
    let env = Env::new(op.issuer());
    for cmd in [
        vec!["token"],
        vec!["refresh"],
        vec!["userinfo"],
        vec!["logout"],
        vec!["watch", "--duration", "1"],
    ] {
        env.run(&cmd).one_line_error(2, "no registration in");
        let e = env.run(&[&["--json"][..], &cmd].concat()).expect(2).error();
        assert_eq!(e["kind"], "not_registered", "{cmd:?}");
    }
    let r = env.run(&["--json", "status"]);
    r.expect(2);
    assert_eq!(r.json()["state"], "unregistered");

    env.register();
    for cmd in [
        vec!["token"],
        vec!["refresh"],
        vec!["userinfo"],
        vec!["logout"],
        vec!["watch", "--duration", "1"],
    ] {
        env.run(&cmd).one_line_error(2, "no session");
        let e = env.run(&[&["--json"][..], &cmd].concat()).expect(2).error();
        assert_eq!(e["kind"], "no_session", "{cmd:?}");
    }
    let r = env.run(&["--json", "status"]);
    r.expect(2);
    let v = r.json();
    assert_eq!(v["state"], "no_session");
    assert_eq!(v["registration"]["issuer"], op.issuer());
    assert!(v["session"].is_null());

    // LATCHKEY_STATE_DIR works like --state-dir.
    let mut cmd = bare();
    cmd.env("LATCHKEY_STATE_DIR", env.state()).args(["--insecure-loopback", "--json", "status"]);
    assert_eq!(run_cmd(cmd).expect(2).json()["state"], "no_session");
}

// --- the whole flow -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn every_command_end_to_end_without_leaking_tokens() {
    let op = provider(60).await;
    let env = Env::new(op.issuer());

    // register: JSON shape, registration.json 0600, no registration_access_token printed.
    let reg = env.register();
    let v = reg.json();
    assert_eq!(v["registered"], true);
    assert_eq!(v["issuer"], op.issuer());
    assert!(v["client_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(v["redirect_uris"][0], "http://127.0.0.1/callback");
    assert!(v.get("registration_access_token").is_none());
    assert_eq!(mode(&env.state().join("registration.json")), 0o600);
    let client_id = v["client_id"].as_str().unwrap().to_string();

    // login: first line is the authorization URL, then the summary.
    let (url_line, login) = env.login(BrowserLogin::default(), &["--scope", "profile"]).await;
    login.expect(0);
    let url = url_line["authorization_url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/auth?", op.issuer())), "{url}");
    assert!(url.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A"), "loopback with a port: {url}");
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    let s = login.json();
    assert_eq!(s["signed_in"], true);
    assert_eq!(s["subject"], "alice");
    assert_eq!(s["issuer"], op.issuer());
    assert_eq!(s["client_id"], client_id.as_str());
    assert_eq!(s["generation"], 1);
    assert_eq!(s["has_refresh_token"], true);
    assert!(s["expires_in"].as_f64().unwrap() > 50.0);
    assert!(s["scopes"].as_array().unwrap().iter().any(|x| x == "profile"));
    assert_eq!(mode(&env.state().join("session.json")), 0o600);
    assert!(env.state().join("lock.db").is_file());
    let secrets_gen1 = env.secrets();

    // token: the one command that prints a token.
    let token1 = env.run(&["token"]);
    token1.expect(0);
    let t1 = token1.stdout.trim().to_string();
    assert_eq!(token1.stdout, format!("{t1}\n"));
    assert!(secrets_gen1.contains(&t1), "token prints the stored access token");
    let tj = env.run(&["--json", "token", "--min-ttl", "10"]).expect(0).json();
    assert_eq!(tj["access_token"], t1.as_str());
    assert_eq!(tj["token_type"], "Bearer");
    assert_eq!(tj["generation"], 1);
    assert_eq!(op.counters().await.unwrap().refresh_grants, 0, "a fresh token needs no refresh");

    // status: human and JSON, no tokens.
    let st_h = env.run(&["status"]);
    st_h.expect(0);
    assert!(st_h.stdout.contains("authenticated") && st_h.stdout.contains("alice"), "{st_h:?}");
    let st = env.run(&["--json", "status"]);
    let v = st.expect(0).json();
    assert_eq!(v["state"], "authenticated");
    assert_eq!(v["session"]["subject"], "alice");
    assert_eq!(v["session"]["generation"], 1);
    assert_eq!(v["session"]["issuer"], op.issuer());
    assert_eq!(v["session"]["has_refresh_token"], true);
    assert_eq!(v["registration"]["client_id"], client_id.as_str());
    assert!(v["session"]["expires_in"].as_f64().unwrap() > 50.0);

    // userinfo.
    let ui = env.run(&["--json", "userinfo"]);
    let v = ui.expect(0).json();
    assert_eq!(v["sub"], "alice");
    assert_eq!(v["name"], "Alice Example");
    let ui_h = env.run(&["userinfo"]);
    assert!(ui_h.expect(0).stdout.contains("\"sub\": \"alice\""), "{ui_h:?}");

    // refresh: rotation, generation 2, a new token.
    let rf = env.run(&["--json", "refresh"]);
    let v = rf.expect(0).json();
    assert_eq!(v["outcome"], "refreshed");
    assert_eq!(v["generation"], 2);
    assert_eq!(op.counters().await.unwrap().refresh_grants, 1);
    let rf_h = env.run(&["refresh"]);
    assert!(rf_h.expect(0).stdout.starts_with("refreshed: generation 3"), "{rf_h:?}");
    let t3 = env.run(&["token"]).expect(0).stdout.trim().to_string();
    assert_ne!(t3, t1);
    let secrets_gen3 = env.secrets();
    assert!(secrets_gen3.contains(&t3));

    // logout: revocation, end-session URL without the ID token, then exit 2 everywhere.
    let lo = env.run(&[
        "--json",
        "logout",
        "--end-session-wait",
        "0",
        "--post-logout-redirect-uri",
        "http://127.0.0.1/bye",
    ]);
    let v = lo.expect(0).json();
    assert_eq!(v["logged_out"], true);
    assert_eq!(v["refresh_token_revoked"], true);
    assert_eq!(v["access_token_revoked"], true);
    let end = v["end_session_url"].as_str().unwrap();
    assert!(end.starts_with(&format!("{}/session/end?", op.issuer())), "{end}");
    assert!(!end.contains("id_token_hint"), "{end}");
    assert!(end.contains("post_logout_redirect_uri="), "{end}");
    assert!(!env.state().join("session.json").exists(), "the store is cleared");
    env.run(&["token"]).one_line_error(2, "the session was logged out");
    let after = env.run(&["--json", "status"]);
    assert_eq!(after.expect(2).json()["state"], "logged_out");
    assert_eq!(after.error()["kind"], "logged_out");

    let mut all = secrets_gen1.clone();
    all.extend(secrets_gen3);
    assert_no_secret(&all, &[&reg, &login, &st_h, &st, &ui, &ui_h, &rf, &rf_h, &lo, &after]);
}

// --- watch: three processes, one session ------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn watch_in_three_processes_refreshes_once_per_rotation() {
    let op = provider(2).await;
    let env = Env::signed_in(op.issuer()).await;
    let mut secrets = env.secrets();
    let holders = ["app", "notification-extension", "widget"];
    let children: Vec<_> = holders
        .iter()
        .map(|h| {
            env.cmd(&["--holder", h, "watch", "--duration", "5", "--tasks", "3"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn watch")
        })
        .collect();
    let runs: Vec<Run> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            Run {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        })
        .collect();
    let mut refreshed = 0;
    let mut adopted = 0;
    let mut generations = Vec::new();
    for (h, run) in holders.iter().zip(&runs) {
        run.expect(0);
        assert!(run.stderr.is_empty(), "{run:?}");
        let lines: Vec<Value> = run
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines[0]["event"], "started", "{run:?}");
        assert_eq!(lines[0]["holder"], *h);
        let summary = &lines.last().unwrap()["summary"];
        assert_eq!(summary["holder"], *h);
        assert_eq!(summary["exit_code"], 0);
        assert!(summary["session_ended"].is_null());
        assert!(summary["calls"].as_u64().unwrap() > 10, "{summary}");
        for e in &lines[1..lines.len() - 1] {
            for k in ["event", "holder", "pid", "t", "at_ms"] {
                assert!(e.get(k).is_some(), "{k} missing in {e}");
            }
            match e["event"].as_str().unwrap() {
                "refreshed" => {
                    refreshed += 1;
                    generations.push(e["generation"].as_u64().unwrap());
                }
                "adopted" => adopted += 1,
                other => panic!("unexpected event {other} in {run:?}"),
            }
        }
        assert_eq!(
            summary["refreshed"].as_u64().unwrap() + summary["adopted"].as_u64().unwrap(),
            lines.iter().filter(|l| l["event"] == "refreshed" || l["event"] == "adopted").count()
                as u64
        );
    }
    let counters = op.counters().await.unwrap();
    assert_eq!(counters.reuse_detections, 0, "{counters:?}");
    assert!(refreshed >= 2, "2 s tokens over 5 s: at least two rotations");
    assert_eq!(counters.refresh_grants, refreshed, "one grant per committed refresh");
    generations.sort_unstable();
    generations.dedup();
    assert_eq!(generations.len() as u64, refreshed, "each generation refreshed by one process");
    assert!(adopted >= refreshed, "the others adopt each rotation: {adopted} < {refreshed}");

    secrets.extend(env.secrets());
    let refs: Vec<&Run> = runs.iter().collect();
    assert_no_secret(&secrets, &refs);
}

// --- failure paths ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn denied_consent_gives_a_clear_message_and_exit_4() {
    let op = provider(60).await;
    let env = Env::new(op.issuer());
    env.register();
    let (url, run) = env.login_as(false, BrowserLogin::default().deny(), &[]).await;
    assert!(url.as_str().unwrap().starts_with(op.issuer()), "first line is the URL: {url}");
    run.one_line_error(4, "sign-in was refused at the provider: access_denied");
    assert!(run.stdout.is_empty(), "{run:?}");
    env.run(&["token"]).one_line_error(2, "no session");

    let (_, run) = env.login(BrowserLogin::default().deny(), &[]).await;
    let e = run.expect(4).error();
    assert_eq!(e["kind"], "authorization");
    assert!(e["message"].as_str().unwrap().contains("access_denied"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn login_registers_by_itself_and_times_out_with_exit_3() {
    let op = provider(60).await;
    let env = Env::new(op.issuer());
    // No registration yet: login registers the loopback redirect URI itself.
    let (_, run) = env.login(BrowserLogin::default(), &["--issuer", op.issuer()]).await;
    run.expect(0);
    assert_eq!(run.json()["subject"], "alice");
    let reg: Value =
        serde_json::from_slice(&std::fs::read(env.state().join("registration.json")).unwrap())
            .unwrap();
    assert_eq!(reg["redirect_uris"][0], "http://127.0.0.1/callback");

    // Nobody comes back from the browser.
    let r = env.run(&["--json", "login", "--timeout", "1"]);
    r.expect(3);
    let mut lines = r.stdout.lines();
    let first: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert!(first["authorization_url"].as_str().unwrap().starts_with(op.issuer()));
    assert_eq!(r.error()["kind"], "login_timeout");
    // The earlier session is untouched.
    env.run(&["status"]).expect(0);
}

#[tokio::test(flavor = "multi_thread")]
async fn revoked_grant_requires_reauthentication_exit_2() {
    let op = provider(60).await;
    let env = Env::signed_in(op.issuer()).await;
    let secrets = env.secrets();
    assert_eq!(op.revoke_grants(None).await.unwrap(), 1);
    let r = env.run(&["refresh"]);
    r.one_line_error(2, "sign in again");
    let r2 = env.run(&["--json", "token"]);
    assert_eq!(r2.expect(2).error()["kind"], "reauth_required");
    let st = env.run(&["--json", "status"]);
    st.expect(2);
    assert_eq!(st.json()["state"], "reauth_required");
    assert_no_secret(&secrets, &[&r, &r2, &st]);
    assert_eq!(op.counters().await.unwrap().reuse_detections, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_outage_is_transient_exit_3_and_keeps_the_session() {
    let op = provider(60).await;
    let env = Env::signed_in(op.issuer()).await;
    let secrets = env.secrets();
    op.push_fault(Fault::status(FaultWhen::Before, 503).refresh_only().times(20)).await.unwrap();
    let r = env.run(&["refresh"]);
    r.one_line_error(3, "refresh failed");
    let e = env.run(&["--json", "refresh"]);
    assert_eq!(e.expect(3).error()["kind"], "http_status");
    // The session survives a transient failure, and the still-valid token is served.
    let st = env.run(&["--json", "status"]);
    assert_eq!(st.expect(0).json()["session"]["generation"], 1);
    env.run(&["token"]).expect(0);
    op.clear_faults().await.unwrap();
    assert_eq!(env.run(&["--json", "refresh"]).expect(0).json()["generation"], 2);
    assert_no_secret(&secrets, &[&r, &e, &st]);
}

#[tokio::test(flavor = "multi_thread")]
async fn verbose_logging_never_shows_tokens() {
    let op = provider(60).await;
    let env = Env::signed_in(op.issuer()).await;
    let before = env.secrets();
    let mut cmd = env.cmd(&["-vvv", "refresh"]);
    cmd.env("RUST_LOG", "trace");
    let r = run_cmd(cmd);
    r.expect(0);
    assert!(!r.stderr.is_empty(), "trace logging is on");
    let mut all = before;
    all.extend(env.secrets());
    assert_no_secret(&all, &[&r]);
}

#[test]
fn status_without_state_dir_is_unregistered() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bare();
    cmd.current_dir(dir.path()).args(["--json", "status"]);
    let r = run_cmd(cmd);
    assert_eq!(r.expect(2).json()["state"], "unregistered");
    assert_eq!(r.error()["kind"], "not_registered");
}

// --- django-oauth-toolkit: merged metadata, RFC 7591 metadata, end-session hand-off --------

/// Against django-oauth-toolkit (registration and revocation endpoints only in its RFC 8414
/// document): `discover` finds them, `register` sends client metadata, `login` signs in
/// through a loopback redirect, and `logout` revokes, then hands the browser the
/// end-session URL WITH the id_token_hint through a one-time loopback redirect, while its
/// output shows only the URL without the hint.
#[tokio::test(flavor = "multi_thread")]
async fn dot_discover_register_login_and_logout_with_the_hint_handed_to_the_browser() {
    let dot = latchkey_e2e::dot::DotProvider::start(Default::default()).await.expect("dot");
    let env = Env::new(dot.issuer());
    let d = env.run(&["--json", "discover", "--issuer", dot.issuer()]);
    let v = d.expect(0).json();
    assert_eq!(v["merged_rfc8414"], true, "{v}");
    assert_eq!(v["features"]["dynamic_registration"], true, "{v}");
    assert_eq!(v["features"]["revocation"], true, "{v}");
    let reg = env.run(&[
        "--json",
        "register",
        "--issuer",
        dot.issuer(),
        "--redirect-uri",
        "http://127.0.0.1/callback",
        "--client-uri",
        "https://app.example/",
        "--contact",
        "dev@app.example",
    ]);
    reg.expect(0);
    let (_, login) = env.login(BrowserLogin::default(), &[]).await;
    login.expect(0);
    let secrets = env.secrets();
    let session: Value =
        serde_json::from_str(&std::fs::read_to_string(env.state().join("session.json")).unwrap())
            .unwrap();
    let id_token = session["session"]["session"]["id_token"].as_str().unwrap().to_string();

    let mut child = env
        .cmd(&["--json", "logout", "--end-session-wait", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn latchkey logout");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let v: Value = serde_json::from_str(first.trim()).unwrap();
    assert_eq!(v["refresh_token_revoked"], true, "{v}");
    let printed = v["end_session_url"].as_str().unwrap();
    assert!(printed.starts_with(&format!("{}/logout/?", dot.issuer())), "{printed}");
    assert!(!printed.contains("id_token_hint"), "{printed}");
    let browser_url = v["browser_url"].as_str().expect("browser_url").to_string();
    assert!(browser_url.starts_with("http://127.0.0.1:"), "{browser_url}");

    // A wrong path is not served the redirect.
    let http = latchkey_e2e::loopback_client(std::time::Duration::from_secs(10)).unwrap();
    let origin = browser_url.split("/end-session/").next().unwrap().to_string();
    let wrong = http.get(format!("{origin}/end-session/guess")).send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 404);
    // The browser's request is sent on to the provider with the hint.
    let resp = http.get(&browser_url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let parsed = url::Url::parse(&location).unwrap();
    let hint =
        parsed.query_pairs().find(|(k, _)| k == "id_token_hint").map(|(_, v)| v.into_owned());
    assert_eq!(hint.as_deref(), Some(id_token.as_str()), "the hint is the session's ID token");
    assert!(location.starts_with(&format!("{}/logout/?", dot.issuer())), "{location}");
    // The provider takes it: not an error.
    let page = http.get(&location).send().await.unwrap();
    let code = page.status().as_u16();
    let next = page.headers().get("location").map(|l| l.to_str().unwrap().to_string());
    let body = page.text().await.unwrap();
    assert!(code < 400 && !body.contains("data-error"), "{code} {next:?} {body}");

    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let out = Run { code: 0, stdout: format!("{first}{rest}"), stderr };
    assert_no_secret(&secrets, &[&d, &reg, &login, &out]);
    env.run(&["token"]).one_line_error(2, "the session was logged out");
}

/// `--resource` (RFC 8707) reaches every token request: login's code exchange and later
/// refreshes get access tokens bound to the resource.
#[tokio::test(flavor = "multi_thread")]
async fn resource_option_binds_every_access_token() {
    let op =
        TestProvider::start(ProviderOptions { resource_indicators: true, ..Default::default() })
            .await
            .expect("test provider");
    let resource = "https://api.example/mcp";
    let env = Env::new(op.issuer());
    env.register();
    let (url, run) = env
        .login(
            BrowserLogin::default(),
            &["--resource", resource, "--scope", "offline_access", "--scope", "api:read"],
        )
        .await;
    run.expect(0);
    assert!(url["authorization_url"].as_str().unwrap().contains("resource="), "{url}");
    let aud = |token: &str| {
        use base64::Engine;
        let payload = token.split('.').nth(1).expect("JWT access token").to_string();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap()["aud"].clone()
    };
    let t1 = env.run(&["token", "--resource", resource]).expect(0).stdout.trim().to_string();
    assert_eq!(aud(&t1), resource);
    env.run(&["refresh", "--resource", resource]).expect(0);
    let t2 = env.run(&["token", "--resource", resource]).expect(0).stdout.trim().to_string();
    assert_ne!(t1, t2);
    assert_eq!(aud(&t2), resource);
    assert_eq!(op.counters().await.unwrap().refresh_grants, 1);
}

/// `login --max-age` asks for it and the fresh login passes the auth_time check.
#[tokio::test(flavor = "multi_thread")]
async fn login_max_age_is_sent_and_checked() {
    let op = provider(60).await;
    let env = Env::new(op.issuer());
    env.register();
    let (url, run) = env.login(BrowserLogin::default(), &["--max-age", "60"]).await;
    run.expect(0);
    let url = url::Url::parse(url["authorization_url"].as_str().unwrap()).unwrap();
    assert!(url.query_pairs().any(|(k, v)| k == "max_age" && v == "60"), "{url}");
}
