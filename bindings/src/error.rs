//! The one error enum of the bindings, mapped from `latchkey::Error` in one place.

/// Everything that can go wrong, as Swift errors / Kotlin exceptions with their fields.
///
/// `retryable` says whether the same call may succeed later (the core's
/// `Error::is_retryable`; the Swift and Kotlin glue expose it for every case as
/// `isRetryable`, and `requiresSignIn` for the session-ending cases). Session-ending variants are [`LatchkeyError::ReauthRequired`],
/// [`LatchkeyError::LoggedOut`] and [`LatchkeyError::NoSession`]. No variant carries a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[non_exhaustive]
pub enum LatchkeyError {
    /// The request did not reach the provider, broke, or timed out.
    #[error("network error: {detail}")]
    Network {
        /// What failed.
        detail: String,
        /// Whether trying again may succeed (always true today).
        retryable: bool,
    },
    /// The provider answered with an HTTP status that is neither success nor an OAuth error.
    #[error("unexpected HTTP status {status}")]
    HttpStatus {
        /// The HTTP status code.
        status: u16,
        /// `Retry-After` in seconds, if the provider sent one.
        retry_after_secs: Option<u64>,
        /// True for 5xx and 429.
        retryable: bool,
    },
    /// The provider answered with an OAuth 2.0 error (token, registration, ... endpoints).
    #[error("provider error `{code}`")]
    Provider {
        /// The `error` code, e.g. `invalid_request`.
        code: String,
        /// The `error_description`, if any.
        description: Option<String>,
        /// True for `temporarily_unavailable` and `server_error`.
        retryable: bool,
    },
    /// The user or the provider refused the authorization request (error in the redirect).
    #[error("authorization failed: `{code}`")]
    Authorization {
        /// The `error` code from the redirect, e.g. `access_denied`.
        code: String,
        /// The `error_description`, if any.
        description: Option<String>,
    },
    /// The redirect's `state` matches no pending login: a stale or repeated redirect (the
    /// login was finished, aborted or expired). Harmless: ignore it, the session is kept.
    #[error("the redirect matches no pending login")]
    UnknownState,
    /// The redirect names another issuer, or lacks `iss` although the provider promises it
    /// (RFC 9207): a possible mix-up attack. Report it; the pending login was consumed.
    #[error("authorization response from the wrong issuer: {reason}")]
    IssuerMismatch {
        /// What was wrong (expected and actual issuer, or the missing `iss`).
        reason: String,
        /// The issuer named in the redirect, null when it had none.
        actual: Option<String>,
    },
    /// A parameter of the redirect occurs more than once (a tampered or malformed redirect).
    #[error("authorization response repeats `{name}`")]
    RepeatedParameter {
        /// The repeated parameter's name.
        name: String,
    },
    /// A login asking for re-authentication (`max_age`, `prompt=login`) came back without
    /// it; the new tokens were discarded and the previous session kept. Start it again.
    #[error("the provider did not re-authenticate the user: {reason}")]
    ReauthenticationNotPerformed {
        /// What `auth_time` showed.
        reason: String,
    },
    /// The provider no longer accepts the session: the user must sign in again.
    #[error("sign in again: {reason}")]
    ReauthRequired {
        /// Why the session ended.
        reason: String,
    },
    /// The session was logged out, in this process or another one.
    #[error("the session was logged out")]
    LoggedOut,
    /// There is no session for this account.
    #[error("no session")]
    NoSession,
    /// The app is not registered with the provider (no client_id known).
    #[error("not registered")]
    NotRegistered,
    /// A provider response or ID token failed validation, or was malformed or too large.
    #[error("invalid provider response: {reason}")]
    InvalidResponse {
        /// What was wrong.
        reason: String,
    },
    /// A URL is not acceptable (not https and not an allowed loopback, or malformed).
    #[error("URL not allowed: {reason}")]
    InsecureUrl {
        /// Why it was refused.
        reason: String,
    },
    /// The provider lacks a capability the call needs.
    #[error("unsupported: {feature}")]
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
    /// The app's session store failed (after the core's bounded retries when retryable).
    #[error("session store {operation} failed: {detail}")]
    Store {
        /// `save`, `load` or `clear`.
        operation: String,
        /// The store's own message.
        detail: String,
        /// Whether the store said that trying again may succeed.
        retryable: bool,
    },
    /// The session in the app's store does not match the generation the coordination
    /// database committed (another process's save has not landed, or the store was restored
    /// from a backup). Retryable: `sync()` or the next call usually adopts it.
    #[error("the stored session does not match generation {generation}")]
    StoreMismatch {
        /// The generation the coordination database expects.
        generation: u64,
        /// Whether trying again may succeed.
        retryable: bool,
    },
    /// This process's refresh lease was taken over (the process was suspended or too slow);
    /// nothing was written under it. Retry the call.
    #[error("the refresh lease was taken over by another process")]
    LeaseLost {
        /// Whether trying again may succeed.
        retryable: bool,
    },
    /// Another process holds the refresh lock and did not finish in time. Retry the call.
    #[error("timed out waiting for another process's refresh")]
    LockTimeout {
        /// Whether trying again may succeed.
        retryable: bool,
    },
    /// Another process's refresh may have used the refresh token and has not finished;
    /// trying now could make the provider revoke the grant. Retry shortly; session kept.
    #[error("another process's refresh has not finished; try again shortly")]
    RefreshInDoubt {
        /// Whether trying again may succeed.
        retryable: bool,
    },
    /// The coordination database (SQLite) failed: disk full, permissions, a corrupt file.
    #[error("coordination database failed: {detail}")]
    Database {
        /// SQLite's message.
        detail: String,
        /// Whether trying again may succeed.
        retryable: bool,
    },
    /// A bug in Latchkey or the bindings, or a foreign callback failing with an error of
    /// another type.
    #[error("internal error: {detail}")]
    Internal {
        /// What failed.
        detail: String,
    },
}

