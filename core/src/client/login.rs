//! Signing in: authorization request, redirect, code exchange; restoring a stored session.

use crate::client::{lock, Client, Inner};
use crate::error::{Error, Result};
use crate::faults::{self, Step};
use crate::lock::{Lease, SessionState};
use crate::oidc::auth_time;
use crate::oidc::authorize::{self, AuthorizationStart, LoginOptions};
use crate::oidc::callback::{self, CallbackParams};
use crate::oidc::id_token::{self, Expectations, NonceRule};
use crate::oidc::token::{self, TokenResponse};
use crate::oidc::{MetadataSource, ProviderMetadata};
use crate::session::lifecycle::LifecycleEvent;
use crate::session::Session;

impl Client {
    /// Starts an authorization request: returns the URL to open in the system browser
    /// (ASWebAuthenticationSession / Custom Tabs) and its `state`. Several requests may be
    /// pending at once. Touches nothing persisted.
    ///
    /// Fails with [`Error::NotRegistered`] before a registration, [`Error::Config`] for a
    /// redirect URI that is not registered, and with discovery errors.
    pub async fn start_login(&self, options: LoginOptions) -> Result<AuthorizationStart> {
        let metadata = self.inner.metadata().await?;
        let reg = self.registration().ok_or(Error::NotRegistered)?;
        let redirect_uri = match &options.redirect_uri {
            Some(u) => u.clone(),
            None => reg
                .redirect_uris
                .first()
                .cloned()
                .ok_or_else(|| Error::config("no redirect URI registered"))?,
        };
        if !reg.redirect_uris.is_empty()
            && !redirect_uri_registered(&reg.redirect_uris, &redirect_uri)
        {
            return Err(Error::config(format!("redirect URI `{redirect_uri}` is not registered")));
        }
        let (start, mut pending) = authorize::build(
            &metadata,
            &reg.client_id,
            &redirect_uri,
            &options,
            &self.inner.config.resources,
        )?;
        pending.reauth.requested_at = auth_time::unix_secs(self.inner.provider_now());
        lock(&self.inner.pending).insert(start.state.clone(), pending);
        self.inner.persist_pending_logins().await?;
        self.inner.event(LifecycleEvent::LoginStarted, None);
        Ok(start)
    }

    /// Also keeps pending logins (state, nonce, PKCE verifier, start time) in the app's
    /// store, under the account key plus [`PENDING_LOGIN_SUFFIX`], so that a new process
    /// can finish a login whose process was killed while the browser was open. Off by
    /// default. With it on, [`Client::start_login`] saves the pending set (and fails with
    /// [`Error::Store`] when it cannot), and [`Client::finish_login`] reads it for a
    /// `state` unknown in memory and rewrites it once the request is consumed. Pending
    /// logins expire after 15 minutes. Never fails; touches nothing persisted itself.
    ///
    /// [`PENDING_LOGIN_SUFFIX`]: crate::oidc::authorize::PENDING_LOGIN_SUFFIX
    pub fn persist_pending_logins(&self, enabled: bool) {
        lock(&self.inner.pending).persist = enabled;
    }

    /// Abandons the pending request with `state`. Returns whether one was pending.
    pub fn abort_login(&self, state: &str) -> bool {
        let (found, remaining) = {
            let mut p = lock(&self.inner.pending);
            let found = p.take(state).is_some();
            (found, p.len())
        };
        if found {
            self.inner.event(LifecycleEvent::LoginAborted { remaining }, Some("aborted".into()));
        }
        found
    }

