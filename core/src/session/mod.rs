//! Sessions: the [`Session`] type, its lifecycle state machine, events and retry policy.

pub mod events;
pub mod lifecycle;
mod model;
pub mod retry;

pub use events::{ObserverHandle, RefreshOutcome, SessionEvent, SessionObserver};
pub use lifecycle::{LifecycleEvent, LifecycleState};
pub use model::{Session, ASSUMED_TOKEN_LIFETIME};
pub use retry::RetryPolicy;
