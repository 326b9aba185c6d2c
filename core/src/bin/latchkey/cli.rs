//! The command line: global options and one subcommand per job (clap derive).

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

/// Sign in with OpenID Connect and keep one session fresh across processes.
///
/// The state directory holds the cross-process lock database (lock.db), the client
/// registration (registration.json) and the session (session.json, mode 0600). Only
/// `token` ever prints a token value.
///
/// Exit codes: 0 ok; 1 usage; 2 reauthentication required, no session or not registered;
/// 3 transient failure (network, timeout, provider 5xx, lock timeout); 4 protocol or
/// validation error.
#[derive(Debug, Parser)]
#[command(name = "latchkey", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Global options.
    #[command(flatten, next_help_heading = "Global options")]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Directory holding lock.db, registration.json and session.json.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "LATCHKEY_STATE_DIR",
        default_value = ".latchkey"
    )]
    pub state_dir: PathBuf,
    /// This process's name in the cross-process lock (e.g. app, widget).
    #[arg(long, global = true, value_name = "NAME", default_value = "cli", value_parser = non_empty_name)]
    pub holder: String,
    /// The account key of the session (several accounts may share a state directory).
    #[arg(long, global = true, value_name = "NAME", default_value = "default", value_parser = non_empty_name)]
    pub account: String,
    /// Allow an http:// issuer on 127.0.0.1 or ::1 (local test providers only).
    #[arg(
        long,
        global = true,
        env = "LATCHKEY_INSECURE_LOOPBACK",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub insecure_loopback: bool,
    /// An RFC 8707 resource indicator (repeatable): sent as `resource` on the authorization
    /// request, the code exchange and every refresh. Give the same ones to every command
    /// that may refresh (token, refresh, watch).
    #[arg(long = "resource", global = true, value_name = "URI", value_parser = any_url)]
    pub resources: Vec<String>,
    /// Print machine-readable JSON (one object per line); errors too, on stderr.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log to stderr (-v info, -vv debug, -vvv trace; RUST_LOG overrides). Never logs tokens.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the provider's endpoints and features (OpenID Connect discovery).
    Discover {
        /// The provider's issuer URL.
        #[arg(long, value_name = "URL", value_parser = issuer_url)]
        issuer: String,
    },
    /// Register this tool with the provider (dynamic client registration, RFC 7591).
    Register(RegisterArgs),
    /// Sign in through the browser with a loopback redirect (RFC 8252).
    Login(LoginArgs),
    /// Print a fresh access token, refreshing through the cross-process lock when needed.
    Token {
        /// The token must stay valid for at least this many seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 0)]
        min_ttl: u64,
    },
    /// Keep the token fresh for a while; one JSON line per event and a summary line.
    Watch(WatchArgs),
    /// Refresh now (or adopt a newer session another process committed).
    Refresh,
    /// Show the session: state, subject, issuer, expiry, generation (never tokens).
    Status,
    /// Show the user's claims from the UserInfo endpoint.
    Userinfo,
    /// Log out: revoke the tokens, end the session for every process, print the
    /// provider's end-session URL.
    ///
    /// With an end-session endpoint, prints a one-time loopback URL to open in the browser
    /// and waits (see --end-session-wait) for the browser to open it: it redirects to the
    /// provider's end-session URL with the `id_token_hint`, which some providers need to
    /// end anything, without the ID token ever being printed or logged.
    Logout {
        /// Where the provider sends the browser after ending its session.
        #[arg(long, value_name = "URI", value_parser = any_url)]
        post_logout_redirect_uri: Option<String>,
        /// How long to wait for the browser to open the hand-off URL, in seconds; 0 prints
        /// only the end-session URL without the hint and does not wait.
        #[arg(long, value_name = "SECONDS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(0..=3600))]
        end_session_wait: u64,
    },
}

