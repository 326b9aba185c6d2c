//! End-to-end test support for Latchkey.
#![forbid(unsafe_code)]
