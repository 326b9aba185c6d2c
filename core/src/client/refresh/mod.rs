//! Fresh tokens for every process: the fast path, in-process single flight, and the
//! cross-process refresh under the lease with generations and the journal (I1–I6).
//!
//! ```text
//! access_token()
//!   fresh in memory (and saved, and not reported rejected)? ──▶ return it            I6
//!   join or start the single flight (a spawned task: survives caller cancellation)
//!     read generation ── ended? ─▶ LoggedOut / ReauthRequired
//!                     ── newer? ─▶ load from store, verify hash, adopt; fresh? done   I2
//!     acquire lease (fenced, renewed ~1/s)
//!       read the situation: committed generation, store, journal, clock
//!       decide (decide.rs: one pure function, one table) and carry it out:
//!         adopt · roll forward a commit · commit a store that is ahead · repair the store
//!         · persist unsaved tokens · keep a valid token · wait for another holder
//!         · end a lost session · refresh
//!       refresh (answer.rs): journal(request_sent) → send → journal(answered, hash)
//!         → store.save (fenced) → commit CAS(g → g+1) → clear journal → validate the
//!         refreshed ID token (a failure that says nothing against the tokens keeps them) I1 I3
//!       refusal ─▶ re-check for a newer generation before ReauthRequired              I4
//!     release lease (eagerly); a `Wait` releases, sleeps briefly and tries again
//! ```

mod answer;
mod decide;
mod end;
mod situation;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use crate::client::login::ended_error;
use crate::client::{lock, Client, Inner};
use crate::error::{Error, Result};
use crate::lock::SessionState;
use crate::secret::Secret;
use crate::session::events::RefreshOutcome;
use crate::session::lifecycle::{LifecycleEvent, LifecycleState};
use crate::session::Session;

/// The error of a step that needs the lease when the caller lost it (a bug, not a state).
fn no_lease() -> Error {
    Error::Internal { message: "no lease".into() }
}

/// How long a holder that was told to wait for another holder's refresh sleeps (with the
/// lease released) before it looks again.
const WAIT_POLL: Duration = Duration::from_millis(100);

impl Client {
    /// A valid access token, refreshed first when it expires within the refresh margin.
    ///
    /// Returns the in-memory token without touching SQLite while it is fresh (I6). Otherwise
    /// coordinates with every other process (see the module docs). A transient failure
    /// returns the current token while it is still valid; once it has expired the error is
    /// returned and the session kept.
    ///
    /// Fails with [`Error::NoSession`], [`Error::LoggedOut`], [`Error::ReauthRequired`],
    /// and, when the token has expired, transient errors ([`Error::is_retryable`]), among
    /// them [`Error::RefreshInDoubt`] while another process's refresh may still complete.
    /// May save through the store and write the coordination database.
    pub async fn access_token(&self) -> Result<Secret> {
        self.access_token_with_min_ttl(Duration::ZERO).await
    }

    /// Like [`Client::access_token`], but the token must stay valid for at least `min_ttl`.
    pub async fn access_token_with_min_ttl(&self, min_ttl: Duration) -> Result<Secret> {
        if let Some(t) = self.inner.fresh_in_memory(min_ttl)? {
            return Ok(t);
        }
        self.inner.clone().single_flight(false, min_ttl).await?;
        let slot = self.inner.slot();
        let s = slot.session.as_ref().ok_or(Error::NoSession)?;
        Ok(s.access_token.clone())
    }

    /// The in-memory access token when it is fresh for at least `min_ttl` (and the refresh
    /// margin), else `None`: the first step of [`Client::access_token_with_min_ttl`] on its
    /// own, synchronous, for callers whose cost per call matters (a binding serves a fresh
    /// token with it before it falls back to the async call).
    ///
    /// Applies the same freshness rules as [`Client::access_token_with_min_ttl`]: a token
    /// not yet saved through the store, a token reported with [`Client::token_rejected`],
    /// and a token due within the refresh margin are not fresh. `None` means "call
    /// `access_token_with_min_ttl`", which refreshes or adopts; this method never does.
    ///
    /// Fails with [`Error::NoSession`], [`Error::LoggedOut`] and [`Error::ReauthRequired`],
    /// as `access_token_with_min_ttl` does for the same state. Takes one short mutex
    /// section; touches no persisted state (neither SQLite nor the store) and never waits.
    pub fn fresh_access_token(&self, min_ttl: Duration) -> Result<Option<Secret>> {
        self.inner.fresh_in_memory(min_ttl)
    }

    /// Refreshes now, even if the access token is still fresh (unless another process just
    /// committed a newer generation, which is adopted instead). Returns what happened.
    ///
    /// Fails like [`Client::access_token`]; a transient failure is returned as an error
    /// even when the current token is still valid.
    pub async fn refresh(&self) -> Result<RefreshOutcome> {
        self.inner.ensure_session()?;
        self.inner.clone().single_flight(true, Duration::ZERO).await
    }

