//! The client object: the whole session lifecycle, delegated to `latchkey::Client`.

use std::sync::Arc;
use std::time::Duration;

use crate::error::LatchkeyError;
use crate::observer::{ObserverAdapter, ObserverHandle, SessionObserver};
use crate::store::{SessionStore, StoreAdapter};
use crate::types::{
    AuthorizationStart, ClientRegistration, LatchkeyConfig, LifecycleState, LoginOptions,
    LogoutOptions, LogoutOutcome, ProviderSummary, RefreshOutcome, RegistrationOptions, Session,
};

type Result<T> = std::result::Result<T, LatchkeyError>;

/// One account's session with one provider, kept consistent across the app's processes.
///
/// Create one per process (app, each extension) with the same `coordination_db_path` and a
/// store that every process can read. All async methods run on Latchkey's tokio runtime.
#[derive(uniffi::Object)]
pub struct LatchkeyClient {
    inner: latchkey::Client,
}

#[uniffi::export(async_runtime = "tokio")]
impl LatchkeyClient {
    /// Creates a client and opens (creating if needed) the coordination database.
    ///
    /// Fails with `InsecureUrl` for an unacceptable issuer, `Config` for an invalid
    /// configuration, `Coordination` when the database cannot be opened.
    #[uniffi::constructor]
    pub async fn create(config: LatchkeyConfig, store: Arc<dyn SessionStore>) -> Result<Arc<Self>> {
        let inner = latchkey::Client::new(config.to_core(), Arc::new(StoreAdapter(store)))?;
        inner.persist_pending_logins(config.persist_pending_logins);
        Ok(Arc::new(Self { inner }))
    }

    /// The provider's metadata (discovery, cached). Fails on network or provider errors.
    pub async fn provider(&self) -> Result<ProviderSummary> {
        Ok(ProviderSummary::from(self.inner.provider().await?.as_ref()))
    }

    /// Registers the app with the provider (RFC 7591) and uses the registration. Persist
    /// the result (`to_json`) yourself; nothing is persisted here.
    pub async fn register(&self, options: RegistrationOptions) -> Result<Arc<ClientRegistration>> {
        let reg = self.inner.register(options.into()).await?;
        Ok(Arc::new(ClientRegistration(reg)))
    }

    /// Uses a registration persisted earlier. Fails with `Config` for another issuer.
    pub fn restore_registration(&self, registration: Arc<ClientRegistration>) -> Result<()> {
        Ok(self.inner.restore_registration(registration.0.clone())?)
    }

    /// The registration in use, if any.
    pub fn registration(&self) -> Option<Arc<ClientRegistration>> {
        self.inner.registration().map(|r| Arc::new(ClientRegistration(r)))
    }

    /// Starts a login: open the returned URL in the system browser.
    /// Fails with `NotRegistered` without a registration.
    pub async fn start_login(&self, options: LoginOptions) -> Result<AuthorizationStart> {
        let start = self.inner.start_login(options.into()).await?;
        Ok(AuthorizationStart { url: start.url, state: start.state })
    }

    /// Completes a login with the redirect URL the browser delivered; saves the session in
    /// the store and the coordination database. With `persist_pending_logins`, a login
    /// started by a process that was killed since is found in the store. Fails with
    /// `Authorization` (the user or the provider refused), `UnknownState` (a stale redirect:
    /// ignore it), `IssuerMismatch` (report it), `RepeatedParameter`,
    /// `ReauthenticationNotPerformed`, `Provider`, `Store`, ...
    pub async fn finish_login(&self, redirect_url: String) -> Result<Session> {
        Ok(self.inner.finish_login(&redirect_url).await?.into())
    }

    /// Forgets a pending login (the user closed the browser). True when it was pending.
    pub fn abort_login(&self, state: String) -> bool {
        self.inner.abort_login(&state)
    }

    /// Loads the committed session from the store (at start-up, in every process).
    pub async fn restore_session(&self) -> Result<Option<Session>> {
        Ok(self.inner.restore_session().await?.map(Session::from))
    }

    /// A fresh access token, refreshing first (once across all processes) when it expires
    /// within the refresh margin. Fails with `NoSession`, `ReauthRequired`, `LoggedOut`, or a
    /// retryable error. The returned string is secret: never log it.
    pub async fn access_token(&self) -> Result<String> {
        Ok(self.inner.access_token().await?.expose().to_owned())
    }

    /// Like `access_token`, but the token stays valid for at least `min_ttl_secs`.
    pub async fn access_token_with_min_ttl(&self, min_ttl_secs: u64) -> Result<String> {
        let token = self.inner.access_token_with_min_ttl(Duration::from_secs(min_ttl_secs)).await?;
        Ok(token.expose().to_owned())
    }

