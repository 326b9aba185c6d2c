//! The app's session observer as a foreign trait, adapted to `latchkey::SessionObserver`.

use std::sync::{Arc, Mutex};

use crate::types::SessionEvent;

/// Receives every lifecycle event of a client (sign-in, refresh, adoption of another
/// process's refresh, logout, ...). Called synchronously on a Latchkey thread: keep it
/// short, dispatch to the UI thread yourself, and never call back into the client from it.
#[uniffi::export(with_foreign)]
pub trait SessionObserver: Send + Sync {
    /// Called once per event.
    fn on_event(&self, event: SessionEvent);
}

/// Adapts a foreign [`SessionObserver`] to the core's trait.
pub(crate) struct ObserverAdapter(pub(crate) Arc<dyn SessionObserver>);

impl latchkey::SessionObserver for ObserverAdapter {
    fn on_event(&self, event: &latchkey::SessionEvent) {
        self.0.on_event(SessionEvent::from(event));
    }
}

/// Keeps an observer registered (returned by `LatchkeyClient.addObserver`): `cancel()`, or
/// releasing the handle (Swift: the last reference; Kotlin: `close()`, or garbage
/// collection), unregisters it. Touches nothing persisted.
#[derive(uniffi::Object)]
pub struct ObserverHandle(Mutex<Option<latchkey::ObserverHandle>>);

impl ObserverHandle {
    pub(crate) fn new(handle: latchkey::ObserverHandle) -> Self {
        Self(Mutex::new(Some(handle)))
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<latchkey::ObserverHandle>> {
        // Poisoning needs a panic while the slot is held; the Option stays valid.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[uniffi::export]
impl ObserverHandle {
    /// Unregisters the observer now: it receives no further event (one being delivered on
    /// another thread may still arrive). Idempotent; never fails.
    pub fn cancel(&self) {
        // Taken out first: the core handle unregisters when dropped, outside our lock.
        let handle = self.slot().take();
        drop(handle);
    }

    /// Whether the observer is still registered.
    pub fn is_active(&self) -> bool {
        self.slot().as_ref().is_some_and(|h| h.is_active())
    }
}
