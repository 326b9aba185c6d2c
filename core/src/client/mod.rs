//! [`Client`]: the one object an app holds. It signs the user in, keeps the session fresh
//! across processes and ends it.
//!
//! Everything that touches persisted state goes through two places: the app's
//! [`SessionStore`] (the session itself) and the shared coordination database
//! ([`Coordinator`]: lease, generation, journal). See `docs/adr/` for the protocol.

mod backchannel;
mod login;
mod logout;
mod persist;
mod refresh;

pub use logout::LogoutOutcome;

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use futures::future::{BoxFuture, Shared};

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::http::{HttpClient, HttpConfig};
use crate::lock::{Coordinator, CoordinatorConfig};
use crate::oidc::authorize::PendingRequests;
use crate::oidc::jwks::Jwks;
use crate::oidc::{ClientRegistration, Discovery, ProviderMetadata, RegistrationOptions};
use crate::session::events::{
    ObserverHandle, Observers, RefreshOutcome, SessionEvent, SessionObserver,
};
use crate::session::lifecycle::{transition, LifecycleEvent, LifecycleState};
use crate::session::retry::RetryPolicy;
use crate::session::Session;
use crate::store::SessionStore;

/// How a [`Client`] is set up.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The provider's issuer identifier (https, or loopback http when allowed).
    pub issuer: String,
    /// The account key of the session in the store and the coordination database
    /// (default `default`). Several accounts may share one database.
    pub account: String,
    /// A name for this process in the lock (e.g. `app`, `notification-extension`).
    pub holder: String,
    /// The coordination database, shared by every process of the app (App Group container
    /// on iOS, the app's files directory on Android). Created when missing.
    pub coordination_db: PathBuf,
    /// HTTP settings.
    pub http: HttpConfig,
    /// Refresh proactively when the access token expires within this margin (default 60 s;
    /// at most a quarter of the token's lifetime).
    pub refresh_margin: Duration,
    /// Clock skew tolerated when checking ID token times (default 60 s).
    pub clock_skew: Duration,
    /// How long discovery results are cached (default 1 h).
    pub discovery_ttl: Duration,
    /// Retries of transient token-endpoint failures that certainly consumed nothing.
    pub retry: RetryPolicy,
    /// Retries of retryable session store failures.
    pub store_retry: RetryPolicy,
    /// Lease, renewal and wait timings of the cross-process lock.
    pub lock: CoordinatorConfig,
    /// How long an access token is taken to live when the provider sends no `expires_in`
    /// (default 10 min): an unknown expiry is never fresh forever.
    pub assumed_token_lifetime: Duration,
    /// The provider's reuse interval: how long a rotated refresh token stays usable after
    /// its first use (Auth0 and Okta call it leeway or grace period). `None` (default) for
    /// providers that revoke the grant at the first reuse. With an interval, a holder that
    /// finds another holder's refresh unfinished and younger than it resends and recovers.
    pub reuse_interval: Option<Duration>,
    /// How long another holder's refresh whose request may have consumed the refresh token
    /// (`request_sent`) is waited for before the old token is tried once (default: the HTTP
    /// request timeout plus the lease).
    pub in_doubt_wait: Option<Duration>,
    /// How long another holder's refresh that the provider answered, but whose tokens are
    /// not in the store, is waited for before the session is declared lost (default 10 min:
    /// a suspended process may still come back and commit them).
    pub answered_limit: Duration,
    /// Time allowed for each call of the app's [`SessionStore`] (default 5 s); a call that
    /// takes longer fails as a retryable store error, so a hung keychain cannot hold the
    /// refresh lease of every process.
    pub store_timeout: Duration,
    /// RFC 8707 resource indicators: absolute URIs (no fragment) of the protected resources
    /// the tokens are for. Each is sent as `resource` on the authorization request, the code
    /// exchange and every refresh (the Model Context Protocol's authorization requires
    /// this). Default empty: none sent.
    pub resources: Vec<String>,
}

impl ClientConfig {
    /// A configuration with defaults for `issuer` and the coordination database at `db`.
    pub fn new(issuer: impl Into<String>, db: impl Into<PathBuf>) -> Self {
        ClientConfig {
            issuer: issuer.into(),
            account: "default".into(),
            holder: "app".into(),
            coordination_db: db.into(),
            http: HttpConfig::default(),
            refresh_margin: Duration::from_secs(60),
            clock_skew: Duration::from_secs(60),
            discovery_ttl: Duration::from_secs(3600),
            retry: RetryPolicy::default(),
            store_retry: RetryPolicy {
                max_attempts: 4,
                base_delay: Duration::from_millis(50),
                max_delay: Duration::from_secs(1),
            },
            lock: CoordinatorConfig::default(),
            assumed_token_lifetime: crate::session::ASSUMED_TOKEN_LIFETIME,
            reuse_interval: None,
            in_doubt_wait: None,
            answered_limit: Duration::from_secs(600),
            store_timeout: Duration::from_secs(5),
            resources: Vec::new(),
        }
    }

