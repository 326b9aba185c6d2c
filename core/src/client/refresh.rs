//! Fresh tokens for every process: the fast path, in-process single flight, and the
//! cross-process refresh under the lease with generations and the journal (I1–I6).
//!
//! ```text
//! access_token()
//!   fresh in memory? ──yes──▶ return it (no SQLite, no lock)                        I6
//!   join or start the single flight (a spawned task: survives caller cancellation)
//!     read generation ── ended? ─▶ LoggedOut / ReauthRequired
//!                     ── newer? ─▶ load from store, verify hash, adopt              I2
//!     acquire lease (fenced, renewed ~1/s)
//!       re-read generation (same checks)
//!       stale journal of another holder:
//!         saving + store holds its tokens ─▶ roll forward the commit, adopt          I5
//!         refresh token may be consumed and access token valid ─▶ keep it           I5
//!       journal(request_sent) → refresh → journal(saving, hash) → store.save
//!       → commit CAS(generation → generation+1) → clear journal                     I1 I3
//!       invalid_grant ─▶ re-check for a newer generation before ReauthRequired       I4
//!     release lease (eagerly)
//! ```

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use crate::client::login::ended_error;
use crate::client::{lock, Client, Inner};
use crate::error::{Error, Result};
use crate::lock::{JournalPhase, Lease, SessionState};
use crate::oidc::id_token::{self, Expectations, NonceRule};
use crate::oidc::token::{self, TokenFailure, TokenResponse};
use crate::oidc::ProviderMetadata;
use crate::secret::Secret;
use crate::session::events::RefreshOutcome;
use crate::session::lifecycle::{LifecycleEvent, LifecycleState};
use crate::session::Session;

impl Client {
    /// A valid access token, refreshed first when it expires within the refresh margin.
    ///
    /// Returns the in-memory token without touching SQLite while it is fresh (I6). Otherwise
    /// coordinates with every other process (see the module docs). A transient failure
    /// returns the current token while it is still valid; once it has expired the error is
    /// returned and the session kept.
    ///
    /// Fails with [`Error::NoSession`], [`Error::LoggedOut`], [`Error::ReauthRequired`],
    /// and, when the token has expired, transient errors ([`Error::is_retryable`]).
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

