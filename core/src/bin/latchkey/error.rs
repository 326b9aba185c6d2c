//! Errors of the tool and their exit codes.
//!
//! | exit | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | usage: bad arguments (clap), missing `--issuer` |
//! | 2 | reauthentication required, logged out, no session, not registered |
//! | 3 | transient: network, timeout, HTTP 5xx / 429, lock timeout, database or retryable store error, no redirect before `--timeout` |
//! | 4 | protocol or validation error: provider error, denied consent, ID token rejected, malformed response, insecure URL, unsupported feature, configuration |

use latchkey::Error;

/// Exit code for bad usage.
pub const EXIT_USAGE: u8 = 1;
/// Exit code when the user must sign in (again).
pub const EXIT_REAUTH: u8 = 2;
/// Exit code for transient failures.
pub const EXIT_TRANSIENT: u8 = 3;
/// Exit code for protocol and validation errors.
pub const EXIT_PROTOCOL: u8 = 4;

/// An error as the tool reports it: one line, a kind for scripts and an exit code.
#[derive(Debug, Clone)]
pub struct CliError {
    /// The exit code.
    pub code: u8,
    /// A stable name for scripts (`network`, `no_session`, `authorization`, ...).
    pub kind: String,
    /// The one-line message (never holds a token value).
    pub message: String,
}

impl CliError {
    pub fn new(code: u8, kind: &str, message: impl Into<String>) -> Self {
        CliError { code, kind: kind.to_string(), message: one_line(&message.into()) }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        CliError::new(EXIT_USAGE, "usage", message)
    }

    /// A usage error found by clap, as one line: clap's message without its usage block
    /// and tips (`--help` has those).
    pub fn from_clap(e: &clap::Error) -> Self {
        let rendered = e.render().to_string();
        let message: Vec<&str> = rendered
            .lines()
            .map(str::trim)
            .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
            .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
            .collect();
        let message = message.join(" ");
        let message = message.strip_prefix("error: ").unwrap_or(&message);
        CliError::usage(if message.is_empty() { "invalid arguments" } else { message })
    }

    /// A local I/O failure (state directory, listener).
    pub fn io(what: impl std::fmt::Display, e: &std::io::Error) -> Self {
        let code = match e.kind() {
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::InvalidData => EXIT_PROTOCOL,
            _ => EXIT_TRANSIENT,
        };
        CliError::new(code, "io", format!("{what}: {e}"))
    }

    /// A library error, with what the tool was doing.
    pub fn lib(context: &str, e: &Error) -> Self {
        let mut message =
            if context.is_empty() { e.to_string() } else { format!("{context}: {e}") };
        if let Some(h) = hint(e) {
            message.push_str("; ");
            message.push_str(h);
        }
        CliError::new(exit_code(e), kind(e), message)
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::lib("", &e)
    }
}

/// The exit code for a library error.
pub fn exit_code(e: &Error) -> u8 {
    if e.requires_reauthentication() || matches!(e, Error::NotRegistered) {
        EXIT_REAUTH
    } else if e.is_retryable() {
        EXIT_TRANSIENT
    } else {
        EXIT_PROTOCOL
    }
}

/// A stable snake_case name of a library error.
pub fn kind(e: &Error) -> &'static str {
    match e {
        Error::Network { .. } => "network",
        Error::Timeout => "timeout",
        Error::HttpStatus { .. } => "http_status",
        Error::Provider { .. } => "provider",
        Error::ReauthRequired { .. } => "reauth_required",
        Error::LoggedOut => "logged_out",
        Error::NoSession => "no_session",
        Error::NotRegistered => "not_registered",
        Error::UnknownState => "unknown_state",
        Error::MissingIssuer => "missing_issuer",
        Error::IssuerMismatch { .. } => "issuer_mismatch",
        Error::RepeatedParameter { .. } => "repeated_parameter",
        Error::Authorization { .. } => "authorization",
        Error::IdToken { .. } => "id_token",
        Error::InvalidResponse { .. } => "invalid_response",
        Error::ResponseTooLarge { .. } => "response_too_large",
        Error::InsecureUrl { .. } => "insecure_url",
        Error::Unsupported { .. } => "unsupported",
        Error::Config { .. } => "config",
        Error::Store { .. } => "store",
        Error::StoreMismatch { .. } => "store_mismatch",
        Error::LockTimeout => "lock_timeout",
        Error::Internal { .. } => "internal",
        Error::Database { .. } => "database",
        Error::ReauthenticationNotPerformed { .. } => "reauthentication_not_performed",
        _ => "error",
    }
}

fn hint(e: &Error) -> Option<&'static str> {
    match e {
        Error::NoSession => Some("sign in with `latchkey login`"),
        Error::NotRegistered => {
            Some("register with `latchkey register` or sign in with `latchkey login --issuer URL`")
        }
        Error::ReauthRequired { .. } | Error::LoggedOut => {
            Some("sign in again with `latchkey login`")
        }
        Error::InsecureUrl { reason } if reason.contains("allow insecure loopback") => {
            Some("pass --insecure-loopback for a local test provider")
        }
        _ => None,
    }
}

/// Collapses line breaks so every error is one line.
fn one_line(s: &str) -> String {
    s.split(['\n', '\r']).map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(exit_code(&Error::NoSession), 2);
        assert_eq!(exit_code(&Error::LoggedOut), 2);
        assert_eq!(exit_code(&Error::NotRegistered), 2);
        assert_eq!(exit_code(&Error::ReauthRequired { reason: "x".into() }), 2);
        assert_eq!(exit_code(&Error::Timeout), 3);
        assert_eq!(exit_code(&Error::LockTimeout), 3);
        assert_eq!(exit_code(&Error::Network { message: "x".into() }), 3);
        assert_eq!(exit_code(&Error::HttpStatus { status: 503, retry_after: None }), 3);
        assert_eq!(exit_code(&Error::HttpStatus { status: 404, retry_after: None }), 4);
        assert_eq!(
            exit_code(&Error::Authorization { error: "access_denied".into(), description: None }),
            4
        );
        assert_eq!(exit_code(&Error::IdToken { reason: "x".into() }), 4);
    }

    #[test]
    fn clap_errors_become_one_usage_line() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct T {
            #[arg(long)]
            n: u8,
        }
        let e = T::try_parse_from(["t", "--n", "x", "--bogus"]).unwrap_err();
        let c = CliError::from_clap(&e);
        assert_eq!((c.code, c.kind.as_str()), (EXIT_USAGE, "usage"));
        assert!(!c.message.contains('\n') && !c.message.starts_with("error"), "{}", c.message);
        assert!(!c.message.contains("Usage:"), "{}", c.message);
        assert!(c.message.contains("--n") || c.message.contains("--bogus"), "{}", c.message);
    }

    #[test]
    fn messages_are_one_line() {
        let e = CliError::new(4, "x", "a\nb\r\n c");
        assert_eq!(e.message, "a b c");
    }
}