    /// Tells Latchkey that a resource server rejected `access_token` (HTTP 401), e.g.
    /// because the provider revoked it when it rotated the tokens, and returns a token to
    /// retry with: the current one if it is already another, else a newer generation
    /// committed by another process, else the result of one refresh (single flight).
    /// Reporting the same token again never refreshes again: call it once per rejection
    /// and do not loop.
    ///
    /// Fails like [`Client::access_token`]. May save through the store and write the
    /// coordination database.
    pub async fn token_rejected(&self, access_token: &Secret) -> Result<Secret> {
        let generation = {
            let mut slot = self.inner.slot();
            let s = slot.session.as_ref().ok_or(Error::NoSession)?;
            if s.access_token.expose() != access_token.expose() {
                // Already replaced: retry with the current token.
                return Ok(s.access_token.clone());
            }
            let generation = s.generation;
            if slot.rejected == Some(generation) {
                // Reported before: a refresh for it ran or runs; join it, never loop.
                None
            } else {
                slot.rejected = Some(generation);
                Some(generation)
            }
        };
        tracing::info!(?generation, "the app reported the access token rejected");
        self.inner.clone().single_flight(false, Duration::ZERO).await?;
        let slot = self.inner.slot();
        let s = slot.session.as_ref().ok_or(Error::NoSession)?;
        Ok(s.access_token.clone())
    }

    /// Catches up with other processes without refreshing: adopts a newer committed
    /// generation, or learns that the session was logged out. Call it when the app comes
    /// to the foreground. Reads the coordination database and maybe the store.
    pub async fn sync(&self) -> Result<Option<Session>> {
        let current = self.inner.ensure_session()?;
        self.inner.check_shared(&current).await?;
        Ok(self.session())
    }
}

impl Inner {
    pub(crate) fn ensure_session(&self) -> Result<Session> {
        let slot = self.slot();
        match (&slot.session, slot.state) {
            (_, LifecycleState::LoggedOut) => Err(Error::LoggedOut),
            (_, LifecycleState::ReauthRequired) => {
                Err(Error::ReauthRequired { reason: "the provider ended the session".into() })
            }
            (Some(s), _) => Ok(s.clone()),
            (None, _) => Err(Error::NoSession),
        }
    }

    /// The access token if it is fresh enough: one short mutex section, no clone of the
    /// session, no SQLite (I6). Unsaved tokens and a token the app reported rejected are
    /// never fresh, so the slow path saves or replaces them.
    fn fresh_in_memory(&self, min_ttl: Duration) -> Result<Option<Secret>> {
        // A few milliseconds ahead of the time: a token is judged to expire early, not late.
        let now = self.clock.now_coarse();
        let slot = self.slot();
        match (&slot.session, slot.state) {
            (_, LifecycleState::LoggedOut) => Err(Error::LoggedOut),
            (_, LifecycleState::ReauthRequired) => {
                Err(Error::ReauthRequired { reason: "the provider ended the session".into() })
            }
            (Some(s), _) => {
                if slot.unsaved || slot.rejected == Some(s.generation) {
                    return Ok(None);
                }
                let margin = if slot.refused_early == Some(s.generation) {
                    min_ttl
                } else {
                    s.refresh_margin(self.config.refresh_margin).max(min_ttl)
                };
                Ok(s.is_fresh(now, margin).then(|| s.access_token.clone()))
            }
            (None, _) => Err(Error::NoSession),
        }
    }

    /// Joins the refresh in flight in this process, or starts one in a spawned task so it
    /// completes even if every caller is cancelled. A joiner whose own requirement (a forced
    /// refresh, a longer minimum lifetime) the shared flight did not meet starts one more.
    async fn single_flight(
        self: Arc<Self>,
        force: bool,
        min_ttl: Duration,
    ) -> Result<RefreshOutcome> {
        let mut joined_weaker = false;
        for _ in 0..2 {
            let (flight, covers) = {
                let mut guard = lock(&self.flight);
                match guard.as_ref() {
                    Some((_, f, f_force, f_ttl)) if !joined_weaker => {
                        (f.clone(), (*f_force || !force) && *f_ttl >= min_ttl)
                    }
                    _ => {
                        let id = self.flight_seq.fetch_add(1, Ordering::Relaxed);
                        let me = self.clone();
                        let handle = tokio::spawn(async move {
                            let r = me.clone().refresh_procedure(force, min_ttl).await;
                            let mut g = lock(&me.flight);
                            if g.as_ref().is_some_and(|(i, ..)| *i == id) {
                                *g = None;
                            }
                            r
                        });
                        let f = async move {
                            handle.await.unwrap_or_else(|e| {
                                Err(Error::Internal {
                                    message: format!("refresh task failed: {e}"),
                                })
                            })
                        }
                        .boxed()
                        .shared();
                        *guard = Some((id, f.clone(), force, min_ttl));
                        (f, true)
                    }
                }
            };
            let result = flight.await;
            let satisfied = covers
                || match &result {
                    Ok(RefreshOutcome::Refreshed { .. }) => true,
                    Ok(_) => !force && self.fresh_in_memory(min_ttl).ok().flatten().is_some(),
                    Err(_) => true,
                };
            if satisfied {
                return result;
            }
            joined_weaker = true;
        }
        Err(Error::Internal { message: "single flight did not settle".into() })
    }