    /// Refreshes now, even if the access token is still fresh (unless another process just
    /// committed a newer generation, which is adopted instead). Returns what happened.
    ///
    /// Fails like [`Client::access_token`]; a transient failure is returned as an error
    /// even when the current token is still valid.
    pub async fn refresh(&self) -> Result<RefreshOutcome> {
        self.inner.ensure_session()?;
        self.inner.clone().single_flight(true, Duration::ZERO).await
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
    /// session, no SQLite (I6).
    fn fresh_in_memory(&self, min_ttl: Duration) -> Result<Option<Secret>> {
        let now = self.now();
        let slot = self.slot();
        match (&slot.session, slot.state) {
            (_, LifecycleState::LoggedOut) => Err(Error::LoggedOut),
            (_, LifecycleState::ReauthRequired) => {
                Err(Error::ReauthRequired { reason: "the provider ended the session".into() })
            }
            (Some(s), _) => {
                let margin = s.refresh_margin(self.config.refresh_margin).max(min_ttl);
                Ok(s.is_fresh(now, margin).then(|| s.access_token.clone()))
            }
            (None, _) => Err(Error::NoSession),
        }
    }

    /// Joins the refresh in flight in this process, or starts one in a spawned task so it
    /// completes even if every caller is cancelled.
    async fn single_flight(
        self: Arc<Self>,
        force: bool,
        min_ttl: Duration,
    ) -> Result<RefreshOutcome> {
        let flight = {
            let mut guard = lock(&self.flight);
            match guard.as_ref() {
                Some((_, f)) => f.clone(),
                None => {
                    let id = self.flight_seq.fetch_add(1, Ordering::Relaxed);
                    let me = self.clone();
                    let handle = tokio::spawn(async move {
                        let r = me.clone().refresh_procedure(force, min_ttl).await;
                        let mut g = lock(&me.flight);
                        if g.as_ref().is_some_and(|(i, _)| *i == id) {
                            *g = None;
                        }
                        r
                    });
                    let f = async move {
                        handle.await.unwrap_or_else(|e| {
                            Err(Error::Internal { message: format!("refresh task failed: {e}") })
                        })
                    }
                    .boxed()
                    .shared();
                    *guard = Some((id, f.clone()));
                    f
                }
            }
        };
        flight.await
    }

    fn is_fresh(&self, s: &Session, min_ttl: Duration) -> bool {
        s.is_fresh(self.now(), s.refresh_margin(self.config.refresh_margin).max(min_ttl))
    }

    /// Reads the committed generation: ends the session if another process ended it,
    /// adopts a newer generation. Returns the outcome when nothing more is to be done.
    pub(crate) async fn check_shared(&self, current: &Session) -> Result<Option<RefreshOutcome>> {
        let rec = self.coordinator.generation(self.account()).await?;
        match rec {
            None => {
                // A new or reset database: our session becomes the committed generation.
                self.coordinator
                    .register(self.account(), current.generation, &current.token_hash())
                    .await?;
                Ok(None)
            }
            // An ended record at our generation ends us too: end() always moves past the
            // committed generation, so only an uncommitted session can share its number.
            Some(r) if r.state != SessionState::Active && r.generation >= current.generation => {
                self.forget();
                let (err, ev) = ended_error(r.state);
                self.event(ev, Some("ended by another process".into()));
                Err(err)
            }
            Some(r) if r.generation > current.generation => Ok(self
                .adopt(&r)
                .await?
                .map(|s| RefreshOutcome::Adopted { generation: s.generation })),
            Some(_) => Ok(None),
        }
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
            Err(e) if e.is_retryable() => self.keep_if_valid(&current, force, e),
            other => other,
        }
    }

    async fn coordinate(
        &self,
        current: &Session,
        force: bool,
        min_ttl: Duration,
    ) -> Result<RefreshOutcome> {
        let current = current.clone();
        if let Some(o) = self.check_shared(&current).await? {
            return Ok(o);
        }
        if !force && self.is_fresh(&current, min_ttl) {
            return Ok(RefreshOutcome::StillFresh { generation: current.generation });
        }
        // While the access token is still valid, wait for another holder no longer than it
        // stays valid: the caller is better served by the current token than by waiting.
        let wait = match current.remaining(self.now()) {
            Some(left) if !force && !left.is_zero() => left.min(self.config.lock.acquire_timeout),
            _ => self.config.lock.acquire_timeout,
        };
        let started = std::time::Instant::now();
        let mut attempt = self.coordinator.acquire_within(self.account(), &self.holder, wait).await;
        if matches!(attempt, Err(Error::LockTimeout))
            && !current.is_fresh(self.now(), Duration::ZERO)
        {
            // The token expired while we waited: nothing better to hand out, so wait for the
            // other holder for the rest of the acquire timeout (it is likely refreshing).
            let rest = self.config.lock.acquire_timeout.saturating_sub(started.elapsed());
            attempt = self.coordinator.acquire_within(self.account(), &self.holder, rest).await;
        }
        let mut held = Some(attempt?);
        let result = self.refresh_under_lease(&mut held, force, min_ttl).await;
        if let Some(lease) = held {
            if let Err(e) = lease.release().await {
                tracing::warn!(error = %e, "lease release failed; it lapses by itself");
            }
        }
        result
    }

    /// A transient failure: keep the session, and hand out the current token while valid.
    fn keep_if_valid(&self, current: &Session, force: bool, e: Error) -> Result<RefreshOutcome> {
        self.event(LifecycleEvent::RefreshFailed, Some(e.to_string()));
        if !force && current.is_fresh(self.now(), Duration::ZERO) {
            Ok(RefreshOutcome::KeptValidToken { generation: current.generation })
        } else {
            Err(e)
        }
    }

