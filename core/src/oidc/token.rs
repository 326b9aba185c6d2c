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

/// Exchanges an authorization code (with its PKCE verifier and the RFC 8707 `resources`).
pub(crate) async fn exchange_code(
    http: &HttpClient,
    token_endpoint: &str,
    client_id: &str,
    code: &str,
    redirect_uri: &str,
    verifier: &Secret,
    resources: &[String],
) -> Result<TokenResponse> {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("client_id", client_id),
        ("code_verifier", verifier.expose()),
    ];
    form.extend(resources.iter().map(|r| ("resource", r.as_str())));
    Ok(request(http, token_endpoint, &form).await?)
}

/// Uses a refresh token once, sending each of `resources` as an RFC 8707 `resource`.
///
/// A refusal without a usable OAuth error body (400, 401 or 403 with an empty, non-JSON or
/// non-OAuth body: some providers answer a consumed refresh token this way) is reported as
/// [`Error::Provider`] with `error` `invalid_grant`, exactly like an `invalid_grant` body, so
/// the refresh path re-checks for a newer generation and then ends in `ReauthRequired`.
/// Other statuses (404, 405, 408, 429, 5xx...) keep their typed [`Error::HttpStatus`].
pub(crate) async fn refresh(
    http: &HttpClient,
    token_endpoint: &str,
    client_id: &str,
    refresh_token: &Secret,
    resources: &[String],
) -> std::result::Result<TokenResponse, TokenFailure> {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose()),
        ("client_id", client_id),
    ];
    form.extend(resources.iter().map(|r| ("resource", r.as_str())));
    request(http, token_endpoint, &form)
        .await
        .map_err(|f| TokenFailure { error: bodiless_refusal(f.error), ..f })
}

/// The statuses that, without an OAuth error body, still mean "this refresh token is refused".
const REFUSAL_STATUSES: [u16; 3] = [400, 401, 403];

/// Maps a refresh answered with a refusal status but no OAuth error body to `invalid_grant`.
/// [`check_status`](crate::oidc::response::check_status) yields
/// [`Error::HttpStatus`] below 500 only when the body was not an OAuth error body.
fn bodiless_refusal(error: Error) -> Error {
    match error {
        Error::HttpStatus { status, .. } if REFUSAL_STATUSES.contains(&status) => Error::Provider {
            error: "invalid_grant".into(),
            description: Some(format!(
                "HTTP {status} without an OAuth error body, counted as a refused refresh token"
            )),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodiless_4xx_is_a_refusal_other_statuses_are_not() {
        for status in REFUSAL_STATUSES {
            match bodiless_refusal(Error::HttpStatus { status, retry_after: None }) {
                Error::Provider { error, description } => {
                    assert_eq!(error, "invalid_grant");
                    assert!(description.unwrap().contains(&status.to_string()));
                }
                other => panic!("{status}: {other:?}"),
            }
        }
        for status in [404, 405, 408, 429, 500, 503] {
            let e = bodiless_refusal(Error::HttpStatus { status, retry_after: None });
            assert!(matches!(e, Error::HttpStatus { status: s, .. } if s == status), "{e:?}");
        }
        let p = Error::Provider { error: "invalid_client".into(), description: None };
        assert!(
            matches!(bodiless_refusal(p), Error::Provider { error, .. } if error == "invalid_client")
        );
    }
}
