//! Records and enums of the bindings, converted from and to the core's types.
//!
//! None of them carries a token value: the access token is only returned by
//! `LatchkeyClient::access_token`, and the registration access token only inside
//! [`ClientRegistration::to_json`].

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::LatchkeyError;

/// How a [`crate::LatchkeyClient`] is set up.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LatchkeyConfig {
    /// The provider's issuer identifier (https; loopback http with `allow_insecure_loopback`).
    pub issuer: String,
    /// The coordination database (SQLite), shared by every process of the app: put it in
    /// the App Group container on iOS, in the app's files directory on Android.
    pub coordination_db_path: String,
    /// The account key of the session in the store and the database.
    #[uniffi(default = "default")]
    pub account: String,
    /// A name for this process in the lock, e.g. `app` or `share-extension`.
    #[uniffi(default = "app")]
    pub holder: String,
    /// Allow `http://` loopback URLs (development providers and tests only).
    #[uniffi(default = false)]
    pub allow_insecure_loopback: bool,
    /// Refresh proactively when the access token expires within this many seconds
    /// (at most a quarter of the token's lifetime).
    #[uniffi(default = 60)]
    pub refresh_margin_secs: u64,
    /// Time allowed for one HTTP request and response, seconds.
    #[uniffi(default = 30)]
    pub request_timeout_secs: u64,
    /// Which certificate authorities https trusts (None: the platform verifier, except on
    /// Android, where the bundled Mozilla roots are used).
    #[uniffi(default = None)]
    pub trust: Option<TrustRoots>,
    /// Keep pending logins (state, nonce, PKCE verifier, start time) in the store, under
    /// the account key + `.pending-login`, so that a new process can finish a login whose
    /// process was killed while the browser was open (Android Custom Tabs, iOS browser
    /// sheet). The blob holds the PKCE verifier: the store must be secure storage.
    #[uniffi(default = false)]
    pub persist_pending_logins: bool,
}

/// The certificate authorities trusted for https.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum TrustRoots {
    /// The operating system's verifier and trust store. On Android it needs
    /// `PlatformTrust.init(context)` first; until then the bundled roots are used.
    Platform,
    /// Mozilla's root store compiled into the library (no platform set-up needed).
    Bundled,
    /// Exactly these DER-encoded root certificates (e.g. a private CA).
    Custom {
        /// DER certificates.
        certificates: Vec<Vec<u8>>,
    },
}

impl From<TrustRoots> for latchkey::TrustRoots {
    fn from(t: TrustRoots) -> Self {
        match t {
            TrustRoots::Platform if platform_verifier_ready() => latchkey::TrustRoots::Platform,
            // Android before `PlatformTrust.init`: the verifier could not verify anything.
            TrustRoots::Platform => latchkey::TrustRoots::Bundled,
            TrustRoots::Bundled => latchkey::TrustRoots::Bundled,
            TrustRoots::Custom { certificates } => latchkey::TrustRoots::Custom(certificates),
        }
    }
}

/// Whether the platform verifier can be used in this process: always, but on Android only
/// once it has the app's Context.
fn platform_verifier_ready() -> bool {
    #[cfg(target_os = "android")]
    {
        crate::android::initialised()
    }
    #[cfg(not(target_os = "android"))]
    {
        true
    }
}

impl LatchkeyConfig {
    pub(crate) fn to_core(&self) -> latchkey::ClientConfig {
        let mut config =
            latchkey::ClientConfig::new(self.issuer.clone(), self.coordination_db_path.clone());
        config.account = self.account.clone();
        config.holder = self.holder.clone();
        config.http.allow_insecure_loopback = self.allow_insecure_loopback;
        config.http.request_timeout = std::time::Duration::from_secs(self.request_timeout_secs);
        config.refresh_margin = std::time::Duration::from_secs(self.refresh_margin_secs);
        if let Some(trust) = self.trust.clone() {
            config.http.trust = trust.into();
        }
        config
    }
}

/// A serialized session as the app's store keeps it. `data` holds token values: keep it in
/// secure storage only, never log it.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct SessionBlob {
    /// The session generation the bytes hold.
    pub generation: u64,
    /// The serialization format version.
    pub format: u32,
    /// The serialized session (secret).
    pub data: Vec<u8>,
}

