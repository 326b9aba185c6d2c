//! A string that never shows itself.
//!
//! Token values live in [`Secret`]: its `Debug` and `Display` print `[redacted]`, so a token
//! cannot reach a log line, an error message or a panic message by accident.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// A secret string (token value). `Debug` and `Display` are redacted; read it with
/// [`Secret::expose`] only where the value must leave the process (an HTTP request, the
/// app's store, the caller asking for a token).
///
/// Cloning shares the value instead of copying it (a reference count), so handing out the
/// current access token costs no allocation. Serialized as a plain string.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Arc::from(value.into()))
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

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
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
        Secret::new(s)
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

    #[test]
    fn serializes_as_a_plain_string_and_clones_share_the_value() {
        let s = Secret::new("tok-123");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"tok-123\"");
        let back: Secret = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert!(serde_json::from_str::<Secret>("42").is_err());
        let c = s.clone();
        assert!(std::ptr::eq(c.expose().as_ptr(), s.expose().as_ptr()));
    }
}