    async fn refresh_under_lease(
        &self,
        held: &mut Option<Lease>,
        force: bool,
        min_ttl: Duration,
    ) -> Result<RefreshOutcome> {
        let lease = held.as_ref().ok_or_else(|| Error::Internal { message: "no lease".into() })?;
        let current = self.ensure_session()?;
        if let Some(o) = self.check_shared(&current).await? {
            return Ok(o);
        }
        if !force && self.is_fresh(&current, min_ttl) {
            return Ok(RefreshOutcome::StillFresh { generation: current.generation });
        }
        if self.slot().unsaved {
            return self.persist_unsaved(lease, current).await;
        }
        if let Some(j) = self.coordinator.journal(self.account()).await? {
            if j.fence != lease.fence() && j.from_generation == current.generation {
                // Another holder stopped mid-refresh of this very generation.
                if let (JournalPhase::Saving, Some(h)) = (j.phase, j.new_token_hash.as_deref()) {
                    if let Some(s) = self.load_matching(j.from_generation + 1, h).await? {
                        // Its save reached the store; only the commit is missing: finish it.
                        if self
                            .coordinator
                            .commit(self.account(), Some(j.from_generation), s.generation, h)
                            .await?
                        {
                            lease.journal_clear().await?;
                            self.install(s.clone(), false);
                            self.event(
                                LifecycleEvent::Adopted,
                                Some("completed an interrupted commit".into()),
                            );
                            return Ok(RefreshOutcome::Adopted { generation: s.generation });
                        }
                    }
                }
                if current.is_fresh(self.now(), Duration::ZERO) {
                    // Its request may have consumed our refresh token: a refresh now could
                    // be a reuse that revokes the grant. Keep the valid access token.
                    self.event(
                        LifecycleEvent::RefreshFailed,
                        Some("an interrupted refresh may have consumed the refresh token; keeping the valid access token".into()),
                    );
                    return Ok(RefreshOutcome::KeptValidToken { generation: current.generation });
                }
            }
        }
        let Some(refresh_token) = current.refresh_token.clone() else {
            return if current.is_fresh(self.now(), Duration::ZERO) {
                Ok(RefreshOutcome::KeptValidToken { generation: current.generation })
            } else {
                self.end_session(SessionState::ReauthRequired, "no refresh token").await
            };
        };
        let metadata = self.metadata().await?;
        self.event(LifecycleEvent::RefreshStarted, None);
        lease.journal_begin(current.generation).await?;
        match self.send_refresh(&metadata, &current.client_id, &refresh_token).await {
            Ok(tokens) => self.complete_refresh(held, &metadata, &current, tokens).await,
            Err(f) if matches!(&f.error, Error::Provider { error, .. } if error == "invalid_grant") =>
            {
                // I4: another process may have rotated the token since we read the generation.
                if let Some(o) = self.check_shared(&current).await? {
                    lease.journal_clear().await?;
                    return Ok(o);
                }
                lease.journal_clear().await?;
                self.end_session(
                    SessionState::ReauthRequired,
                    "the provider refused the refresh token (invalid_grant)",
                )
                .await
            }
            Err(f) => {
                if !f.maybe_processed {
                    lease.journal_clear().await?;
                }
                Err(f.error)
            }
        }
    }

    /// Sends the refresh, retrying only failures that certainly consumed nothing.
    async fn send_refresh(
        &self,
        metadata: &ProviderMetadata,
        client_id: &str,
        refresh_token: &Secret,
    ) -> std::result::Result<TokenResponse, TokenFailure> {
        let policy = self.config.retry;
        let mut attempt = 1;
        loop {
            match token::refresh(
                &self.http,
                &metadata.token_endpoint,
                client_id,
                refresh_token,
                &self.config.resources,
            )
            .await
            {
                Ok(t) => {
                    self.note_server_date(t.server_date);
                    return Ok(t);
                }
                Err(f)
                    if f.error.is_retryable()
                        && !f.maybe_processed
                        && attempt < policy.max_attempts =>
                {
                    tracing::info!(attempt, error = %f.error, "refresh failed before reaching the provider; retrying");
                    tokio::time::sleep(policy.delay(attempt, f.error.retry_after())).await;
                    attempt += 1;
                }
                Err(f) => return Err(f),
            }
        }
    }

