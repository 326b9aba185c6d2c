//! Session events delivered to observers, and the typed outcome of a refresh.

use std::sync::{Arc, Mutex};

use crate::session::lifecycle::{LifecycleEvent, LifecycleState};

/// One transition of the session lifecycle, as observers receive it. Holds no secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEvent {
    /// The account the session belongs to.
    pub account: String,
    /// What happened.
    pub event: LifecycleEvent,
    /// The state before.
    pub from: LifecycleState,
    /// The state after.
    pub to: LifecycleState,
    /// The session generation after the event, when there is a session.
    pub generation: Option<u64>,
    /// A short reason for failures (error text, never a token).
    pub detail: Option<String>,
}

/// Receives every [`SessionEvent`]. Called synchronously on the thread that caused the
/// event: keep it short and never call back into the client from it.
pub trait SessionObserver: Send + Sync {
    /// Called once per event.
    fn on_event(&self, event: &SessionEvent);
}

/// How a refresh call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshOutcome {
    /// This process used the refresh token and committed a new generation.
    Refreshed {
        /// The new generation.
        generation: u64,
    },
    /// Another process had already refreshed; its generation was loaded from the store.
    Adopted {
        /// The adopted generation.
        generation: u64,
    },
    /// The current tokens were fresh enough; nothing was done.
    StillFresh {
        /// The current generation.
        generation: u64,
    },
    /// The refresh could not run safely or failed transiently, but the access token is
    /// still valid and was kept (e.g. a crashed process may have consumed the refresh token).
    KeptValidToken {
        /// The current generation.
        generation: u64,
    },
}

impl RefreshOutcome {
    /// The generation in force after the call.
    pub fn generation(&self) -> u64 {
        match *self {
            RefreshOutcome::Refreshed { generation }
            | RefreshOutcome::Adopted { generation }
            | RefreshOutcome::StillFresh { generation }
            | RefreshOutcome::KeptValidToken { generation } => generation,
        }
    }
}

/// The observers registered with a client.
#[derive(Default)]
pub(crate) struct Observers {
    list: Mutex<Vec<Arc<dyn SessionObserver>>>,
}

impl Observers {
    pub(crate) fn add(&self, o: Arc<dyn SessionObserver>) {
        self.lock().push(o);
    }

    pub(crate) fn emit(&self, event: &SessionEvent) {
        // Clone the list so an observer may register another one without deadlocking.
        let list: Vec<_> = self.lock().clone();
        for o in list {
            o.on_event(event);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<dyn SessionObserver>>> {
        // A poisoned list only means an observer panicked while registering; still valid.
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }
}
