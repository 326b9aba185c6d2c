//! Turning provider responses into values or typed errors.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::http::HttpResponse;

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
    error_description: Option<String>,
}

/// Parses a successful JSON response, or maps the failure to a typed error:
/// an OAuth error body → [`Error::Provider`]; 5xx / 429 / other statuses →
/// [`Error::HttpStatus`] (with `Retry-After`); malformed JSON → [`Error::InvalidResponse`].
pub(crate) fn parse_json<T: DeserializeOwned>(resp: &HttpResponse, what: &str) -> Result<T> {
    check_status(resp)?;
    serde_json::from_slice(&resp.body).map_err(|e| {
        // The message of a serde error may quote the input: keep only its position.
        Error::invalid_response(format!(
            "{what}: malformed JSON at line {} column {}",
            e.line(),
            e.column()
        ))
    })
}

/// Maps a non-2xx response to a typed error; Ok for 2xx.
pub(crate) fn check_status(resp: &HttpResponse) -> Result<()> {
    if resp.is_success() {
        return Ok(());
    }
    if resp.status < 500 && resp.status != 429 {
        if let Ok(body) = serde_json::from_slice::<OAuthErrorBody>(&resp.body) {
            return Err(Error::Provider {
                error: sanitize(&body.error, 64),
                description: body.error_description.map(|d| sanitize(&d, 300)),
            });
        }
    }
    Err(Error::HttpStatus { status: resp.status, retry_after: resp.retry_after() })
}

/// Keeps provider-supplied text printable and short.
pub(crate) fn sanitize(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}