impl std::fmt::Debug for SessionBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionBlob")
            .field("generation", &self.generation)
            .field("format", &self.format)
            .field("len", &self.data.len())
            .finish()
    }
}

impl From<&latchkey::SessionBlob> for SessionBlob {
    fn from(blob: &latchkey::SessionBlob) -> Self {
        SessionBlob {
            generation: blob.generation(),
            format: blob.format(),
            data: blob.data().to_vec(),
        }
    }
}

/// The signed-in session, without its tokens.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Session {
    /// The account key.
    pub account: String,
    /// The issuer.
    pub issuer: String,
    /// The client_id the tokens were issued to.
    pub client_id: String,
    /// The user (`sub`).
    pub subject: String,
    /// When the access token expires (Unix milliseconds), if known.
    pub expires_at_ms: Option<i64>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The generation: increases with every refresh, in any process.
    pub generation: u64,
    /// Whether the session can be refreshed.
    pub has_refresh_token: bool,
}

impl From<latchkey::Session> for Session {
    fn from(s: latchkey::Session) -> Self {
        Session {
            has_refresh_token: s.refresh_token.is_some(),
            account: s.account,
            issuer: s.issuer,
            client_id: s.client_id,
            subject: s.subject,
            expires_at_ms: s.expires_at_ms,
            scopes: s.scopes,
            generation: s.generation,
        }
    }
}

/// What to register with the provider (RFC 7591 dynamic client registration).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RegistrationOptions {
    /// Redirect URIs: custom schemes or loopback http URIs (RFC 8252).
    pub redirect_uris: Vec<String>,
    /// Where the provider may send the user after logout.
    #[uniffi(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Human-readable client name.
    #[uniffi(default)]
    pub client_name: Option<String>,
    /// Scopes the client will ask for, space separated.
    #[uniffi(default)]
    pub scope: Option<String>,
}

impl From<RegistrationOptions> for latchkey::RegistrationOptions {
    fn from(o: RegistrationOptions) -> Self {
        latchkey::RegistrationOptions {
            redirect_uris: o.redirect_uris,
            post_logout_redirect_uris: o.post_logout_redirect_uris,
            client_name: o.client_name,
            scope: o.scope,
            ..Default::default()
        }
    }
}

/// A client registration: the client_id and the metadata the provider accepted.
///
/// Persist it with [`ClientRegistration::to_json`] and restore it on the next run with
/// `ClientRegistration.fromJson` + `LatchkeyClient::restore_registration`. The JSON may hold
/// the RFC 7592 registration access token: keep it with the app's secrets (Keychain /
/// Keystore), which is why this is an object and not a printable record.
#[derive(Debug, uniffi::Object)]
pub struct ClientRegistration(pub(crate) latchkey::ClientRegistration);

#[uniffi::export]
impl ClientRegistration {
    /// Parses a registration saved with [`ClientRegistration::to_json`].
    ///
    /// Fails with [`LatchkeyError::Config`] when the JSON is not a registration.
    #[uniffi::constructor]
    pub fn from_json(json: String) -> Result<Arc<Self>, LatchkeyError> {
        // The core parser's error never quotes the JSON (it may hold the access token).
        latchkey::ClientRegistration::from_json(&json)
            .map(|r| Arc::new(Self(r)))
            .map_err(LatchkeyError::from)
    }

    /// The registration as JSON, to persist. Never fails.
    pub fn to_json(&self) -> String {
        // Serializing plain strings, vectors and options cannot fail.
        serde_json::to_string(&self.0).unwrap_or_default()
    }

    /// The issuer the client is registered with.
    pub fn issuer(&self) -> String {
        self.0.issuer.clone()
    }

    /// The client identifier.
    pub fn client_id(&self) -> String {
        self.0.client_id.clone()
    }

    /// The registered redirect URIs.
    pub fn redirect_uris(&self) -> Vec<String> {
        self.0.redirect_uris.clone()
    }

    /// The registered post-logout redirect URIs.
    pub fn post_logout_redirect_uris(&self) -> Vec<String> {
        self.0.post_logout_redirect_uris.clone()
    }
}

