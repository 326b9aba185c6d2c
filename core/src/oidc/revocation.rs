//! Token revocation (RFC 7009).

use crate::error::Result;
use crate::http::HttpClient;
use crate::oidc::response::check_status;
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
