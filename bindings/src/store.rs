//! The app's session store as a foreign trait, adapted to `latchkey::SessionStore`.

use std::sync::Arc;

use crate::types::SessionBlob;

/// Why a foreign store operation failed, as the app reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[non_exhaustive]
pub enum StoreFailure {
    /// The operation failed.
    #[error("{detail}")]
    Failed {
        /// A message for logs; must not contain token values.
        detail: String,
        /// Whether trying again may succeed (e.g. keychain locked while the device is
        /// locked). Latchkey retries retryable failures a bounded number of times.
        retryable: bool,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for StoreFailure {
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Failed {
            detail: format!("unexpected store error: {}", error.reason),
            retryable: false,
        }
    }
}

/// Persistent storage for sessions, keyed by account, implemented by the app (Keychain with
/// an access group on iOS, Keystore-encrypted file on Android).
///
/// Latchkey calls it only while it holds the cross-process refresh lease, so it needs no
/// locking of its own. All processes of the app must see the same data.
#[uniffi::export(with_foreign)]
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync {
    /// Replaces the stored session of `account` with `blob` (secret bytes: secure storage).
    async fn save(&self, account: String, blob: SessionBlob) -> Result<(), StoreFailure>;
    /// Returns the stored session of `account`, or nil/null when there is none.
    async fn load(&self, account: String) -> Result<Option<SessionBlob>, StoreFailure>;
    /// Removes the stored session of `account` (no error when there is none).
    async fn clear(&self, account: String) -> Result<(), StoreFailure>;
}

/// Adapts a foreign [`SessionStore`] to the core's trait.
pub(crate) struct StoreAdapter(pub(crate) Arc<dyn SessionStore>);

fn to_core(failure: StoreFailure) -> latchkey::StoreError {
    match failure {
        StoreFailure::Failed { detail, retryable } => {
            latchkey::StoreError { message: detail, retryable }
        }
    }
}

#[async_trait::async_trait]
impl latchkey::SessionStore for StoreAdapter {
    async fn save(
        &self,
        account: &str,
        blob: &latchkey::SessionBlob,
    ) -> Result<(), latchkey::StoreError> {
        self.0.save(account.to_owned(), SessionBlob::from(blob)).await.map_err(to_core)
    }

    async fn load(
        &self,
        account: &str,
    ) -> Result<Option<latchkey::SessionBlob>, latchkey::StoreError> {
        let blob = self.0.load(account.to_owned()).await.map_err(to_core)?;
        Ok(blob.map(|b| latchkey::SessionBlob::new(b.generation, b.format, b.data)))
    }

    async fn clear(&self, account: &str) -> Result<(), latchkey::StoreError> {
        self.0.clear(account.to_owned()).await.map_err(to_core)
    }
}