/// What the app may want to know about the provider (from discovery).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ProviderSummary {
    /// The issuer.
    pub issuer: String,
    /// The authorization endpoint.
    pub authorization_endpoint: String,
    /// The token endpoint.
    pub token_endpoint: String,
    /// Dynamic client registration is available.
    pub supports_registration: bool,
    /// RP-initiated logout is available.
    pub supports_end_session: bool,
    /// Token revocation is available.
    pub supports_revocation: bool,
    /// The UserInfo endpoint is available.
    pub supports_userinfo: bool,
    /// The provider sends `iss` in authorization responses (RFC 9207).
    pub supports_iss_parameter: bool,
    /// The account management page, if the provider advertises one.
    pub account_management_uri: Option<String>,
    /// Scopes the provider supports.
    pub scopes_supported: Vec<String>,
}

impl From<&latchkey::ProviderMetadata> for ProviderSummary {
    fn from(m: &latchkey::ProviderMetadata) -> Self {
        ProviderSummary {
            issuer: m.issuer.clone(),
            authorization_endpoint: m.authorization_endpoint.clone(),
            token_endpoint: m.token_endpoint.clone(),
            supports_registration: m.registration_endpoint.is_some(),
            supports_end_session: m.end_session_endpoint.is_some(),
            supports_revocation: m.revocation_endpoint.is_some(),
            supports_userinfo: m.userinfo_endpoint.is_some(),
            supports_iss_parameter: m.authorization_response_iss_parameter_supported,
            account_management_uri: m.account_management_uri.clone(),
            scopes_supported: m.scopes_supported.clone(),
        }
    }
}

/// Options of one authorization request.
#[derive(Debug, Clone, PartialEq, Eq, Default, uniffi::Record)]
pub struct LoginOptions {
    /// Redirect URI (registered); defaults to the registration's first one.
    #[uniffi(default)]
    pub redirect_uri: Option<String>,
    /// Scopes; `openid` is always included.
    #[uniffi(default)]
    pub scopes: Vec<String>,
    /// `prompt`, e.g. `login`.
    #[uniffi(default)]
    pub prompt: Option<String>,
    /// `login_hint`.
    #[uniffi(default)]
    pub login_hint: Option<String>,
    /// `ui_locales`, space separated.
    #[uniffi(default)]
    pub ui_locales: Option<String>,
    /// Further query parameters.
    #[uniffi(default)]
    pub extra_params: HashMap<String, String>,
}

impl From<LoginOptions> for latchkey::LoginOptions {
    fn from(o: LoginOptions) -> Self {
        let mut extra_params: Vec<(String, String)> = o.extra_params.into_iter().collect();
        extra_params.sort();
        latchkey::LoginOptions {
            redirect_uri: o.redirect_uri,
            scopes: o.scopes,
            prompt: o.prompt,
            login_hint: o.login_hint,
            ui_locales: o.ui_locales,
            // `max_age` travels in extra_params; the core checks auth_time against it.
            max_age: None,
            extra_params,
        }
    }
}

/// A started login: open `url` in the system browser (ASWebAuthenticationSession, Custom
/// Tabs); the redirect will carry `state`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AuthorizationStart {
    /// The authorization URL.
    pub url: String,
    /// The request's `state`, for `abort_login`.
    pub state: String,
}

/// Options of a logout / end-session URL.
#[derive(Debug, Clone, PartialEq, Eq, Default, uniffi::Record)]
pub struct LogoutOptions {
    /// Where the provider sends the browser after logout (registered).
    #[uniffi(default)]
    pub post_logout_redirect_uri: Option<String>,
    /// `state` echoed to the post-logout redirect.
    #[uniffi(default)]
    pub state: Option<String>,
    /// `ui_locales`.
    #[uniffi(default)]
    pub ui_locales: Option<String>,
}

impl From<LogoutOptions> for latchkey::LogoutOptions {
    fn from(o: LogoutOptions) -> Self {
        latchkey::LogoutOptions {
            post_logout_redirect_uri: o.post_logout_redirect_uri,
            state: o.state,
            ui_locales: o.ui_locales,
        }
    }
}

/// What a logout did. The local session is gone in every case. `Debug` leaves out the
/// `id_token_hint` of the URL (an ID token is a token value).
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct LogoutOutcome {
    /// The RP-initiated logout URL to open in the browser, when the provider has one.
    pub end_session_url: Option<String>,
    /// The refresh token was revoked at the provider.
    pub refresh_token_revoked: bool,
    /// The access token was revoked at the provider.
    pub access_token_revoked: bool,
    /// Why revocation failed, if it did.
    pub revocation_error: Option<String>,
}