    /// The provider answered: validate, journal, save, commit (I1, I3).
    async fn complete_refresh(
        &self,
        held: &mut Option<Lease>,
        metadata: &ProviderMetadata,
        current: &Session,
        tokens: TokenResponse,
    ) -> Result<RefreshOutcome> {
        let new = match self.session_after_refresh(metadata, current, tokens).await {
            Ok(s) => s,
            Err(e) => {
                // The old refresh token is consumed; the journal stays to say so.
                if !e.is_retryable() {
                    self.event(LifecycleEvent::RefreshFailed, Some(e.to_string()));
                }
                return Err(e);
            }
        };
        let hash = new.token_hash();
        let phase = match held.as_ref() {
            Some(lease) => lease.journal_phase(JournalPhase::Saving, Some(&hash)).await,
            None => Err(Error::Internal { message: "no lease".into() }),
        };
        match phase {
            Ok(()) => {}
            Err(e) => {
                // Our lease lapsed while the request was out (a suspended process): we may
                // still hold the newest tokens. Take the lease again before touching the store.
                tracing::warn!(error = %e, "lease lost during the refresh; re-acquiring");
                // The in-process slot of the lost lease must be given up first.
                if let Some(old) = held.take() {
                    old.release().await.ok();
                }
                match self.relock_for_commit(current, &hash).await {
                    Ok(Some(l)) => *held = Some(l),
                    Ok(None) => {
                        // Another process committed meanwhile; take its generation (I3).
                        return match self.coordinator.generation(self.account()).await? {
                            Some(rec) => match self.adopt(&rec).await? {
                                Some(s) => Ok(RefreshOutcome::Adopted { generation: s.generation }),
                                None => Err(Error::StoreMismatch { generation: rec.generation }),
                            },
                            None => Err(Error::StoreMismatch { generation: current.generation }),
                        };
                    }
                    Err(e) => {
                        self.install(new, true);
                        // Transient failures are reported once, by keep_if_valid.
                        if !e.is_retryable() {
                            self.event(LifecycleEvent::RefreshFailed, Some(e.to_string()));
                        }
                        return Err(e);
                    }
                }
            }
        }
        let lease = held.as_ref().ok_or_else(|| Error::Internal { message: "no lease".into() })?;
        self.save_and_commit(lease, current, new, &hash).await
    }

    /// Re-acquires the lease for a refresh whose lease lapsed. Returns None when another
    /// process committed a newer generation meanwhile.
    async fn relock_for_commit(&self, current: &Session, hash: &str) -> Result<Option<Lease>> {
        let lease = self.coordinator.acquire(self.account(), &self.holder).await?;
        let rec = self.coordinator.generation(self.account()).await?;
        if rec
            .as_ref()
            .is_some_and(|r| r.generation != current.generation || r.state != SessionState::Active)
        {
            lease.release().await.ok();
            return Ok(None);
        }
        lease.journal_begin(current.generation).await?;
        lease.journal_phase(JournalPhase::Saving, Some(hash)).await?;
        Ok(Some(lease))
    }

    async fn save_and_commit(
        &self,
        lease: &Lease,
        current: &Session,
        new: Session,
        hash: &str,
    ) -> Result<RefreshOutcome> {
        if let Err(e) = self.save_with_retry(&new).await {
            // Never lose the new tokens: keep them in memory and retry the save later.
            self.install(new, true);
            // Transient failures are reported once, by keep_if_valid.
            if !e.is_retryable() {
                self.event(LifecycleEvent::RefreshFailed, Some(e.to_string()));
            }
            return Err(e);
        }
        let committed = self
            .coordinator
            .commit(self.account(), Some(current.generation), new.generation, hash)
            .await?;
        if !committed {
            // Another holder committed a newer generation: ours is not the newest; never
            // replace theirs (I3).
            tracing::warn!(generation = new.generation, "another process committed first");
            if let Some(rec) = self.coordinator.generation(self.account()).await? {
                if let Some(s) = self.adopt(&rec).await? {
                    return Ok(RefreshOutcome::Adopted { generation: s.generation });
                }
            }
            return Err(Error::StoreMismatch { generation: new.generation });
        }
        lease.journal_clear().await?;
        let generation = new.generation;
        self.install(new, false);
        self.event(LifecycleEvent::Refreshed, None);
        Ok(RefreshOutcome::Refreshed { generation })
    }

