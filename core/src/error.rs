//! The one error type of the crate.
//!
//! Every fallible operation of Latchkey returns [`Error`]. Each variant says whether trying
//! again later can succeed ([`Error::is_retryable`]); no variant ever carries a token value.

use std::time::Duration;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in Latchkey.
///
/// Transient variants ([`Error::is_retryable`] is `true`) never end a session: the
/// session manager keeps the session and the caller may try again. Only
/// [`Error::ReauthRequired`] and [`Error::LoggedOut`] mean the user must sign in again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request did not reach the provider or the connection broke (DNS, TCP, TLS).
    #[error("network error: {message}")]
    Network {
        /// What failed, without URLs' query strings or token values.
        message: String,
    },
    /// The provider did not answer in time.
    #[error("the request timed out")]
    Timeout,
    /// The provider answered with an HTTP status that is neither success nor an OAuth error.
    #[error("unexpected HTTP status {status}")]
    HttpStatus {
        /// The HTTP status code.
        status: u16,
        /// The delay the provider asked for in `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// The provider answered with an OAuth 2.0 error (RFC 6749 §5.2) other than a grant
    /// that is gone for good.
    #[error("provider error `{error}`{}", description_suffix(.description))]
    Provider {
        /// The `error` code, e.g. `invalid_request`, `access_denied`.
        error: String,
        /// The `error_description`, if the provider sent one.
        description: Option<String>,
    },
    /// The refresh token is no longer accepted (`invalid_grant`, confirmed after checking
    /// that no other process holds a newer session). The user must sign in again.
    #[error("the provider no longer accepts this session; sign in again ({reason})")]
    ReauthRequired {
        /// Why the session ended.
        reason: String,
    },
    /// The session was ended by a logout, in this process or another one.
    #[error("the session was logged out")]
    LoggedOut,
    /// There is no session for this account.
    #[error("no session")]
    NoSession,
    /// The app is not registered with the provider (no client_id known).
    #[error("no client registration for this issuer")]
    NotRegistered,
    /// A login started with `max_age` or `prompt=login` came back without the
    /// re-authentication asked for (`auth_time` too old, predating the request, or missing).
    /// The new tokens were discarded; the previous session, if any, is kept. Start the login
    /// again, or accept the older authentication by logging in without the option.
    #[error("the provider did not re-authenticate the user as asked: {problem}")]
    ReauthenticationNotPerformed {
        /// What `auth_time` showed.
        problem: crate::oidc::AuthTimeProblem,
    },
    /// The authorization response's `state` matches no pending request.
    #[error("the authorization response does not match any pending request")]
    UnknownState,
    /// The authorization response lacks the `iss` parameter although the provider
    /// advertises RFC 9207.
    #[error("the authorization response has no `iss` parameter")]
    MissingIssuer,
    /// The authorization response names another issuer (mix-up attack defence, RFC 9207).
    #[error("the authorization response comes from `{actual}`, expected `{expected}`")]
    IssuerMismatch {
        /// The issuer the request was sent to.
        expected: String,
        /// The issuer named in the response.
        actual: String,
    },
    /// The authorization response carries a parameter more than once (RFC 6749 §3.1):
    /// it is refused whole, so a second `code` or `iss` can never be picked instead of the
    /// first one.
    #[error("the authorization response repeats the parameter `{name}`")]
    RepeatedParameter {
        /// The repeated parameter's name (shortened, control characters removed).
        name: String,
    },
    /// The user or the provider refused the authorization request.
    #[error("authorization failed: `{error}`{}", description_suffix(.description))]
    Authorization {
        /// The `error` code from the redirect, e.g. `access_denied`.
        error: String,
        /// The `error_description`, if any.
        description: Option<String>,
    },
    /// An ID token failed validation (signature, issuer, audience, nonce, expiry, ...).
    #[error("ID token rejected: {reason}")]
    IdToken {
        /// Which check failed.
        reason: String,
    },
    /// A provider response could not be understood (malformed JSON, missing fields).
    #[error("invalid response from the provider: {reason}")]
    InvalidResponse {
        /// What was wrong with it.
        reason: String,
    },
    /// A response body was larger than the configured cap.
    #[error("response larger than {limit} bytes")]
    ResponseTooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// A URL is not acceptable: not https (and not an allowed loopback), or malformed.
    #[error("URL not allowed: {reason}")]
    InsecureUrl {
        /// Why it was refused.
        reason: String,
    },
    /// The provider lacks a capability this call needs (e.g. no revocation endpoint).
    #[error("the provider does not support {feature}")]
    Unsupported {
        /// The missing feature.
        feature: String,
    },
    /// The configuration or an argument is invalid.
    #[error("invalid configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// The app's session store failed.
    #[error("session store {operation} failed: {message}")]
    Store {
        /// `save`, `load` or `clear`.
        operation: String,
        /// The store's own message.
        message: String,
        /// Whether the store said that trying again may succeed.
        retryable: bool,
    },
    /// The session in the app's store does not match the committed generation.
    #[error("the stored session does not match generation {generation}")]
    StoreMismatch {
        /// The generation the coordination database expects.
        generation: u64,
    },
    /// This process's lease was taken over by another holder after it lapsed (the process
    /// was suspended or too slow to renew); nothing was written under it.
    #[error("the refresh lease of `{account}` was taken over by another process")]
    LeaseLost {
        /// The account whose lease was lost.
        account: String,
    },
    /// Another process's refresh may have consumed the refresh token and has not finished:
    /// sending the token now could make the provider revoke the grant. Try again shortly;
    /// the session is kept.
    #[error("another process's refresh of this session has not finished; try again shortly")]
    RefreshInDoubt,
    /// The cross-process lock could not be acquired in time.
    #[error("timed out waiting for the refresh lock held by another process")]
    LockTimeout,
    /// A background task of Latchkey failed unexpectedly (a bug: please report it).
    #[error("internal error: {message}")]
    Internal {
        /// What failed.
        message: String,
    },
    /// The coordination database failed (I/O, corruption, permissions).
    #[error("coordination database error: {message}")]
    Database {
        /// SQLite's message.
        message: String,
    },
}

