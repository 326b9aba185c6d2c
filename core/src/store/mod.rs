//! The app's session store: where a session lives between runs and between processes.
//!
//! The app implements [`SessionStore`] over its keychain (iOS, with an access group shared
//! with its extensions) or keystore-encrypted storage (Android). Latchkey calls it only
//! while it holds the cross-process refresh lease, so the store needs no locking of its own.
//! [`FileSessionStore`] is a file-backed implementation for desktop tools and tests.

mod file;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use file::decode_account;

pub use file::{write_private_file, FileSessionStore};

use async_trait::async_trait;

/// A serialized session as the store keeps it: opaque bytes plus the generation and
/// format version they hold, so a store can be inspected without reading secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionBlob {
    generation: u64,
    format: u32,
    data: Vec<u8>,
}

impl SessionBlob {
    /// Wraps serialized session bytes.
    pub fn new(generation: u64, format: u32, data: Vec<u8>) -> Self {
        SessionBlob { generation, format, data }
    }
    /// The session generation the bytes hold.
    pub fn generation(&self) -> u64 {
        self.generation
    }
    /// The serialization format version.
    pub fn format(&self) -> u32 {
        self.format
    }
    /// The serialized session. Contains token values: keep it in secure storage only.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
    /// Consumes the blob, returning its bytes.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }
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

/// Why a store operation failed, as the app reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    /// A message for logs; must not contain token values.
    pub message: String,
    /// Whether trying again may succeed (e.g. keychain locked while the device is locked).
    pub retryable: bool,
}

impl StoreError {
    /// A failure that may go away if tried again.
    pub fn transient(message: impl Into<String>) -> Self {
        StoreError { message: message.into(), retryable: true }
    }
    /// A failure that will not go away by trying again.
    pub fn permanent(message: impl Into<String>) -> Self {
        StoreError { message: message.into(), retryable: false }
    }
}

/// Persistent, app-provided storage for sessions, keyed by account.
///
/// Calls are async and fallible; Latchkey retries retryable failures a bounded number of
/// times and never ignores a failed save. All processes of the app must see the same
/// data (App Group keychain access group on iOS; one app-private file on Android).
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Replaces the stored session of `account` with `blob`. When it returns `Ok`, the
    /// session must be durable: it survives a crash or a power loss (keychain and keystore
    /// writes are). Latchkey makes a refresh's new tokens durable here before anything
    /// else, and treats the store as the home of the tokens when the coordination database
    /// lost its last commits (see `docs/adr/0006-synchronous-normal.md`).
    async fn save(&self, account: &str, blob: &SessionBlob) -> Result<(), StoreError>;
    /// Returns the stored session of `account`, or None when there is none.
    async fn load(&self, account: &str) -> Result<Option<SessionBlob>, StoreError>;
    /// Removes the stored session of `account` (no error when there is none).
    async fn clear(&self, account: &str) -> Result<(), StoreError>;
}
