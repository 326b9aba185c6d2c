//! Ending a session for every process: the generation is ended in the coordination
//! database first (every process sees it at its next read), then the store is cleared under
//! the lease (fenced), then memory.

use crate::client::Inner;
use crate::error::{Error, Result};
use crate::faults::{self, Step};
use crate::lock::{Lease, SessionState};
use crate::session::events::RefreshOutcome;
use crate::session::lifecycle::LifecycleEvent;

impl Inner {
    /// Ends the session for every process (coordination database, store, memory) and
    /// returns the matching error ([`Error::LoggedOut`] or [`Error::ReauthRequired`]).
    ///
    /// `held`: the lease the caller holds; with `None` the lease is acquired here (waiting
    /// at most the acquire timeout; without it the store is cleared unfenced, which is safe
    /// because the generation is ended first: a concurrent holder's commit fails). Writes
    /// the database, the store and memory. Fails with the database error when the end
    /// cannot be recorded; a store failure is logged (the ended generation wins on restore).
    pub(crate) async fn end_session(
        &self,
        state: SessionState,
        reason: &str,
        held: Option<&Lease>,
    ) -> Result<RefreshOutcome> {
        let own = match held {
            Some(_) => None,
            None => match self.coordinator.acquire(self.account(), &self.holder).await {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!(error = %e, "ending the session without the lease");
                    None
                }
            },
        };
        let lease = held.or(own.as_ref());
        let result = self.end_under(state, lease).await;
        if let Some(l) = own {
            if let Err(e) = l.release().await {
                tracing::warn!(error = %e, "lease release failed; it lapses by itself");
            }
        }
        result?;
        self.forget();
        let (err, ev) = match state {
            SessionState::LoggedOut => (Error::LoggedOut, LifecycleEvent::LoggedOut),
            _ => (Error::ReauthRequired { reason: reason.into() }, LifecycleEvent::ReauthRequired),
        };
        self.event(ev, Some(reason.into()));
        Err(err)
    }

    async fn end_under(&self, state: SessionState, lease: Option<&Lease>) -> Result<()> {
        self.coordinator.end(self.account(), state).await?;
        faults::hit("logout::after_end", Step::Store)?;
        // A failure here (or a lease lost around the clear) is harmless: any copy left in the
        // store is older than the ended generation, and restore clears it.
        if let Err(e) = self.clear_fenced(lease).await {
            tracing::warn!(error = %e, "could not clear the ended session from the store");
        }
        Ok(())
    }
}