    /// The effective `in_doubt_wait`.
    pub(crate) fn in_doubt_wait(&self) -> Duration {
        self.in_doubt_wait.unwrap_or(self.http.request_timeout + self.lock.lease)
    }
}

/// The in-memory session of this process.
pub(crate) struct Slot {
    pub state: LifecycleState,
    pub session: Option<Session>,
    /// The session in memory is newer than the store's: its save failed.
    pub unsaved: bool,
    /// The generation whose access token the app reported rejected (`token_rejected`):
    /// while it is the current one, its access token counts as expired.
    pub rejected: Option<u64>,
    /// The generation whose proactive refresh the provider refused while its access token
    /// was still valid: served until it expires, then refreshed once more.
    pub refused_early: Option<u64>,
}

type Flight = Shared<BoxFuture<'static, Result<RefreshOutcome>>>;

pub(crate) struct Inner {
    pub config: ClientConfig,
    pub holder: String,
    pub http: HttpClient,
    pub clock: Arc<dyn Clock>,
    pub store: Arc<dyn SessionStore>,
    pub coordinator: Coordinator,
    pub discovery: Discovery,
    pub registration: Mutex<Option<ClientRegistration>>,
    pub pending: Mutex<PendingRequests>,
    pub jwks: Mutex<Option<(String, Arc<Jwks>)>>,
    pub slot: Mutex<Slot>,
    pub observers: Observers,
    /// The refresh in flight in this process: id, shared future, forced, minimum lifetime.
    pub flight: Mutex<Option<(u64, Flight, bool, Duration)>>,
    pub flight_seq: AtomicU64,
    /// Provider clock minus ours, from `Date` headers (ms).
    pub server_offset_ms: AtomicI64,
}

/// The Latchkey client: one per account per process. Cheap to clone (shared inside).
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("issuer", &self.inner.config.issuer)
            .field("account", &self.inner.config.account)
            .field("holder", &self.inner.holder)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoning means a panic while the guard was held; every guarded value here is
    // updated in single assignments, so it is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

static CLIENT_SEQ: AtomicU64 = AtomicU64::new(0);

impl Client {
    /// Creates a client with the system clock and an HTTP client built from
    /// `config.http`. Opens (creating if needed) the coordination database.
    ///
    /// Fails with [`Error::InsecureUrl`] for an unacceptable issuer, [`Error::Database`]
    /// when the database cannot be opened, [`Error::Config`] for an invalid configuration.
    pub fn new(config: ClientConfig, store: Arc<dyn SessionStore>) -> Result<Client> {
        let http = HttpClient::new(config.http.clone())?;
        Client::with_parts(config, store, http, Arc::new(SystemClock))
    }

