//! Sending the refresh and making its answer durable before anything else can fail:
//! journal `request_sent` → send → journal `answered` (with the new tokens' hash) → store
//! save (fenced) → commit CAS → clear the journal → only then validate the refreshed ID
//! token, whose failures are classified (keep the tokens, or end the session on proof of
//! another subject or a forgery). The window that can still lose a session is
//! "response read → store save returned"; `scripts/bench.sh` measures its width.

use super::no_lease;
use crate::client::Inner;
use crate::error::{Error, Result};
use crate::faults::{self, Step};
use crate::lock::{JournalPhase, Lease, SessionState};
use crate::oidc::id_token::{self, Expectations, NonceRule, Rejection};
use crate::oidc::revocation::{self, TokenKind};
use crate::oidc::token::{self, TokenFailure, TokenResponse};
use crate::oidc::ProviderMetadata;
use crate::secret::Secret;
use crate::session::events::RefreshOutcome;
use crate::session::lifecycle::LifecycleEvent;
use crate::session::Session;

/// Whether the provider refused the refresh grant itself (as opposed to failing to answer):
/// `invalid_grant`.
pub(crate) fn is_refusal(e: &Error) -> bool {
    matches!(e, Error::Provider { error, .. } if error == "invalid_grant")
}

impl Inner {
    /// Sends the refresh under the lease and settles its answer.
    pub(super) async fn refresh_now(
        &self,
        held: &mut Option<Lease>,
        current: &Session,
        force: bool,
    ) -> Result<RefreshOutcome> {
        let lease = held.as_ref().ok_or_else(no_lease)?;
        let Some(refresh_token) = current.refresh_token.clone() else {
            return self
                .end_session(SessionState::ReauthRequired, "no refresh token", Some(lease))
                .await;
        };
        let metadata = self.metadata().await?;
        faults::hit("refresh::before_send", Step::Network)?;
        self.event(LifecycleEvent::RefreshStarted, None);
        lease.journal_begin(current.generation).await?;
        match self.send_refresh(&metadata, &current.client_id, &refresh_token).await {
            Ok(tokens) => self.complete_refresh(held, &metadata, current, tokens).await,
            Err(f) if is_refusal(&f.error) => self.refused(held, current, force).await,
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

    /// The provider refused the refresh token. I4: a newer generation (committed, or in the
    /// store) means another process rotated it: never end that. A proactive refresh refused
    /// while the access token is still valid keeps serving it until it expires.
    async fn refused(
        &self,
        held: &mut Option<Lease>,
        current: &Session,
        force: bool,
    ) -> Result<RefreshOutcome> {
        let lease = held.as_ref().ok_or_else(no_lease)?;
        // Nothing of ours was consumed by a refused request.
        lease.journal_clear().await?;
        if let Some(o) = self.check_shared(current).await? {
            return Ok(o);
        }
        let committed = self.coordinator.generation(self.account()).await?;
        if let Some(r) = committed.as_ref().filter(|r| r.generation > current.generation) {
            return Err(Error::StoreMismatch { generation: r.generation });
        }
        if let Some(blob) = self.load_with_retry().await? {
            if blob.generation() > current.generation {
                return Err(Error::StoreMismatch { generation: blob.generation() });
            }
        }
        if !force && self.is_valid(current) {
            self.slot().refused_early = Some(current.generation);
            self.event(
                LifecycleEvent::RefreshFailed,
                Some("the provider refused an early refresh; the valid access token is served until it expires".into()),
            );
            return Ok(RefreshOutcome::KeptValidToken { generation: current.generation });
        }
        self.end_session(
            SessionState::ReauthRequired,
            "the provider refused the refresh token (invalid_grant)",
            Some(lease),
        )
        .await
    }

    /// The provider answered: persist first, then commit, then validate (I1, I3).
    async fn complete_refresh(
        &self,
        held: &mut Option<Lease>,
        metadata: &ProviderMetadata,
        current: &Session,
        tokens: TokenResponse,
    ) -> Result<RefreshOutcome> {
        let new = self.session_after_refresh(current, tokens);
        let hash = new.token_hash();
        // 1. Record that the old refresh token is consumed and which tokens replace it.
        //    A failure (a lost lease, a database error) keeps the tokens: take the lease
        //    back and record it again.
        let answered = match (faults::hit("refresh::response_read", Step::Database), held.as_ref())
        {
            (Err(e), _) => Err(e),
            (Ok(()), Some(lease)) => lease.journal_phase(JournalPhase::Answered, Some(&hash)).await,
            (Ok(()), None) => Err(no_lease()),
        };
        if let Err(e) = answered {
            tracing::warn!(error = %e, "lease lost while the request was out; re-acquiring");
            if let Some(o) = self.take_lease_back(held, current, &new, &hash).await? {
                return Ok(o);
            }
        }
        // 2. Make the tokens durable. A lease lost around the save is taken back once.
        let mut saved = self.save_new(held, &new).await;
        if matches!(saved, Err(Error::LeaseLost { .. })) {
            if let Some(o) = self.take_lease_back(held, current, &new, &hash).await? {
                return Ok(o);
            }
            saved = self.save_new(held, &new).await;
        }
        if let Err(e) = saved {
            // Never lose the new tokens: keep them in memory; the journal (answered) tells
            // the other processes not to resend the consumed token, and the next call of
            // this process saves them (decide.rs, PersistUnsaved).
            self.install(new, true);
            if !e.is_retryable() {
                self.event(LifecycleEvent::RefreshFailed, Some(e.to_string()));
            }
            return Err(e);
        }
        // 3. Commit the generation by compare-and-swap.
        faults::hit("refresh::after_save", Step::Database)?;
        let lease = held.as_ref().ok_or_else(no_lease)?;
        let committed = self
            .coordinator
            .commit(self.account(), Some(current.generation), new.generation, &hash)
            .await?;
        if !committed {
            return self.after_lost_commit(&new, &hash).await;
        }
        faults::hit("refresh::after_commit", Step::Database)?;
        lease.journal_clear().await?;
        let generation = new.generation;
        self.install(new.clone(), false);
        self.event(LifecycleEvent::Refreshed, None);
        // 4. Only now check the refreshed ID token.
        self.validate_pending(lease, metadata, current, new).await?;
        faults::hit("refresh::after_validate", Step::Database)?;
        Ok(RefreshOutcome::Refreshed { generation })
    }

    /// Saves the new session under the held lease (fault point `refresh::after_answered`
    /// fails or interrupts the save).
    async fn save_new(&self, held: &Option<Lease>, new: &Session) -> Result<()> {
        let lease = held.as_ref().ok_or_else(no_lease)?;
        faults::hit("refresh::after_answered", Step::Store)?;
        self.save_fenced(lease, new).await
    }

    /// Our lease lapsed while we held new tokens (a suspended process). Takes it again and
    /// re-records the answer. Returns an outcome when another process settled the refresh
    /// meanwhile (it rolled our saved tokens forward, or committed something newer).
    async fn take_lease_back(
        &self,
        held: &mut Option<Lease>,
        current: &Session,
        new: &Session,
        hash: &str,
    ) -> Result<Option<RefreshOutcome>> {
        if let Some(old) = held.take() {
            // The in-process slot of the lost lease must be given up first.
            old.release().await.ok();
        }
        let relocked = async {
            let lease = self.coordinator.acquire(self.account(), &self.holder).await?;
            let rec = self.coordinator.generation(self.account()).await?;
            let unchanged = rec.as_ref().is_none_or(|r| {
                r.generation == current.generation && r.state == SessionState::Active
            });
            if unchanged {
                lease.journal_begin(current.generation).await?;
                lease.journal_phase(JournalPhase::Answered, Some(hash)).await?;
            }
            Ok::<_, Error>((lease, unchanged))
        }
        .await;
        match relocked {
            Ok((lease, true)) => {
                *held = Some(lease);
                Ok(None)
            }
            Ok((lease, false)) => {
                *held = Some(lease);
                self.after_lost_commit(new, hash).await.map(Some)
            }
            Err(e) => {
                self.install(new.clone(), true);
                if !e.is_retryable() {
                    self.event(LifecycleEvent::RefreshFailed, Some(e.to_string()));
                }
                Err(e)
            }
        }
    }

    /// Our commit lost the race: another process committed first — our own saved tokens
    /// rolled forward, or a newer generation. Take whatever is committed (I3).
    async fn after_lost_commit(&self, new: &Session, hash: &str) -> Result<RefreshOutcome> {
        let rec = self.coordinator.generation(self.account()).await?;
        match rec {
            Some(r) if r.generation == new.generation && r.token_hash.as_deref() == Some(hash) => {
                self.install(new.clone(), false);
                self.event(LifecycleEvent::Refreshed, Some("committed by another process".into()));
                Ok(RefreshOutcome::Refreshed { generation: new.generation })
            }
            Some(r) if r.state != SessionState::Active => {
                self.forget();
                let (err, ev) = crate::client::login::ended_error(r.state);
                self.event(ev, Some("ended by another process".into()));
                Err(err)
            }
            Some(r) => match self.adopt(&r).await? {
                Some(s) => Ok(RefreshOutcome::Adopted { generation: s.generation }),
                None => Err(Error::StoreMismatch { generation: r.generation }),
            },
            None => Err(Error::StoreMismatch { generation: new.generation }),
        }
    }

    /// Checks the refreshed ID token of the committed `new` session (OIDC Core §12.2).
    /// Passing: it becomes the session's ID token. Unverifiable now: kept pending. A
    /// deviation: dropped, the previous identity kept, an event says so. Hostile: the
    /// session ends everywhere and the new refresh token is revoked (best effort).
    async fn validate_pending(
        &self,
        lease: &Lease,
        metadata: &ProviderMetadata,
        previous: &Session,
        mut new: Session,
    ) -> Result<()> {
        let Some(raw) = new.pending_id_token.clone() else { return Ok(()) };
        let jwks = self.jwks(metadata)?;
        let checked = id_token::validate_classified(
            &raw,
            &jwks,
            &Expectations {
                issuer: &previous.issuer,
                client_id: &previous.client_id,
                nonce: NonceRule::IfPresent(previous.nonce.as_deref()),
                access_token: Some(&new.access_token),
                subject: (!previous.subject.is_empty()).then_some(previous.subject.as_str()),
                auth_time: previous.auth_time,
                now: self.provider_now(),
                skew: self.config.clock_skew,
            },
        )
        .await;
        match checked {
            Ok(info) => {
                new.id_token = Some(raw);
                new.pending_id_token = None;
                new.session_id = info.session_id.or(new.session_id);
            }
            Err(Rejection::Unverifiable(e)) => {
                self.event(
                    LifecycleEvent::ProviderDeviation,
                    Some(format!("refreshed ID token not checked yet, tokens kept: {e}")),
                );
                return Ok(());
            }
            Err(Rejection::Deviation(e)) => {
                tracing::warn!(error = %e, "refreshed ID token deviates; keeping the tokens and the previous identity");
                self.event(
                    LifecycleEvent::ProviderDeviation,
                    Some(format!("refreshed ID token deviates, tokens kept: {e}")),
                );
                new.pending_id_token = None;
            }
            Err(Rejection::Hostile(e)) => {
                tracing::error!(error = %e, "refreshed ID token names another identity or is forged; ending the session");
                if let (Some(endpoint), Some(rt)) =
                    (metadata.revocation_endpoint.as_deref(), new.refresh_token.as_ref())
                {
                    let revoked = revocation::revoke(
                        &self.http,
                        endpoint,
                        &new.client_id,
                        rt,
                        TokenKind::RefreshToken,
                    )
                    .await;
                    if let Err(r) = revoked {
                        tracing::warn!(error = %r, "revoking the refresh token failed");
                    }
                }
                let ended = self
                    .end_session(SessionState::ReauthRequired, &e.to_string(), Some(lease))
                    .await;
                return match ended {
                    Err(Error::ReauthRequired { .. }) | Ok(_) => Err(e),
                    Err(other) => Err(other),
                };
            }
        }
        // Same generation and token hash: only the ID token changed. Best effort — the
        // store keeps the pending one otherwise, which is checked again at the next refresh.
        if let Err(e) = self.save_fenced(lease, &new).await {
            tracing::warn!(error = %e, "saving the checked ID token failed; kept in memory");
        }
        self.install(new, false);
        Ok(())
    }

    /// The session after a refresh, before any check: new tokens, the previous identity,
    /// the new ID token pending validation.
    fn session_after_refresh(&self, current: &Session, tokens: TokenResponse) -> Session {
        let now_ms = self.clock.now_millis();
        Session {
            access_token: tokens.access_token,
            // Keep the old refresh token when none is returned (RFC 6749 §6).
            refresh_token: tokens.refresh_token.or_else(|| current.refresh_token.clone()),
            id_token: current.id_token.clone(),
            pending_id_token: tokens.id_token,
            expires_at_ms: Some(Session::expiry_ms(
                now_ms,
                tokens.expires_in,
                self.config.assumed_token_lifetime,
            )),
            issued_at_ms: Some(now_ms),
            scopes: tokens
                .scope
                .map(|s| s.split_whitespace().map(String::from).collect())
                .unwrap_or_else(|| current.scopes.clone()),
            generation: current.generation + 1,
            ..current.clone()
        }
    }
}
