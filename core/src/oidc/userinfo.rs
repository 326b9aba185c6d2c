//! The UserInfo endpoint (OIDC Core §5.3).

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::http::HttpClient;
use crate::oidc::response::{parse_json, sanitize};
use crate::secret::Secret;

/// Fetches the user's claims and checks `sub` matches the session (OIDC Core §5.3.2).
///
/// Fails with [`Error::Provider`] (`invalid_token`) when the access token is refused,
/// [`Error::InvalidResponse`] when `sub` differs or the body is not a JSON object.
pub(crate) async fn fetch(
    http: &HttpClient,
    endpoint: &str,
    access_token: &Secret,
    subject: &str,
) -> Result<Map<String, Value>> {
    let resp = http.get(endpoint, Some(access_token)).await?;
    if resp.status == 401 {
        // RFC 6750 §3: the error is in WWW-Authenticate.
        let header = resp
            .headers
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let error = if header.contains("invalid_token") || header.is_empty() {
            "invalid_token"
        } else {
            "unauthorized"
        };
        return Err(Error::Provider {
            error: error.into(),
            description: Some(sanitize(header, 200)).filter(|s| !s.is_empty()),
        });
    }
    let claims: Map<String, Value> = parse_json(&resp, "userinfo")?;
    match claims.get("sub").and_then(Value::as_str) {
        Some(s) if s == subject => Ok(claims),
        Some(_) => Err(Error::invalid_response("userinfo `sub` differs from the session's")),
        None => Err(Error::invalid_response("userinfo has no `sub`")),
    }
}
