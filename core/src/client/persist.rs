//! The session's two homes: the app's store (with bounded retries) and the generation in
//! the coordination database; adopting what another process committed.

use std::time::Duration;

use crate::client::Inner;
use crate::error::{Error, Result};
use crate::lock::GenerationRecord;
use crate::session::lifecycle::LifecycleEvent;
use crate::session::Session;
use crate::store::{SessionBlob, StoreError};

fn store_error(operation: &str, e: StoreError) -> Error {
    Error::Store { operation: operation.into(), message: e.message, retryable: e.retryable }
}

impl Inner {
    /// Saves through the app's store, retrying retryable failures. Never ignores a failure.
    pub(crate) async fn save_with_retry(&self, session: &Session) -> Result<()> {
        let blob = session.to_blob();
        let policy = self.config.store_retry;
        let mut attempt = 1;
        loop {
            match self.store.save(self.account(), &blob).await {
                Ok(()) => return Ok(()),
                Err(e) if e.retryable && attempt < policy.max_attempts => {
                    tracing::warn!(attempt, error = %e.message, "session store save failed; retrying");
                    tokio::time::sleep(policy.delay(attempt, None)).await;
                    attempt += 1;
                }
                Err(e) => {
                    tracing::error!(attempt, error = %e.message, "session store save failed");
                    return Err(store_error("save", e));
                }
            }
        }
    }

    /// Loads from the app's store, retrying retryable failures.
    pub(crate) async fn load_with_retry(&self) -> Result<Option<SessionBlob>> {
        let policy = self.config.store_retry;
        let mut attempt = 1;
        loop {
            match self.store.load(self.account()).await {
                Ok(b) => return Ok(b),
                Err(e) if e.retryable && attempt < policy.max_attempts => {
                    tokio::time::sleep(policy.delay(attempt, None)).await;
                    attempt += 1;
                }
                Err(e) => return Err(store_error("load", e)),
            }
        }
    }

    /// Clears the app's store (retrying retryable failures).
    pub(crate) async fn clear_with_retry(&self) -> Result<()> {
        let policy = self.config.store_retry;
        let mut attempt = 1;
        loop {
            match self.store.clear(self.account()).await {
                Ok(()) => return Ok(()),
                Err(e) if e.retryable && attempt < policy.max_attempts => {
                    tokio::time::sleep(policy.delay(attempt, None)).await;
                    attempt += 1;
                }
                Err(e) => return Err(store_error("clear", e)),
            }
        }
    }

    /// Reads the stored session if it is exactly generation `generation` with `hash`.
    pub(crate) async fn load_matching(
        &self,
        generation: u64,
        hash: &str,
    ) -> Result<Option<Session>> {
        let Some(blob) = self.load_with_retry().await? else { return Ok(None) };
        let s = Session::from_blob(&blob)?;
        let ok = s.generation == generation
            && s.token_hash() == hash
            && s.account == self.config.account
            && s.issuer == self.config.issuer;
        Ok(ok.then_some(s))
    }

    /// Takes the generation `rec` another process committed: loads it from the store and
    /// checks its hash (I2). Returns None when the store does not hold it (yet).
    pub(crate) async fn adopt(&self, rec: &GenerationRecord) -> Result<Option<Session>> {
        let Some(hash) = rec.token_hash.as_deref() else { return Ok(None) };
        // The committer saves before it commits, so the store normally has it already; a
        // short bounded re-read covers a store that is slow to become visible.
        for attempt in 0..3u32 {
            if let Some(s) = self.load_matching(rec.generation, hash).await? {
                self.install(s.clone(), false);
                self.event(LifecycleEvent::Adopted, None);
                return Ok(Some(s));
            }
            if attempt < 2 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        tracing::warn!(
            generation = rec.generation,
            "stored session does not match the committed generation"
        );
        Ok(None)
    }

    /// Puts `session` in memory.
    pub(crate) fn install(&self, session: Session, unsaved: bool) {
        let mut slot = self.slot();
        slot.session = Some(session);
        slot.unsaved = unsaved;
    }

    /// Forgets the in-memory session.
    pub(crate) fn forget(&self) {
        let mut slot = self.slot();
        slot.session = None;
        slot.unsaved = false;
    }
}