impl std::fmt::Debug for LogoutOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogoutOutcome")
            .field(
                "end_session_url",
                &self.end_session_url.as_deref().map(latchkey::without_id_token_hint),
            )
            .field("refresh_token_revoked", &self.refresh_token_revoked)
            .field("access_token_revoked", &self.access_token_revoked)
            .field("revocation_error", &self.revocation_error)
            .finish()
    }
}

impl From<latchkey::LogoutOutcome> for LogoutOutcome {
    fn from(o: latchkey::LogoutOutcome) -> Self {
        LogoutOutcome {
            end_session_url: o.end_session_url,
            refresh_token_revoked: o.refresh_token_revoked,
            access_token_revoked: o.access_token_revoked,
            revocation_error: o.revocation_error.map(|e| e.to_string()),
        }
    }
}

/// How a refresh call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
#[non_exhaustive]
pub enum RefreshOutcome {
    /// This process used the refresh token and committed a new generation.
    Refreshed {
        /// The new generation.
        generation: u64,
    },
    /// Another process had already refreshed; its generation was adopted.
    Adopted {
        /// The adopted generation.
        generation: u64,
    },
    /// The tokens were fresh enough; nothing was done.
    StillFresh {
        /// The current generation.
        generation: u64,
    },
    /// The refresh could not run safely or failed transiently; the still valid access
    /// token was kept.
    KeptValidToken {
        /// The current generation.
        generation: u64,
    },
    /// An outcome this version of the bindings does not know.
    Other {
        /// The current generation.
        generation: u64,
    },
}

impl From<latchkey::RefreshOutcome> for RefreshOutcome {
    fn from(o: latchkey::RefreshOutcome) -> Self {
        use latchkey::RefreshOutcome as R;
        match o {
            R::Refreshed { generation } => Self::Refreshed { generation },
            R::Adopted { generation } => Self::Adopted { generation },
            R::StillFresh { generation } => Self::StillFresh { generation },
            R::KeptValidToken { generation } => Self::KeptValidToken { generation },
            other => Self::Other { generation: other.generation() },
        }
    }
}

/// Where the session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
#[non_exhaustive]
pub enum LifecycleState {
    /// No client_id known for the issuer.
    Unregistered,
    /// Registered, no session.
    Registered,
    /// A login waits for its redirect.
    Authorizing,
    /// Signed in.
    Authenticated,
    /// A refresh is running in this process.
    Refreshing,
    /// The provider ended the session: sign in again.
    ReauthRequired,
    /// Logged out (here or in another process).
    LoggedOut,
    /// A state this version of the bindings does not know.
    Unknown,
}

impl From<latchkey::LifecycleState> for LifecycleState {
    fn from(s: latchkey::LifecycleState) -> Self {
        use latchkey::LifecycleState as S;
        match s {
            S::Unregistered => Self::Unregistered,
            S::Registered => Self::Registered,
            S::Authorizing => Self::Authorizing,
            S::Authenticated => Self::Authenticated,
            S::Refreshing => Self::Refreshing,
            S::ReauthRequired => Self::ReauthRequired,
            S::LoggedOut => Self::LoggedOut,
            _ => Self::Unknown,
        }
    }
}

/// What happened to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
#[non_exhaustive]
pub enum LifecycleEvent {
    /// A registration was made or restored.
    Registered,
    /// A login was started.
    LoginStarted,
    /// A login was aborted or failed; `remaining` logins are still pending.
    LoginAborted {
        /// Logins still pending.
        remaining: u64,
    },
    /// A login completed, or a persisted session was restored.
    SignedIn,
    /// This process started a refresh.
    RefreshStarted,
    /// This process refreshed the tokens.
    Refreshed,
    /// This process took a newer generation committed by another process.
    Adopted,
    /// A refresh failed transiently; the session is kept.
    RefreshFailed,
    /// The provider refused the refresh token: sign in again.
    ReauthRequired,
    /// The session was logged out (here or in another process).
    LoggedOut,
    /// The provider deviated from the protocol without casting doubt on the tokens; the
    /// session was kept.
    ProviderDeviation,
    /// An event this version of the bindings does not know.
    Unknown,
}

