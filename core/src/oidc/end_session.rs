//! RP-initiated logout URL (OpenID Connect RP-Initiated Logout 1.0) and the account
//! management URL.

use url::Url;

use crate::error::{Error, Result};
use crate::oidc::discovery::ProviderMetadata;
use crate::secret::Secret;

/// Options of the end-session URL.
#[derive(Debug, Clone, Default)]
pub struct LogoutOptions {
    /// Where the provider sends the browser afterwards (must be registered).
    pub post_logout_redirect_uri: Option<String>,
    /// Opaque value echoed back on that redirect.
    pub state: Option<String>,
    /// `ui_locales`.
    pub ui_locales: Option<String>,
}

/// Builds the end-session URL with `id_token_hint` and `client_id`.
///
/// Fails with [`Error::Unsupported`] when the provider has no end_session_endpoint.
pub(crate) fn url(
    metadata: &ProviderMetadata,
    client_id: &str,
    id_token: Option<&Secret>,
    opts: &LogoutOptions,
) -> Result<String> {
    let endpoint =
        ProviderMetadata::require(&metadata.end_session_endpoint, "end_session_endpoint")?;
    let mut url = Url::parse(endpoint)
        .map_err(|_| Error::invalid_response("end_session_endpoint is not a URL"))?;
    {
        let mut q = url.query_pairs_mut();
        if let Some(t) = id_token {
            q.append_pair("id_token_hint", t.expose());
        }
        q.append_pair("client_id", client_id);
        if let Some(u) = &opts.post_logout_redirect_uri {
            q.append_pair("post_logout_redirect_uri", u);
        }
        if let Some(s) = &opts.state {
            q.append_pair("state", s);
        }
        if let Some(l) = &opts.ui_locales {
            q.append_pair("ui_locales", l);
        }
    }
    Ok(url.to_string())
}

/// `url` without its `id_token_hint` parameter: safe to log or print (an ID token is a
/// token value). Returns an empty string for something that is not a URL.
pub fn without_id_token_hint(url: &str) -> String {
    let Ok(mut parsed) = Url::parse(url) else { return String::new() };
    let kept: Vec<(String, String)> =
        parsed.query_pairs().into_owned().filter(|(k, _)| k != "id_token_hint").collect();
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    parsed.to_string()
}

/// The account management URL, with `action` (and `id_token_hint`) when given.
///
/// Fails with [`Error::Unsupported`] when the provider advertises no account_management_uri
/// or does not list the action.
pub(crate) fn account_management_url(
    metadata: &ProviderMetadata,
    action: Option<&str>,
    id_token: Option<&Secret>,
) -> Result<String> {
    let base = ProviderMetadata::require(&metadata.account_management_uri, "account management")?;
    let mut url = Url::parse(base)
        .map_err(|_| Error::invalid_response("account_management_uri is not a URL"))?;
    if let Some(a) = action {
        if !metadata.account_management_actions_supported.is_empty()
            && !metadata.account_management_actions_supported.iter().any(|x| x == a)
        {
            return Err(Error::Unsupported { feature: format!("account action `{a}`") });
        }
        url.query_pairs_mut().append_pair("action", a);
        if let Some(t) = id_token {
            url.query_pairs_mut().append_pair("id_token_hint", t.expose());
        }
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_session_and_account_urls() {
        let m: ProviderMetadata = serde_json::from_value(serde_json::json!({
            "issuer": "https://op", "authorization_endpoint": "https://op/a",
            "token_endpoint": "https://op/t", "end_session_endpoint": "https://op/end",
            "account_management_uri": "https://op/account",
            "account_management_actions_supported": ["profile", "sessions"]
        }))
        .unwrap();
        let u = url(
            &m,
            "cid",
            Some(&Secret::new("idt")),
            &LogoutOptions {
                post_logout_redirect_uri: Some("app:/bye".into()),
                state: Some("st".into()),
                ui_locales: None,
            },
        )
        .unwrap();
        assert!(u.starts_with("https://op/end?id_token_hint=idt&client_id=cid&post_logout_redirect_uri=app%3A%2Fbye&state=st"));
        assert_eq!(account_management_url(&m, None, None).unwrap(), "https://op/account");
        let clean = without_id_token_hint(&u);
        assert!(!clean.contains("idt") && clean.contains("client_id=cid"), "{clean}");
        assert_eq!(
            without_id_token_hint(
                "https://op/end?id_token_hint=eyJ.secret.sig&client_id=c&state=s"
            ),
            "https://op/end?client_id=c&state=s"
        );
        assert_eq!(without_id_token_hint("https://op/end?id_token_hint=x"), "https://op/end");
        assert!(account_management_url(&m, Some("profile"), None)
            .unwrap()
            .ends_with("action=profile"));
        assert!(matches!(
            account_management_url(&m, Some("delete"), None),
            Err(Error::Unsupported { .. })
        ));
    }
}
