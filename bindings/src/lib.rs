//! uniffi bindings of Latchkey: type mapping and delegation only.
#![forbid(unsafe_code)]
uniffi::setup_scaffolding!();