impl From<latchkey::LifecycleEvent> for LifecycleEvent {
    fn from(e: latchkey::LifecycleEvent) -> Self {
        use latchkey::LifecycleEvent as E;
        match e {
            E::Registered => Self::Registered,
            E::LoginStarted => Self::LoginStarted,
            E::LoginAborted { remaining } => {
                Self::LoginAborted { remaining: u64::try_from(remaining).unwrap_or(u64::MAX) }
            }
            E::SignedIn => Self::SignedIn,
            E::RefreshStarted => Self::RefreshStarted,
            E::Refreshed => Self::Refreshed,
            E::Adopted => Self::Adopted,
            E::RefreshFailed => Self::RefreshFailed,
            E::ReauthRequired => Self::ReauthRequired,
            E::LoggedOut => Self::LoggedOut,
            E::ProviderDeviation => Self::ProviderDeviation,
            _ => Self::Unknown,
        }
    }
}

/// One lifecycle transition, as observers receive it. Holds no secrets.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SessionEvent {
    /// The account.
    pub account: String,
    /// What happened.
    pub event: LifecycleEvent,
    /// The state before.
    pub from: LifecycleState,
    /// The state after.
    pub to: LifecycleState,
    /// The session generation after the event, when there is a session.
    pub generation: Option<u64>,
    /// A short reason for failures (never a token).
    pub detail: Option<String>,
}

impl From<&latchkey::SessionEvent> for SessionEvent {
    fn from(e: &latchkey::SessionEvent) -> Self {
        SessionEvent {
            account: e.account.clone(),
            event: e.event.into(),
            from: e.from.into(),
            to: e.to.into(),
            generation: e.generation,
            detail: e.detail.clone(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const AT: &str = "at-SECRET-access";
    const RT: &str = "rt-SECRET-refresh";
    const IT: &str = "eyJ.SECRET-id-token.sig";
    const RAT: &str = "rat-SECRET-registration";

    fn assert_clean(what: &str, text: &str) {
        for secret in [AT, RT, IT, RAT, "SECRET"] {
            assert!(!text.contains(secret), "{what} shows `{secret}`: {text}");
        }
    }

    #[test]
    fn no_ffi_type_shows_a_token_value() {
        let url = format!(
            "https://op.example/end?id_token_hint={IT}&post_logout_redirect_uri=app%3A%2Fout"
        );
        let core = latchkey::LogoutOutcome {
            end_session_url: Some(url.clone()),
            refresh_token_revoked: true,
            access_token_revoked: false,
            revocation_error: Some(latchkey::Error::Network { message: "reset".into() }),
            refresh_token_may_outlive_logout: None,
        };
        let ffi = LogoutOutcome::from(core);
        // The URL itself keeps the hint (the browser needs it); only Debug drops it.
        assert_eq!(ffi.end_session_url.as_deref(), Some(url.as_str()));
        let shown = format!("{ffi:?}");
        assert_clean("LogoutOutcome", &shown);
        assert!(shown.contains("post_logout_redirect_uri"), "{shown}");

        let session: latchkey::Session = serde_json::from_value(serde_json::json!({
            "account": "default", "issuer": "https://op.example", "client_id": "c",
            "subject": "alice", "access_token": AT, "refresh_token": RT, "id_token": IT,
            "expires_at_ms": 1, "scopes": ["openid"], "nonce": "n", "auth_time": 1,
            "generation": 3
        }))
        .unwrap();
        assert_clean("core Session", &format!("{session:?} {session}"));
        let ffi = Session::from(session);
        assert!(ffi.has_refresh_token);
        assert_clean("Session", &format!("{ffi:?}"));

        let reg: latchkey::ClientRegistration = serde_json::from_value(serde_json::json!({
            "issuer": "https://op.example", "client_id": "c", "redirect_uris": ["app:/cb"],
            "post_logout_redirect_uris": [], "grant_types": [],
            "id_token_signed_response_alg": null, "client_id_issued_at": null,
            "registration_access_token": RAT, "registration_client_uri": null
        }))
        .unwrap();
        assert_clean("ClientRegistration", &format!("{:?}", ClientRegistration(reg)));

        for e in [
            latchkey::Error::IdToken { reason: "the `sub` claim is missing".into() },
            latchkey::Error::RepeatedParameter { name: "code".into() },
            latchkey::Error::ReauthRequired { reason: "invalid_grant".into() },
        ] {
            let ffi = crate::error::LatchkeyError::from(e);
            assert_clean("LatchkeyError", &format!("{ffi:?} {ffi}"));
        }
    }
}
