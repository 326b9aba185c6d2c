//! # Latchkey
//!
//! OpenID Connect / OAuth 2.0 sign-in for native apps, with ONE session kept consistent
//! across every process of the app (an iOS app and its extensions, an Android app's
//! processes). Refresh tokens are rotated by the provider on every use; Latchkey makes sure
//! each refresh token is used exactly once, whichever process needs a fresh access token.
//!
//! See `ARCHITECTURE.md` for the map of the crate and `docs/adr/` for the decisions.
#![forbid(unsafe_code)]

pub mod client;
pub mod clock;
pub mod error;
pub mod faults;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod lock;
pub mod oidc;
pub mod secret;
pub mod session;
pub mod store;

pub use client::{Client, ClientConfig, LogoutOutcome};
pub use clock::{Clock, SystemClock};
pub use error::{Error, Result};
pub use oidc::{
    AuthorizationOptions, AuthorizationStart, ClientRegistration, EndSessionOptions,
    ProviderMetadata, RegistrationRequest,
};
/// The names the Swift and Kotlin APIs use for the same options (one vocabulary across the
/// three languages): [`LoginOptions`] is [`AuthorizationOptions`], [`LogoutOptions`] is
/// [`EndSessionOptions`], [`RegistrationOptions`] is [`RegistrationRequest`].
pub use oidc::{
    AuthorizationOptions as LoginOptions, EndSessionOptions as LogoutOptions,
    RegistrationRequest as RegistrationOptions,
};
pub use secret::Secret;
pub use session::{
    LifecycleEvent, LifecycleState, ObserverHandle, RefreshOutcome, RetryPolicy, Session,
    SessionEvent, SessionObserver,
};
pub use store::{FileSessionStore, SessionBlob, SessionStore, StoreError};

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