    /// Completes a login from the redirect URL the browser delivered: checks `state` and
    /// `iss`, exchanges the code with its PKCE verifier, validates the ID token, saves the
    /// session through the store and registers its generation for every process.
    ///
    /// Fails with [`Error::UnknownState`] (the pending requests are left untouched),
    /// [`Error::IssuerMismatch`] / [`Error::MissingIssuer`] (RFC 9207),
    /// [`Error::Authorization`] for an error redirect, [`Error::IdToken`],
    /// [`Error::ReauthenticationNotPerformed`] when the request asked for `max_age` or
    /// `prompt=login` and `auth_time` shows no such re-authentication (nothing is saved),
    /// [`Error::Store`] when the session cannot be saved, and network errors.
    pub async fn finish_login(&self, redirect_url: &str) -> Result<Session> {
        let params = callback::parse(redirect_url)?;
        let state = params.state().ok_or(Error::UnknownState)?.to_string();
        let metadata = self.inner.metadata().await?;
        if !lock(&self.inner.pending).contains(&state) {
            // Started by a process that is gone (or another one): the persisted set.
            self.inner.load_pending_logins().await?;
        }
        if !lock(&self.inner.pending).contains(&state) {
            return Err(Error::UnknownState);
        }
        // The request is consumed whatever happens next: a code is single-use.
        let pending = lock(&self.inner.pending).take(&state).ok_or(Error::UnknownState)?;
        let remaining = lock(&self.inner.pending).len();
        if let Err(e) = self.inner.persist_pending_logins().await {
            // Best effort: a stale persisted entry only yields a failed code exchange.
            tracing::warn!(error = %e, "could not rewrite the persisted pending logins");
        }
        // A spawned task: the code exchange and the commit complete even if the caller is
        // cancelled, so tokens the provider issued are never dropped half-way.
        let inner = self.inner.clone();
        let task = tokio::spawn(async move {
            callback::check_issuer(
                &params,
                &pending.issuer,
                metadata.authorization_response_iss_parameter_supported,
            )?;
            let code = match params {
                CallbackParams::Success { code, .. } => code,
                CallbackParams::Failure { error, description, .. } => {
                    return Err(Error::Authorization { error, description })
                }
            };
            // The lease first: once the code is exchanged the tokens must reach the store,
            // and a lock timeout after the exchange would lose them.
            let lease = inner.coordinator.acquire(inner.account(), &inner.holder).await?;
            let result = async {
                let tokens = token::exchange_code(
                    &inner.http,
                    &metadata.token_endpoint,
                    &pending.client_id,
                    &code,
                    &pending.redirect_uri,
                    &pending.pkce_verifier,
                    &inner.config.resources,
                )
                .await?;
                inner.note_server_date(tokens.server_date);
                faults::hit("login::after_exchange", Step::Network)?;
                let session = inner
                    .session_from_login(
                        &metadata,
                        &pending.client_id,
                        &pending.nonce,
                        tokens,
                        &pending.scopes,
                    )
                    .await?;
                // max_age / prompt=login: the re-authentication must show in auth_time.
                auth_time::check(
                    &pending.reauth,
                    session.auth_time,
                    auth_time::unix_secs(inner.provider_now()),
                    inner.config.clock_skew,
                )
                .map_err(|problem| Error::ReauthenticationNotPerformed { problem })?;
                inner.commit_new_session(&lease, session).await
            }
            .await;
            if let Err(e) = lease.release().await {
                tracing::warn!(error = %e, "lease release failed");
            }
            result
        });
        let result = task.await.unwrap_or_else(|e| {
            Err(Error::Internal { message: format!("login task failed: {e}") })
        });
        match result {
            Ok(s) => {
                self.inner.event(LifecycleEvent::SignedIn, None);
                Ok(s)
            }
            Err(e) => {
                self.inner.event(LifecycleEvent::LoginAborted { remaining }, Some(e.to_string()));
                Err(e)
            }
        }
    }

