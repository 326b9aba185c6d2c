//! The app's session observer as a foreign trait, adapted to `latchkey::SessionObserver`.

use std::sync::Arc;

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
