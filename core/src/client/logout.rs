//! Using and ending the session: userinfo, logout with revocation, end-session and
//! account management URLs.

use serde_json::{Map, Value};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::lock::SessionState;
use crate::oidc::end_session::{self, LogoutOptions};
use crate::oidc::revocation::{self, RevocationGap, TokenKind};
use crate::oidc::userinfo;
use crate::oidc::ProviderMetadata;

/// What [`Client::logout`] did. `Debug` leaves out the `id_token_hint` of the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct LogoutOutcome {
    /// The RP-initiated logout URL to open in the browser (ends the provider's browser
    /// session), when the provider has an end_session_endpoint.
    pub end_session_url: Option<String>,
    /// The refresh token was revoked at the provider.
    pub refresh_token_revoked: bool,
    /// The access token was revoked at the provider.
    pub access_token_revoked: bool,
    /// Why revocation failed, if it did (the local logout happened anyway).
    pub revocation_error: Option<Error>,
    /// Set when the refresh token may outlive this logout at the provider (not revoked), and
    /// why: no revocation endpoint, a provider that revokes only for authenticated clients,
    /// or a failed request. `None` when it was revoked or the session had none.
    pub refresh_token_may_outlive_logout: Option<RevocationGap>,
}

impl std::fmt::Debug for LogoutOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogoutOutcome")
            .field(
                "end_session_url",
                &self.end_session_url.as_deref().map(end_session::without_id_token_hint),
            )
            .field("refresh_token_revoked", &self.refresh_token_revoked)
            .field("access_token_revoked", &self.access_token_revoked)
            .field("revocation_error", &self.revocation_error)
            .field("refresh_token_may_outlive_logout", &self.refresh_token_may_outlive_logout)
            .finish()
    }
}

impl Client {
    /// The user's claims from the UserInfo endpoint, with a fresh access token. When the
    /// provider refuses the token (`invalid_token`), refreshes once and tries again.
    ///
    /// Fails like [`Client::access_token`], with [`Error::Unsupported`] when there is no
    /// userinfo endpoint, and [`Error::InvalidResponse`] when `sub` differs.
    pub async fn userinfo(&self) -> Result<Map<String, Value>> {
        let metadata = self.inner.metadata().await?;
        let endpoint = ProviderMetadata::require(&metadata.userinfo_endpoint, "userinfo")?;
        let subject = self.inner.ensure_session()?.subject;
        let token = self.access_token().await?;
        match userinfo::fetch(&self.inner.http, endpoint, &token, &subject).await {
            Err(Error::Provider { error, .. }) if error == "invalid_token" => {
                // Some providers revoke the previous access token at rotation: report it,
                // take the newer generation (or one refresh), retry once.
                let token = self.token_rejected(&token).await?;
                userinfo::fetch(&self.inner.http, endpoint, &token, &subject).await
            }
            other => other,
        }
    }

    /// Logs out everywhere: revokes the refresh and access tokens at the provider
    /// (RFC 7009), ends the session's generation so every process sees `LoggedOut`, clears
    /// the store, and returns the end-session URL for the browser.
    ///
    /// Revocation failures do not stop the local logout; they are reported in the outcome.
    /// Fails with [`Error::NoSession`] when there is no session, and with
    /// [`Error::Database`] when the logout cannot be recorded for other processes.
    pub async fn logout(&self, options: LogoutOptions) -> Result<LogoutOutcome> {
        let session = self.inner.ensure_session()?;
        let metadata = self.inner.metadata().await;
        let mut outcome = LogoutOutcome {
            end_session_url: None,
            refresh_token_revoked: false,
            access_token_revoked: false,
            revocation_error: None,
            refresh_token_may_outlive_logout: None,
        };
        match &metadata {
            Ok(m) => {
                if let Some(endpoint) = m.revocation_endpoint.as_deref() {
                    if let Some(rt) = &session.refresh_token {
                        let result = revocation::revoke(
                            &self.inner.http,
                            endpoint,
                            &session.client_id,
                            rt,
                            TokenKind::RefreshToken,
                        )
                        .await;
                        outcome.refresh_token_may_outlive_logout =
                            revocation::gap(m, Some(&result));
                        match result {
                            Ok(()) => outcome.refresh_token_revoked = true,
                            Err(e) => outcome.revocation_error = Some(e),
                        }
                    }
                    match revocation::revoke(
                        &self.inner.http,
                        endpoint,
                        &session.client_id,
                        &session.access_token,
                        TokenKind::AccessToken,
                    )
                    .await
                    {
                        Ok(()) => outcome.access_token_revoked = true,
                        Err(e) => outcome.revocation_error = outcome.revocation_error.or(Some(e)),
                    }
                } else {
                    outcome.revocation_error =
                        Some(Error::Unsupported { feature: "revocation".into() });
                    if session.refresh_token.is_some() {
                        outcome.refresh_token_may_outlive_logout = revocation::gap(m, None);
                    }
                }
                if m.end_session_endpoint.is_some() {
                    outcome.end_session_url = Some(end_session::url(
                        m,
                        &session.client_id,
                        session.id_token.as_ref(),
                        &options,
                    )?);
                }
            }
            Err(e) => {
                outcome.revocation_error = Some(e.clone());
                if session.refresh_token.is_some() {
                    outcome.refresh_token_may_outlive_logout = Some(RevocationGap::RequestFailed);
                }
            }
        }
        match self.inner.end_session(SessionState::LoggedOut, "logout", None).await {
            Err(Error::LoggedOut) => Ok(outcome),
            Err(e) => Err(e),
            Ok(_) => Ok(outcome),
        }
    }

    /// The end-session URL for the current session without logging out locally.
    ///
    /// Fails with [`Error::Unsupported`] when the provider has no end_session_endpoint.
    pub async fn end_session_url(&self, options: LogoutOptions) -> Result<String> {
        let session = self.inner.ensure_session()?;
        let metadata = self.inner.metadata().await?;
        end_session::url(&metadata, &session.client_id, session.id_token.as_ref(), &options)
    }

    /// The provider's account management URL, with `action` when given.
    ///
    /// Fails with [`Error::Unsupported`] when the provider advertises none or not that action.
    pub async fn account_management_url(&self, action: Option<&str>) -> Result<String> {
        let metadata = self.inner.metadata().await?;
        let id_token = self.session().and_then(|s| s.id_token);
        end_session::account_management_url(&metadata, action, id_token.as_ref())
    }
}