    fn is_fresh(&self, s: &Session, min_ttl: Duration) -> bool {
        let slot = self.slot();
        if slot.unsaved || slot.rejected == Some(s.generation) {
            return false;
        }
        let margin = if slot.refused_early == Some(s.generation) {
            min_ttl
        } else {
            s.refresh_margin(self.config.refresh_margin).max(min_ttl)
        };
        s.is_fresh(self.now(), margin)
    }

    /// Whether the access token is usable at all: not expired, not reported rejected.
    fn is_valid(&self, s: &Session) -> bool {
        self.slot().rejected != Some(s.generation) && s.is_fresh(self.now(), Duration::ZERO)
    }

    /// Reads the committed generation without the lease: ends the session if another
    /// process ended it, adopts a newer generation from the store. Returns the outcome when
    /// nothing more is to be done; `None` when the lease path must decide (including when
    /// the store does not hold the newer generation: never a refresh with an older token).
    pub(crate) async fn check_shared(&self, current: &Session) -> Result<Option<RefreshOutcome>> {
        let Some(r) = self.coordinator.generation(self.account()).await? else {
            return Ok(None);
        };
        // An ended record at our generation ends us too: end() always moves past the
        // committed generation, so only an uncommitted session can share its number.
        if r.state != SessionState::Active && r.generation >= current.generation {
            self.forget();
            let (err, ev) = ended_error(r.state);
            self.event(ev, Some("ended by another process".into()));
            return Err(err);
        }
        if r.generation > current.generation {
            if let Some(s) = self.adopt(&r).await? {
                return Ok(Some(RefreshOutcome::Adopted { generation: s.generation }));
            }
        }
        Ok(None)
    }

    /// Runs the coordinated refresh; any transient failure (database, lock, network, store)
    /// keeps the session and, unless forced, hands out the still-valid current token.
    async fn refresh_procedure(
        self: Arc<Self>,
        force: bool,
        min_ttl: Duration,
    ) -> Result<RefreshOutcome> {
        let current = self.ensure_session()?;
        match self.coordinate(&current, force, min_ttl).await {
            Err(e) if e.is_retryable() => self.keep_if_valid(force, e),
            other => other,
        }
    }

    async fn coordinate(
        &self,
        current: &Session,
        force: bool,
        min_ttl: Duration,
    ) -> Result<RefreshOutcome> {
        if let Some(o) = self.check_shared(current).await? {
            let adopted = self.ensure_session()?;
            if force || self.is_fresh(&adopted, min_ttl) {
                return Ok(o);
            }
        }
        let current = self.ensure_session()?;
        if !force && self.is_fresh(&current, min_ttl) {
            return Ok(RefreshOutcome::StillFresh { generation: current.generation });
        }
        let started = std::time::Instant::now();
        let timeout = self.config.lock.acquire_timeout;
        loop {
            let current = self.ensure_session()?;
            // While the access token is still valid, wait for another holder no longer than
            // it stays valid: the caller is better served by the current token than by waiting.
            let left = timeout.saturating_sub(started.elapsed());
            let wait = match current.remaining(self.now()) {
                Some(valid) if !force && !valid.is_zero() && self.is_valid(&current) => {
                    valid.min(left)
                }
                _ => left,
            };
            let mut attempt =
                self.coordinator.acquire_within(self.account(), &self.holder, wait).await;
            if matches!(attempt, Err(Error::LockTimeout)) && !self.is_valid(&current) {
                // The token expired while we waited: nothing better to hand out, so wait for
                // the other holder for the rest of the acquire timeout (it is likely refreshing).
                let rest = timeout.saturating_sub(started.elapsed());
                attempt = self.coordinator.acquire_within(self.account(), &self.holder, rest).await;
            }
            let mut held = Some(attempt?);
            let result = self.under_lease(&mut held, force, min_ttl).await;
            if let Some(lease) = held {
                if let Err(e) = lease.release().await {
                    tracing::warn!(error = %e, "lease release failed; it lapses by itself");
                }
            }
            match result {
                Err(Error::RefreshInDoubt) if started.elapsed() + WAIT_POLL < timeout => {
                    tokio::time::sleep(WAIT_POLL).await;
                }
                other => return other,
            }
        }
    }

    /// A transient failure: keep the session, and hand out the current token while valid.
    fn keep_if_valid(&self, force: bool, e: Error) -> Result<RefreshOutcome> {
        self.event(LifecycleEvent::RefreshFailed, Some(e.to_string()));
        match self.ensure_session() {
            Ok(current) if !force && self.is_valid(&current) => {
                Ok(RefreshOutcome::KeptValidToken { generation: current.generation })
            }
            _ => Err(e),
        }
    }
}
