//! The token endpoint: authorization code exchange and refresh (RFC 6749 §4.1.3, §6).

use std::time::SystemTime;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::http::{HttpClient, HttpFailure};
use crate::oidc::response::parse_json;
use crate::secret::Secret;

/// A successful token response. `Debug` shows no token values.
#[derive(Clone, Deserialize)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: Secret,
    /// The token type (normally `Bearer`).
    pub token_type: String,
    /// Lifetime of the access token in seconds, if given.
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// A (new) refresh token, if given.
    #[serde(default)]
    pub refresh_token: Option<Secret>,
    /// An ID token, if given.
    #[serde(default)]
    pub id_token: Option<Secret>,
    /// Granted scopes, if the provider says.
    #[serde(default)]
    pub scope: Option<String>,
    /// The provider's clock (`Date` header) when it answered.
    #[serde(skip)]
    pub server_date: Option<SystemTime>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("has_id_token", &self.id_token.is_some())
            .field("scope", &self.scope)
            .finish()
    }
}

/// Why a token request failed, and whether the provider may have acted on it.
#[derive(Debug, Clone)]
pub(crate) struct TokenFailure {
    pub error: Error,
    pub maybe_processed: bool,
}

impl From<HttpFailure> for TokenFailure {
    fn from(f: HttpFailure) -> Self {
        TokenFailure { error: f.error, maybe_processed: f.maybe_processed }
    }
}

impl From<TokenFailure> for Error {
    fn from(f: TokenFailure) -> Self {
        f.error
    }
}

/// Sends a token request and parses the answer.
pub(crate) async fn request(
    http: &HttpClient,
    token_endpoint: &str,
    form: &[(&str, &str)],
) -> std::result::Result<TokenResponse, TokenFailure> {
    let resp = http.post_form(token_endpoint, form).await?;
    // An error status is an answer: the provider decided (5xx: may or may not have acted).
    let maybe_processed = resp.status < 500 && resp.status != 429;
    let mut t: TokenResponse = parse_json(&resp, "token response")
        .map_err(|error| TokenFailure { error, maybe_processed })?;
    if !t.token_type.eq_ignore_ascii_case("bearer") {
        return Err(TokenFailure {
            error: Error::invalid_response(format!("unsupported token type `{}`", t.token_type)),
            maybe_processed: true,
        });
    }
    // Ten years: anything longer is not a lifetime, and it would overflow expiry arithmetic.
    if let Some(s) = t.expires_in.filter(|s| *s > 10 * 366 * 86_400) {
        let error = Error::invalid_response(format!("`expires_in` of {s} s is not plausible"));
        return Err(TokenFailure { error, maybe_processed: true });
    }
    t.server_date = resp.server_date();
    Ok(t)
}

/// Exchanges an authorization code (with its PKCE verifier).
pub(crate) async fn exchange_code(
    http: &HttpClient,
    token_endpoint: &str,
    client_id: &str,
    code: &str,
    redirect_uri: &str,
    verifier: &Secret,
) -> Result<TokenResponse> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("client_id", client_id),
        ("code_verifier", verifier.expose()),
    ];
    Ok(request(http, token_endpoint, &form).await?)
}

/// Uses a refresh token once.
pub(crate) async fn refresh(
    http: &HttpClient,
    token_endpoint: &str,
    client_id: &str,
    refresh_token: &Secret,
) -> std::result::Result<TokenResponse, TokenFailure> {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose()),
        ("client_id", client_id),
    ];
    request(http, token_endpoint, &form).await
}
