//! uniffi bindings of Latchkey: type mapping and delegation only.
//!
//! Phase 1: a tiny API that proves the whole pipeline (sync and async functions, an object
//! with async methods, a record, a typed error with fields, and an async fallible foreign
//! trait called from Rust). The real mapping of the `latchkey` core replaces it.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

uniffi::setup_scaffolding!();

/// The version of the Latchkey library.
#[uniffi::export]
pub fn latchkey_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// Facts about the native library.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BuildInfo {
    /// The crate version.
    pub version: String,
    /// Whether the library was built with debug assertions.
    pub debug: bool,
}

/// Facts about the native library.
#[uniffi::export]
pub fn build_info() -> BuildInfo {
    BuildInfo { version: latchkey_version(), debug: cfg!(debug_assertions) }
}

/// Errors of the demo API, with fields to prove typed errors cross the FFI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum DemoError {
    /// An argument was rejected.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The argument's name.
        field: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A counter would overflow.
    #[error("overflow: {current} + {amount}")]
    Overflow {
        /// The counter's value.
        current: u64,
        /// The amount that did not fit.
        amount: u64,
    },
    /// A foreign callback failed with an error that is not a `DemoError`.
    #[error("callback failed: {reason}")]
    Callback {
        /// The foreign error's description.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for DemoError {
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Callback { reason: error.reason }
    }
}

/// Waits `delay_ms` milliseconds on the tokio runtime, then returns `message`.
///
/// An empty message fails with [`DemoError::InvalidInput`].
#[uniffi::export(async_runtime = "tokio")]
pub async fn delayed_echo(message: String, delay_ms: u64) -> Result<String, DemoError> {
    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    if message.is_empty() {
        return Err(DemoError::InvalidInput {
            field: "message".to_owned(),
            reason: "must not be empty".to_owned(),
        });
    }
    Ok(message)
}

/// An echo implemented by the app (Swift or Kotlin) and called from Rust.
#[uniffi::export(with_foreign)]
#[async_trait::async_trait]
pub trait Echo: Send + Sync {
    /// Returns `message`, possibly transformed, or fails.
    async fn echo(&self, message: String) -> Result<String, DemoError>;
}

/// Calls the foreign `echo` from Rust, on the tokio runtime, and wraps its answer.
#[uniffi::export(async_runtime = "tokio")]
pub async fn call_echo(echo: Arc<dyn Echo>, message: String) -> Result<String, DemoError> {
    tokio::task::yield_now().await;
    let reply = echo.echo(message).await?;
    Ok(format!("rust({reply})"))
}

/// A counter shared between threads, with async methods.
#[derive(Debug, uniffi::Object)]
pub struct Counter {
    value: AtomicU64,
}

#[uniffi::export(async_runtime = "tokio")]
impl Counter {
    /// A counter starting at `start`.
    #[uniffi::constructor]
    pub fn new(start: u64) -> Arc<Self> {
        Arc::new(Self { value: AtomicU64::new(start) })
    }

    /// The current value.
    pub fn value(&self) -> u64 {
        self.value.load(Ordering::SeqCst)
    }

    /// Adds `amount` after yielding to the runtime; fails with [`DemoError::Overflow`].
    pub async fn add(&self, amount: u64) -> Result<u64, DemoError> {
        tokio::task::yield_now().await;
        let mut current = self.value.load(Ordering::SeqCst);
        loop {
            let next =
                current.checked_add(amount).ok_or(DemoError::Overflow { current, amount })?;
            match self.value.compare_exchange(current, next, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Ok(next),
                Err(seen) => current = seen,
            }
        }
    }

    /// Adds the length of what the foreign `echo` returns for `message`.
    pub async fn add_echo_length(
        &self,
        echo: Arc<dyn Echo>,
        message: String,
    ) -> Result<u64, DemoError> {
        let reply = echo.echo(message).await?;
        let amount = u64::try_from(reply.len()).unwrap_or(u64::MAX);
        self.add(amount).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Upper;

    #[async_trait::async_trait]
    impl Echo for Upper {
        async fn echo(&self, message: String) -> Result<String, DemoError> {
            Ok(message.to_uppercase())
        }
    }

    #[tokio::test]
    async fn counter_and_echo() {
        let counter = Counter::new(u64::MAX - 1);
        assert_eq!(counter.add(1).await, Ok(u64::MAX));
        assert_eq!(counter.add(2).await, Err(DemoError::Overflow { current: u64::MAX, amount: 2 }));
        assert_eq!(call_echo(Arc::new(Upper), "hi".to_owned()).await, Ok("rust(HI)".to_owned()));
        assert!(delayed_echo(String::new(), 0).await.is_err());
    }
}