    /// Creates a client with an injected HTTP client and clock.
    pub fn with_parts(
        config: ClientConfig,
        store: Arc<dyn SessionStore>,
        http: HttpClient,
        clock: Arc<dyn Clock>,
    ) -> Result<Client> {
        http.check_url(&config.issuer)?;
        if config.account.is_empty() || config.holder.is_empty() {
            return Err(Error::config("account and holder must not be empty"));
        }
        crate::oidc::authorize::check_resources(&config.resources)?;
        let coordinator =
            Coordinator::open(config.coordination_db.clone(), config.lock.clone(), clock.clone())?;
        // Unique per client in this process: a lease is re-entrant for its holder name.
        let holder = format!(
            "{}:{}:{}",
            config.holder,
            std::process::id(),
            CLIENT_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let discovery = Discovery::new(http.clone(), config.discovery_ttl);
        Ok(Client {
            inner: Arc::new(Inner {
                holder,
                http,
                clock,
                store,
                coordinator,
                discovery,
                registration: Mutex::new(None),
                pending: Mutex::new(PendingRequests::default()),
                jwks: Mutex::new(None),
                slot: Mutex::new(Slot {
                    state: LifecycleState::Unregistered,
                    session: None,
                    unsaved: false,
                    rejected: None,
                    refused_early: None,
                }),
                observers: Observers::default(),
                flight: Mutex::new(None),
                flight_seq: AtomicU64::new(0),
                server_offset_ms: AtomicI64::new(0),
                config,
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// This process's holder name in the lock (configured name, pid and a counter).
    pub fn holder(&self) -> &str {
        &self.inner.holder
    }

    /// The current lifecycle state. Touches nothing persisted.
    pub fn state(&self) -> LifecycleState {
        lock(&self.inner.slot).state
    }

    /// A copy of the session in memory, if any. Touches nothing persisted.
    pub fn session(&self) -> Option<Session> {
        lock(&self.inner.slot).session.clone()
    }

    /// Registers an observer of every lifecycle event, until the returned handle is
    /// dropped or cancelled. Touches nothing persisted; never fails.
    pub fn add_observer(&self, observer: Arc<dyn SessionObserver>) -> ObserverHandle {
        self.inner.observers.add(observer)
    }

    /// The provider's metadata (discovery, cached).
    ///
    /// Fails like [`Discovery::metadata`].
    pub async fn provider(&self) -> Result<Arc<ProviderMetadata>> {
        self.inner.metadata().await
    }

    /// Registers this app with the provider (RFC 7591) and keeps the registration.
    /// Returns it so the app can persist it and restore it on the next run.
    ///
    /// Fails with [`Error::Unsupported`] without a registration endpoint, or with the
    /// provider's refusal. Persists nothing itself.
    pub async fn register(&self, request: RegistrationOptions) -> Result<ClientRegistration> {
        let metadata = self.inner.metadata().await?;
        let reg =
            crate::oidc::registration::register(&self.inner.http, &metadata, &request).await?;
        self.set_registration(reg.clone());
        Ok(reg)
    }

    /// Uses a registration the app persisted earlier (or a client_id configured by hand).
    ///
    /// Fails with [`Error::Config`] when it belongs to another issuer.
    pub fn restore_registration(&self, registration: ClientRegistration) -> Result<()> {
        if registration.issuer != self.inner.config.issuer {
            return Err(Error::config(format!(
                "the registration is for `{}`, not `{}`",
                registration.issuer, self.inner.config.issuer
            )));
        }
        self.set_registration(registration);
        Ok(())
    }

    /// The registration in use, if any.
    pub fn registration(&self) -> Option<ClientRegistration> {
        lock(&self.inner.registration).clone()
    }

    fn set_registration(&self, reg: ClientRegistration) {
        *lock(&self.inner.registration) = Some(reg);
        self.inner.event(LifecycleEvent::Registered, None);
    }

    /// Closes the coordination database and gives up this process's leases, e.g. when an
    /// iOS app moves to the background (a suspended process must hold no file lock).
    /// The next call that needs the database reopens it after [`Client::resume`].
    ///
    /// A refresh in flight is waited for first (at most the lease time), so its answer is
    /// saved and committed before the lease is given up; had it to be cut short, its journal
    /// entry still tells every other process not to resend the refresh token.
    pub async fn pause(&self) {
        let flight = lock(&self.inner.flight).as_ref().map(|(_, f, ..)| f.clone());
        if let Some(f) = flight {
            if tokio::time::timeout(self.inner.config.lock.lease, f).await.is_err() {
                tracing::warn!("pausing with a refresh still in flight");
            }
        }
        self.inner.coordinator.pause().await;
    }

    /// Allows the coordination database to be reopened on demand after [`Client::pause`].
    pub fn resume(&self) {
        self.inner.coordinator.resume();
    }
}

impl Inner {
    pub(crate) fn account(&self) -> &str {
        &self.config.account
    }

    pub(crate) fn slot(&self) -> MutexGuard<'_, Slot> {
        lock(&self.slot)
    }

    pub(crate) fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// Our clock corrected by the provider's `Date` header offset.
    pub(crate) fn provider_now(&self) -> SystemTime {
        let off = self.server_offset_ms.load(Ordering::Relaxed);
        let now = self.now();
        if off >= 0 {
            now + Duration::from_millis(off as u64)
        } else {
            now.checked_sub(Duration::from_millis(off.unsigned_abs())).unwrap_or(now)
        }
    }

    pub(crate) fn note_server_date(&self, date: Option<SystemTime>) {
        if let Some(d) = date {
            let off = crate::clock::unix_millis(d) - self.clock.now_millis();
            // Date has one-second resolution: ignore offsets within it.
            let off = if off.abs() < 1500 { 0 } else { off };
            self.server_offset_ms.store(off, Ordering::Relaxed);
        }
    }

    pub(crate) async fn metadata(&self) -> Result<Arc<ProviderMetadata>> {
        self.discovery.metadata(&self.config.issuer).await
    }

    pub(crate) fn jwks(&self, metadata: &ProviderMetadata) -> Result<Arc<Jwks>> {
        let uri = ProviderMetadata::require(&metadata.jwks_uri, "jwks_uri")?;
        let mut guard = lock(&self.jwks);
        if let Some((u, j)) = guard.as_ref() {
            if u == uri {
                return Ok(j.clone());
            }
        }
        let j = Arc::new(Jwks::new(self.http.clone(), uri.to_string()));
        *guard = Some((uri.to_string(), j.clone()));
        Ok(j)
    }

    /// Applies `event` to the state machine and tells the observers.
    pub(crate) fn event(&self, event: LifecycleEvent, detail: Option<String>) {
        let ev = {
            let mut slot = self.slot();
            let from = slot.state;
            slot.state = transition(from, event);
            SessionEvent {
                account: self.config.account.clone(),
                event,
                from,
                to: slot.state,
                generation: slot.session.as_ref().map(|s| s.generation),
                detail,
            }
        };
        tracing::debug!(account = %ev.account, event = ?ev.event, from = ?ev.from, to = ?ev.to, generation = ?ev.generation, "session event");
        self.observers.emit(&ev);
    }
}
