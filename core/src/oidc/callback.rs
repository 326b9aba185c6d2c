//! Parsing the authorization redirect: success or error, `state` lookup and the RFC 9207
//! `iss` check.

use url::Url;

use crate::error::{Error, Result};
use crate::oidc::response::sanitize;

/// What the redirect carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CallbackParams {
    /// `code` and `state` (and `iss` when the provider sends it).
    Success { code: String, state: String, iss: Option<String> },
    /// An error redirect (`error`, `error_description`, `state`, `iss`).
    Failure {
        error: String,
        description: Option<String>,
        state: Option<String>,
        iss: Option<String>,
    },
}

impl CallbackParams {
    pub(crate) fn state(&self) -> Option<&str> {
        match self {
            CallbackParams::Success { state, .. } => Some(state),
            CallbackParams::Failure { state, .. } => state.as_deref(),
        }
    }

    pub(crate) fn iss(&self) -> Option<&str> {
        match self {
            CallbackParams::Success { iss, .. } | CallbackParams::Failure { iss, .. } => {
                iss.as_deref()
            }
        }
    }
}

/// Parses a redirect URL (query, or fragment when the query holds nothing).
///
/// Fails with [`Error::InvalidResponse`] when the URL is malformed or holds neither a code
/// nor an error.
pub(crate) fn parse(redirect_url: &str) -> Result<CallbackParams> {
    let url = Url::parse(redirect_url)
        .map_err(|_| Error::invalid_response("the redirect is not a URL"))?;
    let mut pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    if pairs.is_empty() {
        if let Some(f) = url.fragment() {
            pairs = url::form_urlencoded::parse(f.as_bytes()).into_owned().collect();
        }
    }
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let state = get("state");
    let iss = get("iss");
    if let Some(error) = get("error") {
        return Ok(CallbackParams::Failure {
            error: sanitize(&error, 64),
            description: get("error_description").map(|d| sanitize(&d, 300)),
            state,
            iss,
        });
    }
    match (get("code"), state) {
        (Some(code), Some(state)) => Ok(CallbackParams::Success { code, state, iss }),
        (_, None) => Err(Error::invalid_response("the redirect has no `state`")),
        (None, _) => Err(Error::invalid_response("the redirect has neither `code` nor `error`")),
    }
}

/// Checks the `iss` parameter against the issuer the request went to (RFC 9207).
///
/// Fails with [`Error::IssuerMismatch`] when it names another issuer, and with
/// [`Error::MissingIssuer`] when it is absent although the provider advertises it.
pub(crate) fn check_issuer(
    params: &CallbackParams,
    expected: &str,
    advertised: bool,
) -> Result<()> {
    match params.iss() {
        Some(iss) if iss == expected => Ok(()),
        Some(iss) => Err(Error::IssuerMismatch {
            expected: expected.to_string(),
            actual: sanitize(iss, 200),
        }),
        None if advertised => Err(Error::MissingIssuer),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_and_error() {
        let p = parse("app:/cb?code=c1&state=s1&iss=https%3A%2F%2Fop").unwrap();
        assert_eq!(
            p,
            CallbackParams::Success {
                code: "c1".into(),
                state: "s1".into(),
                iss: Some("https://op".into())
            }
        );
        let p = parse("app:/cb?error=access_denied&error_description=no&state=s").unwrap();
        assert!(matches!(p, CallbackParams::Failure { ref error, .. } if error == "access_denied"));
        assert_eq!(p.state(), Some("s"));
        let p = parse("app:/cb#code=c&state=s").unwrap();
        assert!(matches!(p, CallbackParams::Success { .. }));
        assert!(parse("app:/cb?code=c").is_err());
        assert!(parse("app:/cb").is_err());
        assert!(parse("::::").is_err());
    }

    #[test]
    fn issuer_rules() {
        let with = |iss: Option<&str>| CallbackParams::Success {
            code: "c".into(),
            state: "s".into(),
            iss: iss.map(String::from),
        };
        assert!(check_issuer(&with(Some("https://op")), "https://op", true).is_ok());
        assert!(matches!(
            check_issuer(&with(Some("https://evil")), "https://op", false),
            Err(Error::IssuerMismatch { .. })
        ));
        assert!(matches!(check_issuer(&with(None), "https://op", true), Err(Error::MissingIssuer)));
        assert!(check_issuer(&with(None), "https://op", false).is_ok());
    }
}
