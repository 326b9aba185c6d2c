//! A string that never shows itself.
//!
//! Token values live in [`Secret`]: its `Debug` and `Display` print `[redacted]`, so a token
//! cannot reach a log line, an error message or a panic message by accident.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A secret string (token value). `Debug` and `Display` are redacted; read it with
/// [`Secret::expose`] only where the value must leave the process (an HTTP request, the
/// app's store, the caller asking for a token).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the value, hex encoded: safe to log and to store in shared files.
    pub fn fingerprint(&self) -> String {
        hex(&Sha256::digest(self.0.as_bytes()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_displays_value() {
        let s = Secret::new("tok-123");
        assert!(!format!("{s:?}").contains("tok-123"));
        assert!(!format!("{s}").contains("tok-123"));
        assert_eq!(s.expose(), "tok-123");
        assert_eq!(s.fingerprint().len(), 64);
        assert_ne!(s.fingerprint(), Secret::new("tok-124").fingerprint());
    }
}
