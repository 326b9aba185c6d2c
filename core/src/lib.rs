//! # Latchkey
//!
//! OpenID Connect / OAuth 2.0 sign-in for native apps, with ONE session kept consistent
//! across every process of the app (an iOS app and its extensions, an Android app's
//! processes). Refresh tokens are rotated by the provider on every use; Latchkey makes sure
//! each refresh token is used exactly once, whichever process needs a fresh access token.
//!
//! See `ARCHITECTURE.md` for the map of the crate and `docs/adr/` for the decisions.
#![forbid(unsafe_code)]

// The modules are private: the API is what this file re-exports, listed in
// `core/public-api.txt` and checked for drift by `scripts/public-api.sh`.
mod client;
// Parts of `clock`, `faults` and `lock` are reached only through `internals` (the
// project's own tests and benchmarks).
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
mod clock;
mod error;
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
mod faults;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod http;
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
mod lock;
mod oidc;
mod secret;
mod session;
mod store;

pub use client::{Client, ClientConfig, LogoutOutcome};
pub use clock::{BootInstant, Clock, SystemClock};
pub use error::{Error, Result};
pub use http::{HttpClient, HttpConfig, TrustRoots};
pub use lock::{CoordinatorConfig, SessionState};
pub use oidc::end_session::without_id_token_hint;
pub use oidc::{
    AuthTimeProblem, AuthorizationStart, ClientRegistration, LoginOptions, LogoutOptions,
    MetadataSource, ProviderMetadata, RegistrationOptions, RevocationGap,
};
pub use secret::Secret;
pub use session::{
    LifecycleEvent, LifecycleState, ObserverHandle, RefreshOutcome, RetryPolicy, Session,
    SessionEvent, SessionObserver,
};
pub use store::{write_private_file, FileSessionStore, SessionBlob, SessionStore, StoreError};

/// Internals that the project's own tests, benchmarks and examples drive directly (the
/// cross-process coordinator, its lease and journal, the fault points). Not API: present
/// only with the `internals` feature, and free to change in any release.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals {
    pub use crate::clock::unix_millis;
    pub use crate::faults::POINTS;
    pub use crate::lock::{Coordinator, GenerationRecord, JournalEntry, JournalPhase, Lease};
}

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