fn description_suffix(description: &Option<String>) -> String {
    description.as_ref().map(|d| format!(": {d}")).unwrap_or_default()
}

impl Error {
    /// Whether the same call may succeed if tried again later.
    ///
    /// Network failures, timeouts, HTTP 5xx and 429, lock timeouts, retryable store
    /// failures and database errors are retryable; protocol, validation and
    /// session-ending errors are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Network { .. }
            | Error::Timeout
            | Error::LockTimeout
            | Error::RefreshInDoubt
            | Error::LeaseLost { .. } => true,
            Error::HttpStatus { status, .. } => *status >= 500 || *status == 429,
            Error::Provider { error, .. } => {
                error == "temporarily_unavailable" || error == "server_error"
            }
            Error::Store { retryable, .. } => *retryable,
            Error::Database { .. } | Error::StoreMismatch { .. } => true,
            _ => false,
        }
    }

    /// Whether the error means the user has to sign in again.
    pub fn requires_reauthentication(&self) -> bool {
        matches!(self, Error::ReauthRequired { .. } | Error::LoggedOut | Error::NoSession)
    }

    /// The delay the provider asked for before the next attempt, if it named one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::HttpStatus { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn database(e: impl std::fmt::Display) -> Self {
        Error::Database { message: e.to_string() }
    }

    pub(crate) fn invalid_response(reason: impl Into<String>) -> Self {
        Error::InvalidResponse { reason: reason.into() }
    }

    pub(crate) fn config(reason: impl Into<String>) -> Self {
        Error::Config { reason: reason.into() }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::database(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_classification() {
        assert!(Error::Timeout.is_retryable());
        assert!(Error::HttpStatus { status: 503, retry_after: None }.is_retryable());
        assert!(Error::HttpStatus { status: 429, retry_after: None }.is_retryable());
        assert!(!Error::HttpStatus { status: 404, retry_after: None }.is_retryable());
        assert!(!Error::ReauthRequired { reason: "x".into() }.is_retryable());
        assert!(Error::ReauthRequired { reason: "x".into() }.requires_reauthentication());
        assert!(!Error::IdToken { reason: "x".into() }.is_retryable());
    }

    #[test]
    fn provider_error_display_has_description() {
        let e =
            Error::Provider { error: "invalid_request".into(), description: Some("bad".into()) };
        assert_eq!(e.to_string(), "provider error `invalid_request`: bad");
    }
}