    /// Loads the session the store holds (saved by this or another process) and checks it
    /// against the coordination database. Returns None when the store holds none. Call it at
    /// start-up, and after `LoggedOut` / `ReauthRequired` to pick up a session that another
    /// process of the app signed in since.
    ///
    /// Fails with [`Error::LoggedOut`] / [`Error::ReauthRequired`] when another process
    /// ended that session (the stale copy is cleared from the store), with [`Error::Store`]
    /// and [`Error::Database`] on I/O failures.
    pub async fn restore_session(&self) -> Result<Option<Session>> {
        let inner = &self.inner;
        let Some(blob) = inner.load_with_retry().await? else { return Ok(None) };
        let session = Session::from_blob(&blob)?;
        if session.issuer != inner.config.issuer || session.account != inner.config.account {
            return Err(Error::config("the stored session belongs to another issuer or account"));
        }
        match inner.coordinator.generation(inner.account()).await? {
            Some(rec)
                if rec.state != SessionState::Active && rec.generation >= session.generation =>
            {
                inner.clear_fenced(None).await.ok();
                let (err, ev) = ended_error(rec.state);
                inner.event(ev, None);
                return Err(err);
            }
            // The committed generation must be exactly the stored one: a store behind the
            // database (not shared with the process that committed, or lost a write) would
            // hand out tokens older than the newest, whose refresh token may be consumed.
            Some(rec) if rec.generation > session.generation => {
                return Err(Error::StoreMismatch { generation: rec.generation });
            }
            Some(rec)
                if rec.generation == session.generation
                    && rec.state == SessionState::Active
                    && rec.token_hash.as_deref() != Some(session.token_hash().as_str()) =>
            {
                return Err(Error::StoreMismatch { generation: rec.generation });
            }
            Some(rec) if rec.generation == session.generation => {}
            // No record (new database) or the store is ahead (a commit was interrupted, or
            // the database lost its last commits): the store's session becomes the committed
            // generation.
            _ => {
                inner
                    .coordinator
                    .register(inner.account(), session.generation, &session.token_hash())
                    .await?;
            }
        }
        inner.install(session.clone(), false);
        inner.event(LifecycleEvent::SignedIn, Some("restored".into()));
        Ok(Some(session))
    }
}

impl Client {
    /// How the account's session ended for every process, as the coordination database
    /// records it: `Some(LoggedOut)` / `Some(ReauthRequired)`, or None when it is active or
    /// was never signed in. Tells apart why [`Client::restore_session`] found nothing.
    /// Reads the coordination database only.
    pub async fn recorded_end(&self) -> Result<Option<SessionState>> {
        let rec = self.inner.coordinator.generation(self.inner.account()).await?;
        Ok(rec.map(|r| r.state).filter(|s| *s != SessionState::Active))
    }
}

pub(crate) fn ended_error(state: SessionState) -> (Error, LifecycleEvent) {
    match state {
        SessionState::LoggedOut => (Error::LoggedOut, LifecycleEvent::LoggedOut),
        _ => (
            Error::ReauthRequired { reason: "the session was ended by another process".into() },
            LifecycleEvent::ReauthRequired,
        ),
    }
}

/// RFC 8252 §7.3: for loopback redirect URIs the port is not compared.
fn redirect_uri_registered(registered: &[String], uri: &str) -> bool {
    let strip_port = |u: &str| -> Option<String> {
        let mut p = url::Url::parse(u).ok()?;
        if p.scheme() == "http" && crate::http::is_loopback(&p) {
            p.set_port(None).ok()?;
        }
        Some(p.to_string())
    };
    let want = strip_port(uri);
    registered.iter().any(|r| r == uri || (want.is_some() && strip_port(r) == want))
}

impl Inner {
    fn now_unix_ms(&self) -> u64 {
        u64::try_from(self.clock.now_millis()).unwrap_or(0)
    }

    /// Writes the pending set to the store (or clears its key when empty), when enabled.
    async fn persist_pending_logins(&self) -> Result<()> {
        let (enabled, blob) = {
            let p = lock(&self.pending);
            (p.persist, p.to_blob(self.now_unix_ms()))
        };
        if !enabled {
            return Ok(());
        }
        let key = authorize::pending_login_key(self.account());
        let (operation, result) = match blob {
            Some(blob) => ("save", self.store.save(&key, &blob).await),
            None => ("clear", self.store.clear(&key).await),
        };
        result.map_err(|e| Error::Store {
            operation: operation.into(),
            message: e.message,
            retryable: e.retryable,
        })
    }

