//! The session lifecycle as a state machine: one match arm per event.
//!
//! ```text
//!                 register / restore_registration
//!  Unregistered ─────────────────────────────────▶ Registered
//!                                                   │  ▲
//!                                     start_login   │  │ abort_login (last pending)
//!                                                   ▼  │
//!                                               Authorizing
//!                                                   │ finish_login / restore_session
//!                                                   ▼
//!        ┌──────────── RefreshSucceeded ◀──── Refreshing ◀── RefreshStarted ──┐
//!        │             Adopted / Transient        ▲                           │
//!        ▼                                        │                           │
//!  Authenticated ─────────────────────────────────┴───────────────────────────┘
//!        │  invalid_grant confirmed                │ logout (here or elsewhere)
//!        ▼                                         ▼
//!  ReauthRequired ── finish_login ──▶ …        LoggedOut ── finish_login ──▶ Authenticated
//! ```
//!
//! A transient failure (network, timeout, 5xx, lock timeout, store I/O) always returns to
//! `Authenticated`: only a confirmed `invalid_grant` or a logout ends the session.

use serde::{Deserialize, Serialize};

/// Where the session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum LifecycleState {
    /// No client_id known for the issuer.
    Unregistered,
    /// Registered, no session.
    Registered,
    /// At least one authorization request waits for its redirect.
    Authorizing,
    /// Signed in.
    Authenticated,
    /// A refresh is running in this process.
    Refreshing,
    /// The provider ended the session: the user must sign in again.
    ReauthRequired,
    /// Logged out (here or in another process).
    LoggedOut,
}

/// What happened to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum LifecycleEvent {
    /// A client registration was made or restored.
    Registered,
    /// An authorization request was started.
    LoginStarted,
    /// An authorization request was aborted or failed; `remaining` are still pending.
    LoginAborted {
        /// Requests still pending.
        remaining: usize,
    },
    /// A login completed, or a persisted session was restored.
    SignedIn,
    /// This process started a refresh.
    RefreshStarted,
    /// This process refreshed the tokens (new generation committed).
    Refreshed,
    /// This process took a newer generation committed by another process.
    Adopted,
    /// A refresh failed transiently; the session is kept.
    RefreshFailed,
    /// The provider refused the refresh token and no newer generation exists.
    ReauthRequired,
    /// The session was logged out (here or in another process).
    LoggedOut,
    /// The provider deviated from the protocol in a way that says nothing against the
    /// tokens' origin (e.g. a refreshed ID token that changed `auth_time`, or keys that could
    /// not be fetched to check it): the session and the new tokens are kept. No state change.
    ProviderDeviation,
}

/// The next state after `event` in `state`.
pub fn transition(state: LifecycleState, event: LifecycleEvent) -> LifecycleState {
    use LifecycleEvent as E;
    use LifecycleState as S;
    match event {
        E::Registered => match state {
            S::Unregistered => S::Registered,
            other => other,
        },
        E::LoginStarted => match state {
            S::Authenticated | S::Refreshing => state,
            _ => S::Authorizing,
        },
        E::LoginAborted { remaining } => match state {
            S::Authorizing if remaining == 0 => S::Registered,
            other => other,
        },
        E::SignedIn => S::Authenticated,
        E::RefreshStarted => match state {
            S::Authenticated => S::Refreshing,
            other => other,
        },
        E::Refreshed | E::Adopted | E::RefreshFailed => match state {
            S::Refreshing | S::Authenticated => S::Authenticated,
            other => other,
        },
        E::ReauthRequired => S::ReauthRequired,
        E::LoggedOut => S::LoggedOut,
        E::ProviderDeviation => state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LifecycleEvent as E;
    use LifecycleState as S;

    #[test]
    fn main_path() {
        let mut s = S::Unregistered;
        for (e, want) in [
            (E::Registered, S::Registered),
            (E::LoginStarted, S::Authorizing),
            (E::SignedIn, S::Authenticated),
            (E::RefreshStarted, S::Refreshing),
            (E::RefreshFailed, S::Authenticated),
            (E::RefreshStarted, S::Refreshing),
            (E::Refreshed, S::Authenticated),
            (E::Adopted, S::Authenticated),
            (E::ReauthRequired, S::ReauthRequired),
            (E::LoginStarted, S::Authorizing),
            (E::SignedIn, S::Authenticated),
            (E::LoggedOut, S::LoggedOut),
        ] {
            s = transition(s, e);
            assert_eq!(s, want, "after {e:?}");
        }
    }

    #[test]
    fn transient_failure_never_ends_session() {
        assert_eq!(transition(S::Refreshing, E::RefreshFailed), S::Authenticated);
        assert_eq!(transition(S::Authenticated, E::RefreshFailed), S::Authenticated);
        assert_eq!(transition(S::LoggedOut, E::RefreshFailed), S::LoggedOut);
    }

    #[test]
    fn abort_returns_to_registered_only_when_nothing_pending() {
        assert_eq!(transition(S::Authorizing, E::LoginAborted { remaining: 1 }), S::Authorizing);
        assert_eq!(transition(S::Authorizing, E::LoginAborted { remaining: 0 }), S::Registered);
        assert_eq!(
            transition(S::Authenticated, E::LoginAborted { remaining: 0 }),
            S::Authenticated
        );
    }
}
