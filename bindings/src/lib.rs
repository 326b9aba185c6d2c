//! uniffi bindings of Latchkey for Swift and Kotlin: type mapping and delegation only.
//!
//! Every protocol decision lives in the `latchkey` core; this crate converts its types to
//! uniffi records, enums and objects, and adapts the app's foreign [`SessionStore`] and
//! [`SessionObserver`] to the core's traits. One concern per module:
//!
//! * [`client`]: the [`LatchkeyClient`] object (the whole lifecycle, async on tokio)
//! * [`types`]: records and enums (session, registration, provider summary, events, ...)
//! * [`error`]: the one error enum [`LatchkeyError`], mapped from `latchkey::Error` in one place
//! * [`store`]: the foreign [`SessionStore`] trait and its adapter
//! * [`observer`]: the foreign [`SessionObserver`] trait and its adapter
//! * `android` (Android only): the JNI entry point that gives the platform certificate
//!   verifier the app's Context (`dev.latchkey.PlatformTrust.init`)
// No unsafe code anywhere but in the one JNI export of `android` (Android builds only).
#![cfg_attr(not(target_os = "android"), forbid(unsafe_code))]

uniffi::setup_scaffolding!();

#[cfg(target_os = "android")]
mod android;
pub mod client;
pub mod error;
pub mod observer;
pub mod store;
pub mod types;

pub use client::LatchkeyClient;
pub use error::LatchkeyError;
pub use observer::{ObserverHandle, SessionObserver};
pub use store::{SessionStore, StoreFailure};
pub use types::*;

/// The version of the Latchkey library. Touches nothing persisted; never fails.
#[uniffi::export]
pub fn latchkey_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}