    /// The access token if it is fresh in memory for at least `min_ttl_secs` (and the
    /// refresh margin), else null: synchronous, no I/O, never refreshes. Null means "await
    /// `access_token` (or `access_token_with_min_ttl`)", which refreshes when needed; the
    /// rules are those of `access_token`. Fails with `NoSession`, `LoggedOut` or
    /// `ReauthRequired`. The returned string is secret: never log it.
    pub fn fresh_access_token(&self, min_ttl_secs: u64) -> Result<Option<String>> {
        let token = self.inner.fresh_access_token(Duration::from_secs(min_ttl_secs))?;
        Ok(token.map(|t| t.expose().to_owned()))
    }

    /// Reports that a resource server rejected `access_token` (HTTP 401) and returns the
    /// token to retry with: the current one when it is already another, else a newer
    /// generation from another process, else the result of one refresh. Reporting the same
    /// token again never refreshes again: retry once per rejection, never loop. Fails like
    /// `access_token`; may save through the store. The returned string is secret.
    pub async fn token_rejected(&self, access_token: String) -> Result<String> {
        let rejected = latchkey::Secret::new(access_token);
        Ok(self.inner.token_rejected(&rejected).await?.expose().to_owned())
    }

    /// Refreshes now (or adopts another process's newer refresh).
    pub async fn refresh(&self) -> Result<RefreshOutcome> {
        Ok(self.inner.refresh().await?.into())
    }

    /// Adopts whatever another process committed (refresh, logout) without refreshing.
    pub async fn sync(&self) -> Result<Option<Session>> {
        Ok(self.inner.sync().await?.map(Session::from))
    }

    /// The user's claims from the UserInfo endpoint, as a JSON object string.
    pub async fn userinfo(&self) -> Result<String> {
        let claims = self.inner.userinfo().await?;
        Ok(serde_json::Value::Object(claims).to_string())
    }

    /// Logs out in every process: revokes the tokens (best effort), clears the store and
    /// returns the end-session URL to open in the browser, if any.
    pub async fn logout(&self, options: LogoutOptions) -> Result<LogoutOutcome> {
        Ok(self.inner.logout(options.into()).await?.into())
    }

    /// Handles a back-channel logout token relayed by the app's backend (e.g. in a push):
    /// validates it and, when it names this session, logs out in every process. Returns
    /// whether a session was ended. Fails (session kept) for an invalid token.
    pub async fn handle_backchannel_logout(&self, logout_token: String) -> Result<bool> {
        Ok(self.inner.handle_backchannel_logout(&logout_token).await?)
    }

    /// The RP-initiated logout URL, without logging out locally.
    pub async fn end_session_url(&self, options: LogoutOptions) -> Result<String> {
        Ok(self.inner.end_session_url(options.into()).await?)
    }

    /// The provider's account management page, optionally for one `action`.
    /// Fails with `Unsupported` when the provider advertises none.
    pub async fn account_management_url(&self, action: Option<String>) -> Result<String> {
        Ok(self.inner.account_management_url(action.as_deref()).await?)
    }

    /// How the session ended for every process, as the shared database records it:
    /// `LoggedOut`, `ReauthRequired`, or null while active or never signed in. Tells apart
    /// why `restoreSession` found nothing.
    pub async fn recorded_end(&self) -> Result<Option<LifecycleState>> {
        Ok(self.inner.recorded_end().await?.map(|s| match s {
            latchkey::SessionState::LoggedOut => LifecycleState::LoggedOut,
            _ => LifecycleState::ReauthRequired,
        }))
    }

    /// The lifecycle state of this process's client.
    pub fn state(&self) -> LifecycleState {
        self.inner.state().into()
    }

    /// The session in memory, if any (no I/O).
    pub fn session(&self) -> Option<Session> {
        self.inner.session().map(Session::from)
    }

    /// Registers an observer of every lifecycle event until the returned handle is
    /// cancelled or released: keep it as long as you observe. Never fails.
    pub fn add_observer(&self, observer: Arc<dyn SessionObserver>) -> Arc<ObserverHandle> {
        let handle = self.inner.add_observer(Arc::new(ObserverAdapter(observer)));
        Arc::new(ObserverHandle::new(handle))
    }

    /// Closes the coordination database and gives up leases (app going to the background).
    pub async fn pause(&self) {
        self.inner.pause().await;
    }

    /// Allows the coordination database to be reopened after `pause`.
    pub fn resume(&self) {
        self.inner.resume();
    }
}