    /// Adds the persisted pending logins to the ones in memory, when enabled. Fails with
    /// [`Error::Store`] when the store cannot be read; an unreadable blob is ignored.
    async fn load_pending_logins(&self) -> Result<()> {
        if !lock(&self.pending).persist {
            return Ok(());
        }
        let key = authorize::pending_login_key(self.account());
        let blob = self.store.load(&key).await.map_err(|e| Error::Store {
            operation: "load".into(),
            message: e.message,
            retryable: e.retryable,
        })?;
        if let Some(blob) = blob {
            let now = self.now_unix_ms();
            if let Err(e) = lock(&self.pending).merge_blob(&blob, now) {
                tracing::warn!(error = %e, "ignoring the persisted pending logins");
            }
        }
        Ok(())
    }

    async fn session_from_login(
        &self,
        metadata: &ProviderMetadata,
        client_id: &str,
        nonce: &str,
        tokens: TokenResponse,
        requested_scopes: &[String],
    ) -> Result<Session> {
        let (subject, auth_time, nonce_kept, session_id) = match &tokens.id_token {
            Some(raw) => {
                let jwks = self.jwks(metadata)?;
                let info = id_token::validate(
                    raw,
                    &jwks,
                    &Expectations {
                        issuer: &metadata.issuer,
                        client_id,
                        nonce: NonceRule::Exact(nonce),
                        access_token: Some(&tokens.access_token),
                        subject: None,
                        auth_time: None,
                        now: self.provider_now(),
                        skew: self.config.clock_skew,
                    },
                )
                .await?;
                (info.subject, info.auth_time, Some(nonce.to_string()), info.session_id)
            }
            None if metadata.source == MetadataSource::OpenIdConfiguration => {
                return Err(Error::IdToken { reason: "the token response has no ID token".into() })
            }
            None => (String::new(), None, None, None),
        };
        let now_ms = self.clock.now_millis();
        Ok(Session {
            account: self.config.account.clone(),
            issuer: metadata.issuer.clone(),
            client_id: client_id.to_string(),
            subject,
            expires_at_ms: Some(Session::expiry_ms(
                now_ms,
                tokens.expires_in,
                self.config.assumed_token_lifetime,
            )),
            issued_at_ms: Some(now_ms),
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            id_token: tokens.id_token,
            scopes: tokens
                .scope
                .map(|s| s.split_whitespace().map(String::from).collect())
                .unwrap_or_else(|| requested_scopes.to_vec()),
            nonce: nonce_kept,
            session_id,
            auth_time,
            pending_id_token: None,
            generation: 0,
        })
    }

    /// Gives a freshly signed-in session the next generation, saves it (fenced) and
    /// registers it, under the caller's lease (every store write happens under the lease).
    async fn commit_new_session(&self, lease: &Lease, mut session: Session) -> Result<Session> {
        let current = self.coordinator.generation(self.account()).await?;
        session.generation = current.map(|r| r.generation + 1).unwrap_or(1);
        self.save_fenced(lease, &session).await?;
        faults::hit("login::after_save", Step::Database)?;
        let rec = self
            .coordinator
            .register(self.account(), session.generation, &session.token_hash())
            .await?;
        if rec.generation != session.generation {
            return Err(Error::StoreMismatch { generation: rec.generation });
        }
        self.install(session.clone(), false);
        Ok(session)
    }
}

#[cfg(test)]
mod tests {
    use super::redirect_uri_registered;

    #[test]
    fn loopback_port_ignored() {
        let reg = vec!["http://127.0.0.1/callback".to_string(), "app:/cb".to_string()];
        assert!(redirect_uri_registered(&reg, "http://127.0.0.1:5555/callback"));
        assert!(redirect_uri_registered(&reg, "app:/cb"));
        assert!(!redirect_uri_registered(&reg, "http://127.0.0.1:5555/other"));
        assert!(!redirect_uri_registered(&reg, "app:/other"));
    }
}
