//! The one error enum of the bindings, mapped from `latchkey::Error` in one place.

/// Everything that can go wrong, as Swift errors / Kotlin exceptions with their fields.
///
/// `retryable` says whether the same call may succeed later (the core's
/// `Error::is_retryable`). Session-ending variants are [`LatchkeyError::ReauthRequired`],
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
    /// The authorization response is not acceptable: unknown `state`, missing or foreign
    /// `iss` (mix-up defence).
    #[error("authorization response rejected: {reason}")]
    AuthorizationResponse {
        /// Why it was rejected.
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
    /// Cross-process coordination failed: the coordination database, the refresh lock, or a
    /// stored session that does not match the committed generation.
    #[error("coordination failed: {detail}")]
    Coordination {
        /// What failed.
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
            E::UnknownState
            | E::MissingIssuer
            | E::IssuerMismatch { .. }
            | E::RepeatedParameter { .. } => Self::AuthorizationResponse { reason: detail },
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
            E::StoreMismatch { .. }
            | E::LockTimeout
            | E::LeaseLost { .. }
            | E::RefreshInDoubt
            | E::Database { .. } => Self::Coordination { detail, retryable },
            _ => Self::Internal { detail },
        }
    }
}

impl From<uniffi::UnexpectedUniFFICallbackError> for LatchkeyError {
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Internal { detail: format!("foreign callback failed: {}", error.reason) }
    }
}