/// `register` options.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The provider's issuer URL.
    #[arg(long, value_name = "URL", value_parser = issuer_url)]
    pub issuer: String,
    /// A redirect URI to register (repeatable). `login` needs a loopback one such as
    /// http://127.0.0.1/callback (any port is then accepted, RFC 8252 §7.3).
    #[arg(long = "redirect-uri", value_name = "URI", required = true, value_parser = any_url)]
    pub redirect_uris: Vec<String>,
    /// A post-logout redirect URI to register (repeatable).
    #[arg(long = "post-logout-redirect-uri", value_name = "URI", value_parser = any_url)]
    pub post_logout_redirect_uris: Vec<String>,
    /// The client name the provider shows on its consent page.
    #[arg(long, value_name = "NAME", default_value = "latchkey CLI")]
    pub client_name: String,
    /// RFC 7591 `client_uri`: the app's home page (some providers' policies require it).
    #[arg(long, value_name = "URI", value_parser = any_url)]
    pub client_uri: Option<String>,
    /// RFC 7591 `logo_uri`.
    #[arg(long, value_name = "URI", value_parser = any_url)]
    pub logo_uri: Option<String>,
    /// RFC 7591 `tos_uri`: terms of service.
    #[arg(long, value_name = "URI", value_parser = any_url)]
    pub tos_uri: Option<String>,
    /// RFC 7591 `policy_uri`: privacy policy.
    #[arg(long, value_name = "URI", value_parser = any_url)]
    pub policy_uri: Option<String>,
    /// RFC 7591 `contacts`: an e-mail address responsible for the app (repeatable).
    #[arg(long = "contact", value_name = "EMAIL")]
    pub contacts: Vec<String>,
    /// OpenID Connect `application_type` (default native).
    #[arg(long, value_name = "TYPE", value_parser = ["native", "web"])]
    pub application_type: Option<String>,
}

/// `login` options.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The provider's issuer URL (default: the issuer of registration.json).
    #[arg(long, value_name = "URL", value_parser = issuer_url)]
    pub issuer: Option<String>,
    /// Use this client_id instead of registration.json (a client registered by hand; it
    /// must allow the loopback redirect URI).
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
    /// A scope to request (repeatable; `openid` is always included). Default: those of
    /// offline_access, profile and email the provider supports.
    #[arg(long = "scope", value_name = "S")]
    pub scopes: Vec<String>,
    /// Port of the loopback listener on 127.0.0.1 (0: any free port).
    #[arg(long, value_name = "P", default_value_t = 0)]
    pub port: u16,
    /// The OpenID Connect `prompt` parameter (e.g. login, consent).
    #[arg(long, value_name = "P")]
    pub prompt: Option<String>,
    /// The OpenID Connect `login_hint` parameter.
    #[arg(long, value_name = "HINT")]
    pub login_hint: Option<String>,
    /// The OpenID Connect `max_age`: the sign-in fails (exit 4,
    /// reauthentication_not_performed) when the provider's `auth_time` is older. With
    /// `--prompt login`, an `auth_time` predating the request fails the same way.
    #[arg(long, value_name = "SECONDS")]
    pub max_age: Option<u64>,
    /// Give up waiting for the browser's redirect after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
}

/// `watch` options.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// How long to keep the token fresh, in seconds.
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub duration: f64,
    /// Concurrent tasks in this process asking for a token.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub tasks: u16,
    /// Pause between two token requests of one task, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 150, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub interval_ms: u64,
    /// Each token must stay valid for at least this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub min_ttl: u64,
}

fn non_empty_name(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(s.to_string())
}

fn any_url(s: &str) -> Result<String, String> {
    url::Url::parse(s).map_err(|e| format!("`{s}` is not a URL: {e}"))?;
    Ok(s.to_string())
}

fn issuer_url(s: &str) -> Result<String, String> {
    let u = url::Url::parse(s).map_err(|e| format!("`{s}` is not a URL: {e}"))?;
    match u.scheme() {
        "https" | "http" => {}
        other => return Err(format!("the issuer must be an https URL, not {other}:")),
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err("an issuer URL has no query or fragment".into());
    }
    Ok(s.to_string())
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
        return Err("must be more than 0 and at most 86400 seconds".into());
    }
    Ok(v)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
    }
}
