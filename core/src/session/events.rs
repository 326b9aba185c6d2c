//! Session events delivered to observers, and the typed outcome of a refresh.

use std::sync::{Arc, Mutex, Weak};

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

/// Keeps an observer registered: dropping it, or calling [`ObserverHandle::cancel`],
/// unregisters the observer, which then receives no further event (an event being delivered
/// on another thread at that moment may still arrive). Touches nothing persisted.
///
/// The handle does not keep the client alive: it outlives the client harmlessly.
#[must_use = "dropping the handle unregisters the observer at once"]
pub struct ObserverHandle {
    id: u64,
    registry: Weak<Mutex<Registry>>,
}

impl ObserverHandle {
    /// Unregisters the observer now. Idempotent; never fails.
    pub fn cancel(&self) {
        if let Some(registry) = self.registry.upgrade() {
            lock(&registry).list.retain(|(id, _)| *id != self.id);
        }
    }

    /// Whether the observer is still registered (false after `cancel` or once the client
    /// is gone).
    pub fn is_active(&self) -> bool {
        self.registry
            .upgrade()
            .is_some_and(|registry| lock(&registry).list.iter().any(|(id, _)| *id == self.id))
    }
}

impl Drop for ObserverHandle {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl std::fmt::Debug for ObserverHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObserverHandle").field("id", &self.id).finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    list: Vec<(u64, Arc<dyn SessionObserver>)>,
}

/// The observers registered with a client.
#[derive(Default)]
pub(crate) struct Observers {
    registry: Arc<Mutex<Registry>>,
}

impl Observers {
    /// Registers `o` until the returned handle is dropped or cancelled.
    pub(crate) fn add(&self, o: Arc<dyn SessionObserver>) -> ObserverHandle {
        let mut registry = lock(&self.registry);
        registry.next_id += 1;
        let id = registry.next_id;
        registry.list.push((id, o));
        ObserverHandle { id, registry: Arc::downgrade(&self.registry) }
    }

    pub(crate) fn emit(&self, event: &SessionEvent) {
        // Copy the list so an observer may register or cancel another one without
        // deadlocking; the guard is released before any observer runs.
        let list: Vec<_> = lock(&self.registry).list.iter().map(|(_, o)| o.clone()).collect();
        for o in list {
            o.on_event(event);
        }
    }

    /// How many observers are registered.
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.registry).list.len()
    }
}

fn lock(registry: &Mutex<Registry>) -> std::sync::MutexGuard<'_, Registry> {
    // A poisoned registry only means an observer panicked while registering; still valid.
    registry.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Count(AtomicUsize);
    impl SessionObserver for Count {
        fn on_event(&self, _: &SessionEvent) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn event() -> SessionEvent {
        SessionEvent {
            account: "a".into(),
            event: LifecycleEvent::LoggedOut,
            from: LifecycleState::Authenticated,
            to: LifecycleState::LoggedOut,
            generation: None,
            detail: None,
        }
    }

    #[test]
    fn dropping_or_cancelling_the_handle_unsubscribes() {
        let observers = Observers::default();
        let kept = Arc::new(Count(AtomicUsize::new(0)));
        let dropped = Arc::new(Count(AtomicUsize::new(0)));
        let cancelled = Arc::new(Count(AtomicUsize::new(0)));
        let kept_handle = observers.add(kept.clone());
        let dropped_handle = observers.add(dropped.clone());
        let cancelled_handle = observers.add(cancelled.clone());
        observers.emit(&event());
        drop(dropped_handle);
        cancelled_handle.cancel();
        cancelled_handle.cancel(); // idempotent
        assert!(!cancelled_handle.is_active());
        assert!(kept_handle.is_active());
        observers.emit(&event());
        assert_eq!(kept.0.load(Ordering::SeqCst), 2);
        assert_eq!(dropped.0.load(Ordering::SeqCst), 1);
        assert_eq!(cancelled.0.load(Ordering::SeqCst), 1);
        assert_eq!(observers.len(), 1, "the list does not grow with cancelled observers");
        drop(observers);
        assert!(!kept_handle.is_active(), "inactive once the client is gone");
        kept_handle.cancel(); // harmless after the client
    }
}
