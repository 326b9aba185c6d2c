//! Token revocation (RFC 7009), and what a logout's revocation leaves behind
//! ([`RevocationGap`]).

use crate::error::{Error, Result};
use crate::http::HttpClient;
use crate::oidc::response::check_status;
use crate::oidc::ProviderMetadata;
use crate::secret::Secret;

/// Which kind of token is revoked (`token_type_hint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenKind {
    /// A refresh token (revoking it ends the grant at most providers).
    RefreshToken,
    /// An access token.
    AccessToken,
}

impl TokenKind {
    fn hint(self) -> &'static str {
        match self {
            TokenKind::RefreshToken => "refresh_token",
            TokenKind::AccessToken => "access_token",
        }
    }
}

/// Revokes one token. The provider answers 200 for unknown tokens too (RFC 7009 §2.2).
///
/// Fails with [`Error::HttpStatus`](crate::Error::HttpStatus) (503 is retryable),
/// [`Error::Provider`](crate::Error::Provider) or network errors.
pub(crate) async fn revoke(
    http: &HttpClient,
    endpoint: &str,
    client_id: &str,
    token: &Secret,
    kind: TokenKind,
) -> Result<()> {
    let form =
        [("token", token.expose()), ("token_type_hint", kind.hint()), ("client_id", client_id)];
    let resp = http.post_form(endpoint, &form).await?;
    check_status(&resp)
}

/// Why a refresh token may still be valid at the provider after
/// [`Client::logout`](crate::Client::logout): the session ended locally, but the provider may go on
/// accepting the refresh token until it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevocationGap {
    /// The provider advertises no revocation endpoint.
    NoRevocationEndpoint,
    /// The provider accepts revocation only from authenticated clients and refused this
    /// public client (no secret). `advertised` lists its
    /// `revocation_endpoint_auth_methods_supported` (empty when it did not advertise them
    /// but refused with `invalid_client` / 401).
    ClientAuthenticationRequired {
        /// The authentication methods the provider advertises for revocation.
        advertised: Vec<String>,
    },
    /// The revocation request failed otherwise (network, 5xx, another error): see
    /// `revocation_error` of the outcome.
    RequestFailed,
}

/// Classifies the result of revoking the refresh token (`None`: the provider revoked it).
///
/// `result` is `None` when there was no revocation endpoint. A public client's revocation
/// refused with `invalid_client`, `unauthorized_client` or a bare 400/401/403 counts as
/// [`RevocationGap::ClientAuthenticationRequired`] when the metadata's
/// `revocation_endpoint_auth_methods_supported` lacks `none`, and also when the refusal says
/// `invalid_client` / 401 whatever the metadata says.
pub(crate) fn gap(
    metadata: &ProviderMetadata,
    result: Option<&Result<()>>,
) -> Option<RevocationGap> {
    let advertised = &metadata.revocation_endpoint_auth_methods_supported;
    let auth_advertised = !metadata.public_revocation_advertised();
    match result {
        None => Some(RevocationGap::NoRevocationEndpoint),
        Some(Ok(())) => None,
        Some(Err(e)) => {
            let client_refused = match e {
                Error::Provider { error, .. } => {
                    error == "invalid_client"
                        || (auth_advertised
                            && (error == "unauthorized_client" || error == "invalid_request"))
                }
                Error::HttpStatus { status: 401, .. } => true,
                Error::HttpStatus { status: 400 | 403, .. } => auth_advertised,
                _ => false,
            };
            if client_refused {
                Some(RevocationGap::ClientAuthenticationRequired { advertised: advertised.clone() })
            } else {
                Some(RevocationGap::RequestFailed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(methods: &[&str]) -> ProviderMetadata {
        serde_json::from_value(serde_json::json!({
            "issuer": "https://op.example",
            "authorization_endpoint": "https://op.example/auth",
            "token_endpoint": "https://op.example/token",
            "revocation_endpoint": "https://op.example/revoke",
            "revocation_endpoint_auth_methods_supported": methods,
        }))
        .unwrap()
    }

    #[test]
    fn classifies_revocation_refusals() {
        let basic = meta(&["client_secret_basic"]);
        let open = meta(&["none", "client_secret_basic"]);
        assert_eq!(gap(&basic, Some(&Ok(()))), None);
        assert_eq!(gap(&basic, None), Some(RevocationGap::NoRevocationEndpoint));
        let invalid_client =
            Err(Error::Provider { error: "invalid_client".into(), description: None });
        assert_eq!(
            gap(&basic, Some(&invalid_client)),
            Some(RevocationGap::ClientAuthenticationRequired {
                advertised: vec!["client_secret_basic".into()]
            })
        );
        let bare_400 = Err(Error::HttpStatus { status: 400, retry_after: None });
        assert!(matches!(
            gap(&basic, Some(&bare_400)),
            Some(RevocationGap::ClientAuthenticationRequired { .. })
        ));
        assert_eq!(gap(&open, Some(&bare_400)), Some(RevocationGap::RequestFailed));
        let unavailable = Err(Error::HttpStatus { status: 503, retry_after: None });
        assert_eq!(gap(&basic, Some(&unavailable)), Some(RevocationGap::RequestFailed));
    }
}
