//! The provider's signing keys (JWKS), cached, refetched once on an unknown `kid` with a
//! rate limit so a flood of forged tokens cannot make Latchkey hammer the provider.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use openidconnect::core::CoreJsonWebKeySet;

use crate::error::{Error, Result};
use crate::http::HttpClient;
use crate::oidc::response::parse_json;

/// Least time between two refetches triggered by an unknown key.
pub(crate) const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// How long fetched keys are used before they are fetched again.
pub(crate) const KEYS_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Default)]
struct State {
    keys: Option<(CoreJsonWebKeySet, Instant)>,
    last_forced: Option<Instant>,
}

/// Cached JWKS of one provider. Touches no persisted state.
pub(crate) struct Jwks {
    http: HttpClient,
    uri: String,
    state: Mutex<State>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks").field("uri", &self.uri).finish_non_exhaustive()
    }
}

impl Jwks {
    pub(crate) fn new(http: HttpClient, uri: String) -> Self {
        Jwks { http, uri, state: Mutex::new(State::default()) }
    }

    /// Keys known up front and no refetch for a while (fuzzing: no network).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn preloaded(http: HttpClient, uri: String, keys: CoreJsonWebKeySet) -> Self {
        let now = Instant::now();
        let state = State { keys: Some((keys, now)), last_forced: Some(now) };
        Jwks { http, uri, state: Mutex::new(state) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Poisoning only means a panic elsewhere; the cached keys are still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached keys, fetching them when missing or older than [`KEYS_TTL`].
    pub(crate) async fn keys(&self) -> Result<CoreJsonWebKeySet> {
        if let Some((k, at)) = &self.lock().keys {
            if at.elapsed() < KEYS_TTL {
                return Ok(k.clone());
            }
        }
        self.fetch().await
    }

    /// Refetches after a token named an unknown key. Returns None when a forced refetch
    /// happened less than [`MIN_REFETCH_INTERVAL`] ago.
    pub(crate) async fn refetch_for_unknown_kid(&self) -> Result<Option<CoreJsonWebKeySet>> {
        {
            let mut st = self.lock();
            if st.last_forced.is_some_and(|t| t.elapsed() < MIN_REFETCH_INTERVAL) {
                return Ok(None);
            }
            st.last_forced = Some(Instant::now());
        }
        self.fetch().await.map(Some)
    }

    async fn fetch(&self) -> Result<CoreJsonWebKeySet> {
        let resp = self.http.get(&self.uri, None).await.map_err(Error::from)?;
        let keys: CoreJsonWebKeySet = parse_json(&resp, "JWKS")?;
        self.lock().keys = Some((keys.clone(), Instant::now()));
        Ok(keys)
    }
}