    /// A previous save failed: the newest tokens live only in memory. Save and commit them.
    async fn persist_unsaved(&self, lease: &Lease, current: Session) -> Result<RefreshOutcome> {
        let base = current.generation.saturating_sub(1);
        // Only the successor of the committed generation may be saved: if another process
        // committed or ended the session meanwhile, ours is not the newest (I3).
        if let Some(rec) = self.coordinator.generation(self.account()).await? {
            if rec.generation != base {
                self.slot().unsaved = false;
                return match self.adopt(&rec).await? {
                    Some(s) => Ok(RefreshOutcome::Adopted { generation: s.generation }),
                    None => Err(Error::StoreMismatch { generation: rec.generation }),
                };
            }
        }
        self.save_with_retry(&current).await?;
        let hash = current.token_hash();
        if !self.coordinator.commit(self.account(), Some(base), current.generation, &hash).await? {
            return Err(Error::StoreMismatch { generation: current.generation });
        }
        lease.journal_clear().await?;
        self.slot().unsaved = false;
        self.event(LifecycleEvent::Refreshed, Some("saved tokens kept in memory".into()));
        Ok(RefreshOutcome::Refreshed { generation: current.generation })
    }

    async fn session_after_refresh(
        &self,
        metadata: &ProviderMetadata,
        current: &Session,
        tokens: TokenResponse,
    ) -> Result<Session> {
        if let Some(raw) = &tokens.id_token {
            // OIDC Core §12.2: same iss and sub, aud is us, nonce optional (equal if present),
            // auth_time unchanged if present.
            let jwks = self.jwks(metadata)?;
            id_token::validate(
                raw,
                &jwks,
                &Expectations {
                    issuer: &current.issuer,
                    client_id: &current.client_id,
                    nonce: NonceRule::IfPresent(current.nonce.as_deref()),
                    access_token: Some(&tokens.access_token),
                    subject: (!current.subject.is_empty()).then_some(current.subject.as_str()),
                    auth_time: current.auth_time,
                    now: self.provider_now(),
                    skew: self.config.clock_skew,
                },
            )
            .await?;
        }
        let now_ms = self.clock.now_millis();
        Ok(Session {
            access_token: tokens.access_token,
            // Keep the old refresh token when none is returned (RFC 6749 §6).
            refresh_token: tokens.refresh_token.or_else(|| current.refresh_token.clone()),
            id_token: tokens.id_token.or_else(|| current.id_token.clone()),
            expires_at_ms: tokens.expires_in.map(|s| now_ms + (s as i64) * 1000),
            issued_at_ms: Some(now_ms),
            scopes: tokens
                .scope
                .map(|s| s.split_whitespace().map(String::from).collect())
                .unwrap_or_else(|| current.scopes.clone()),
            generation: current.generation + 1,
            ..current.clone()
        })
    }

    /// Ends the session for every process (coordination database, store, memory).
    pub(crate) async fn end_session(
        &self,
        state: SessionState,
        reason: &str,
    ) -> Result<RefreshOutcome> {
        self.coordinator.end(self.account(), state).await?;
        if let Err(e) = self.clear_with_retry().await {
            tracing::warn!(error = %e, "could not clear the ended session from the store");
        }
        self.forget();
        let (err, ev) = match state {
            SessionState::LoggedOut => (Error::LoggedOut, LifecycleEvent::LoggedOut),
            _ => (Error::ReauthRequired { reason: reason.into() }, LifecycleEvent::ReauthRequired),
        };
        self.event(ev, Some(reason.into()));
        Err(err)
    }
}
