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
/// Fails with [`Error::RepeatedParameter`] when any parameter appears more than once
/// (RFC 6749 §3.1: a second `code` or `iss` must never be picked over the first), and
/// with [`Error::InvalidResponse`] when the URL is malformed, holds neither a code nor an
/// error, holds both, or lacks `state` next to a code.
pub(crate) fn parse(redirect_url: &str) -> Result<CallbackParams> {
    let url = Url::parse(redirect_url)
        .map_err(|_| Error::invalid_response("the redirect is not a URL"))?;
    let mut pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    if pairs.is_empty() {
        if let Some(f) = url.fragment() {
            pairs = url::form_urlencoded::parse(f.as_bytes()).into_owned().collect();
        }
    }
    let mut seen = std::collections::HashSet::with_capacity(pairs.len());
    for (name, _) in &pairs {
        if !seen.insert(name.as_str()) {
            return Err(Error::RepeatedParameter { name: sanitize(name, 64) });
        }
    }
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let state = get("state");
    let iss = get("iss");
    if let Some(error) = get("error") {
        if get("code").is_some() {
            return Err(Error::invalid_response("the redirect has both `code` and `error`"));
        }
        return Ok(CallbackParams::Failure {
            error: sanitize(&error, 64),
            description: get("error_description").map(|d| sanitize(&d, 300)),
            state,
            iss,
        });
    }
    match (get("code"), state) {
        (Some(code), _) if code.is_empty() => {
            Err(Error::invalid_response("the redirect has an empty `code`"))
        }
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

    /// Every parameter, repeated (adjacent or apart, same or different value, in the query
    /// or the fragment), is refused with its name.
    #[test]
    fn every_repeated_parameter_is_refused() {
        let cases: &[(&str, &str)] = &[
            ("app:/cb?code=c&state=s&code=evil", "code"),
            ("app:/cb?code=c&code=c&state=s", "code"),
            ("app:/cb?code=c&state=s&state=s2", "state"),
            ("app:/cb?code=c&state=s&iss=https%3A%2F%2Fop&iss=https%3A%2F%2Fevil", "iss"),
            ("app:/cb?iss=https%3A%2F%2Fevil&code=c&state=s&iss=https%3A%2F%2Fop", "iss"),
            ("app:/cb?error=access_denied&error=server_error&state=s", "error"),
            (
                "app:/cb?error=x&error_description=a&error_description=b&state=s",
                "error_description",
            ),
            ("app:/cb?code=c&state=s&session_state=a&session_state=b", "session_state"),
            ("app:/cb?code=c&state=s&extra=&extra=", "extra"),
            ("app:/cb#code=c&state=s&code=evil", "code"),
            ("app:/cb#code=c&state=s&iss=a&iss=b", "iss"),
            ("app:/cb?co%64e=c&state=s&code=evil", "code"),
        ];
        for (url, name) in cases {
            match parse(url) {
                Err(Error::RepeatedParameter { name: got }) => assert_eq!(&got, name, "{url}"),
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_callbacks_are_refused() {
        let cases: &[(&str, &str)] = &[
            ("app:/cb?code=c", "no `state`"),
            ("app:/cb?state=s", "neither `code` nor `error`"),
            ("app:/cb", "no `state`"),
            ("app:/cb?code=c&error=access_denied&state=s", "both `code` and `error`"),
            ("app:/cb?error=access_denied&code=c", "both `code` and `error`"),
            ("app:/cb?code=&state=s", "empty `code`"),
            ("::::", "not a URL"),
        ];
        for (url, want) in cases {
            match parse(url) {
                Err(Error::InvalidResponse { reason }) => {
                    assert!(reason.contains(want), "{url}: {reason}")
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn repeated_parameter_names_are_sanitized() {
        let long = "x".repeat(500);
        let url = format!("app:/cb?{long}%0A=1&{long}%0A=2&code=c&state=s");
        match parse(&url) {
            Err(Error::RepeatedParameter { name }) => {
                assert_eq!(name.len(), 64);
                assert!(!name.contains('\n'));
            }
            other => panic!("{other:?}"),
        }
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
