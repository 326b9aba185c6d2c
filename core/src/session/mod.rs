//! Sessions: the [`Session`] type, its lifecycle and the refresh logic.

mod model;

pub use model::{Session, SESSION_FORMAT_VERSION};
