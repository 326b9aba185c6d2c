//! The session's two homes: the app's store (bounded retries, a timeout on every call,
//! fenced writes) and the generation in the coordination database; adopting what another
//! process committed.

use std::future::Future;
use std::time::Duration;

use crate::client::Inner;
use crate::error::{Error, Result};
use crate::lock::{GenerationRecord, Lease};
use crate::session::lifecycle::LifecycleEvent;
use crate::session::Session;
use crate::store::{SessionBlob, StoreError};

fn store_error(operation: &str, e: StoreError) -> Error {
    Error::Store { operation: operation.into(), message: e.message, retryable: e.retryable }
}

impl Inner {
    /// Runs one store call under `store_timeout`, retrying retryable failures within the
    /// store retry policy. A call that times out counts as a retryable failure.
    async fn store_call<T, F, Fut>(&self, operation: &'static str, mut call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, StoreError>>,
    {
        let policy = self.config.store_retry;
        let mut attempt = 1;
        loop {
            let result = match tokio::time::timeout(self.config.store_timeout, call()).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::transient(format!(
                    "no answer within {} ms",
                    self.config.store_timeout.as_millis()
                ))),
            };
            match result {
                Ok(v) => return Ok(v),
                Err(e) if e.retryable && attempt < policy.max_attempts => {
                    tracing::warn!(attempt, operation, error = %e.message, "session store call failed; retrying");
                    tokio::time::sleep(policy.delay(attempt, None)).await;
                    attempt += 1;
                }
                Err(e) => {
                    tracing::error!(attempt, operation, error = %e.message, "session store call failed");
                    return Err(store_error(operation, e));
                }
            }
        }
    }

    /// Saves through the app's store, retrying retryable failures. Never ignores a failure.
    /// Callers hold the lease and use [`Inner::save_fenced`]; this is its unfenced core.
    async fn save_with_retry(&self, session: &Session) -> Result<()> {
        let blob = session.to_blob();
        self.store_call("save", || self.store.save(self.account(), &blob)).await
    }

    /// Saves `session` while `lease` is held: the fence is checked (and the lease renewed)
    /// right before and right after the save, so a holder whose lease lapsed never writes the
    /// store unnoticed. Fails with [`Error::LeaseLost`] before the save (nothing written) or
    /// after it (written; the caller re-acquires the lease and reconciles by generation).
    pub(crate) async fn save_fenced(&self, lease: &Lease, session: &Session) -> Result<()> {
        lease.confirm().await?;
        self.save_with_retry(session).await?;
        lease.confirm().await
    }

    /// Clears the store while `lease` is held (fence checked before and after), or without
    /// a lease when `lease` is `None` (the lock could not be had; the generation was ended
    /// first, so a concurrent holder's commit fails and its later save is cleared on restore).
    pub(crate) async fn clear_fenced(&self, lease: Option<&Lease>) -> Result<()> {
        if let Some(l) = lease {
            l.confirm().await?;
        }
        self.store_call("clear", || self.store.clear(self.account())).await?;
        if let Some(l) = lease {
            l.confirm().await?;
        }
        Ok(())
    }

    /// Loads from the app's store, retrying retryable failures.
    pub(crate) async fn load_with_retry(&self) -> Result<Option<SessionBlob>> {
        self.store_call("load", || self.store.load(self.account())).await
    }

    /// Reads the stored session if it is exactly generation `generation` with `hash`.
    pub(crate) async fn load_matching(
        &self,
        generation: u64,
        hash: &str,
    ) -> Result<Option<Session>> {
        let Some(blob) = self.load_with_retry().await? else { return Ok(None) };
        let s = Session::from_blob(&blob)?;
        let ok = s.generation == generation && s.token_hash() == hash && self.is_ours(&s);
        Ok(ok.then_some(s))
    }

    /// Whether `s` belongs to this client's account and issuer.
    pub(crate) fn is_ours(&self, s: &Session) -> bool {
        s.account == self.config.account && s.issuer == self.config.issuer
    }

    /// Takes the generation `rec` another process committed: loads it from the store and
    /// checks its hash (I2). Returns None when the store does not hold it (yet).
    pub(crate) async fn adopt(&self, rec: &GenerationRecord) -> Result<Option<Session>> {
        let Some(hash) = rec.token_hash.as_deref() else { return Ok(None) };
        // The committer saves before it commits, so the store normally has it already; a
        // short bounded re-read covers a store that is slow to become visible.
        for attempt in 0..3u32 {
            if let Some(s) = self.load_matching(rec.generation, hash).await? {
                crate::faults::hit("adopt::after_load", crate::faults::Step::Store)?;
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
        let replaced = slot.session.as_ref().map(|s| s.generation) != Some(session.generation);
        if replaced {
            slot.rejected = None;
            slot.refused_early = None;
        }
        slot.session = Some(session);
        slot.unsaved = unsaved;
    }

    /// Forgets the in-memory session.
    pub(crate) fn forget(&self) {
        let mut slot = self.slot();
        slot.session = None;
        slot.unsaved = false;
        slot.rejected = None;
        slot.refused_early = None;
    }
}