impl From<latchkey::Error> for LatchkeyError {
    fn from(error: latchkey::Error) -> Self {
        use latchkey::Error as E;
        let retryable = error.is_retryable();
        let detail = error.to_string();
        match error {
            E::Network { .. } | E::Timeout => Self::Network { detail, retryable },
            E::HttpStatus { status, retry_after } => Self::HttpStatus {
                status,
                retry_after_secs: retry_after.map(|d| d.as_secs()),
                retryable,
            },
            E::Provider { error, description } => {
                Self::Provider { code: error, description, retryable }
            }
            E::Authorization { error, description } => {
                Self::Authorization { code: error, description }
            }
            E::UnknownState => Self::UnknownState,
            E::MissingIssuer => Self::IssuerMismatch { reason: detail, actual: None },
            E::IssuerMismatch { actual, .. } => {
                Self::IssuerMismatch { reason: detail, actual: Some(actual) }
            }
            E::RepeatedParameter { name } => Self::RepeatedParameter { name },
            E::ReauthenticationNotPerformed { .. } => {
                Self::ReauthenticationNotPerformed { reason: detail }
            }
            E::ReauthRequired { reason } => Self::ReauthRequired { reason },
            E::LoggedOut => Self::LoggedOut,
            E::NoSession => Self::NoSession,
            E::NotRegistered => Self::NotRegistered,
            E::IdToken { .. } | E::InvalidResponse { .. } | E::ResponseTooLarge { .. } => {
                Self::InvalidResponse { reason: detail }
            }
            E::InsecureUrl { reason } => Self::InsecureUrl { reason },
            E::Unsupported { feature } => Self::Unsupported { feature },
            E::Config { reason } => Self::Config { reason },
            E::Store { operation, message, retryable } => {
                Self::Store { operation, detail: message, retryable }
            }
            E::StoreMismatch { generation } => Self::StoreMismatch { generation, retryable },
            E::LeaseLost { .. } => Self::LeaseLost { retryable },
            E::LockTimeout => Self::LockTimeout { retryable },
            E::RefreshInDoubt => Self::RefreshInDoubt { retryable },
            E::Database { message } => Self::Database { detail: message, retryable },
            _ => Self::Internal { detail },
        }
    }
}

impl LatchkeyError {
    /// Whether the same call may succeed later (the core's `Error::is_retryable`).
    pub fn retryable(&self) -> bool {
        match self {
            Self::Network { retryable, .. }
            | Self::HttpStatus { retryable, .. }
            | Self::Provider { retryable, .. }
            | Self::Store { retryable, .. }
            | Self::StoreMismatch { retryable, .. }
            | Self::LeaseLost { retryable }
            | Self::LockTimeout { retryable }
            | Self::RefreshInDoubt { retryable }
            | Self::Database { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// Whether the user has to sign in again (the session ended or never existed).
    pub fn requires_sign_in(&self) -> bool {
        matches!(self, Self::ReauthRequired { .. } | Self::LoggedOut | Self::NoSession)
    }
}

impl From<uniffi::UnexpectedUniFFICallbackError> for LatchkeyError {
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Internal { detail: format!("foreign callback failed: {}", error.reason) }
    }
}
