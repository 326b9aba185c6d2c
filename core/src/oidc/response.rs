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
    serde_json::from_slice(&resp.body).map_err(|e| Error::invalid_response(describe(what, &e)))
}

/// Names what failed in a JSON body without quoting it (serde's messages can quote values,
/// and a value may be a token): a missing field by its name, anything else by position.
pub(crate) fn describe(what: &str, e: &serde_json::Error) -> String {
    let (line, column) = (e.line(), e.column());
    match e.classify() {
        serde_json::error::Category::Data => {
            let msg = e.to_string();
            // "missing field `name` at line ..": the name is one of our own field names.
            match msg.strip_prefix("missing field `").and_then(|r| r.split_once('`')) {
                Some((field, _)) => format!("{what}: missing field `{}`", sanitize(field, 64)),
                None => format!(
                    "{what}: a value has the wrong type or is out of range at line {line} column {column}"
                ),
            }
        }
        _ => format!("{what}: malformed JSON at line {line} column {column}"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> HttpResponse {
        HttpResponse { status: 200, headers: Default::default(), body: body.as_bytes().to_vec() }
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct T {
        access_token: String,
        expires_in: Option<u64>,
    }

    #[test]
    fn parse_failures_name_what_failed_without_quoting_values() {
        let e = parse_json::<T>(&ok("{\"expires_in\": 3}"), "token response").unwrap_err();
        assert_eq!(e, Error::invalid_response("token response: missing field `access_token`"));
        let e = parse_json::<T>(&ok("{\"access_token\": 7}"), "token response").unwrap_err();
        assert_eq!(
            e,
            Error::invalid_response(
                "token response: a value has the wrong type or is out of range at line 1 column 18"
            )
        );
        let e = parse_json::<T>(
            &ok("{\"access_token\": \"secret-value\", \"expires_in\": \"x\"}"),
            "t",
        )
        .unwrap_err();
        assert!(!e.to_string().contains("secret-value"), "{e}");
        let e = parse_json::<T>(&ok("{\"access_token\": \"sec"), "t").unwrap_err();
        assert_eq!(e, Error::invalid_response("t: malformed JSON at line 1 column 21"));
    }
}
