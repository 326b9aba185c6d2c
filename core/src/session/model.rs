//! The [`Session`] type: what a signed-in user's tokens are, and how they are persisted.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::{from_unix_millis, unix_millis};
use crate::error::{Error, Result};
use crate::secret::{hex, Secret};
use crate::store::SessionBlob;

/// How long an access token without a known expiry is taken to live: the default of
/// `ClientConfig::assumed_token_lifetime`, and the fallback for stored sessions without an
/// expiry.
pub const ASSUMED_TOKEN_LIFETIME: Duration = Duration::from_secs(600);

/// Version of the serialized session format written by [`Session::to_blob`].
pub const SESSION_FORMAT_VERSION: u32 = 1;

/// A signed-in user's session: tokens plus what identifies them.
///
/// `Debug` and `Display` never show token values. `generation` numbers the committed
/// versions of this session across processes (it grows by one on every refresh and login).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The account key this session is stored and locked under.
    pub account: String,
    /// The provider's issuer identifier.
    pub issuer: String,
    /// The client the tokens were issued to.
    pub client_id: String,
    /// The user's subject identifier (`sub` of the ID token).
    pub subject: String,
    /// The access token.
    pub access_token: Secret,
    /// The refresh token, if the provider issued one.
    pub refresh_token: Option<Secret>,
    /// The latest ID token (raw JWT), if any.
    pub id_token: Option<Secret>,
    /// When the access token expires, in Unix milliseconds (None: unknown).
    pub expires_at_ms: Option<i64>,
    /// When the access token was received, in Unix milliseconds.
    #[serde(default)]
    pub issued_at_ms: Option<i64>,
    /// The granted scopes.
    pub scopes: Vec<String>,
    /// The nonce of the original authorization request (checked on refreshed ID tokens
    /// that carry one).
    pub nonce: Option<String>,
    /// The `auth_time` of the original ID token, if any.
    pub auth_time: Option<i64>,
    /// The provider session (`sid` of the ID token), matched by back-channel logout.
    #[serde(default)]
    pub session_id: Option<String>,
    /// An ID token that came with a refresh and is not validated yet (the tokens were made
    /// durable first; see `docs/adr/0004-refresh-outcomes-under-faults.md`). `id_token` keeps
    /// the last validated one until this one passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_id_token: Option<Secret>,
    /// The committed generation of this session.
    pub generation: u64,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    format: u32,
    session: Session,
}

impl Session {
    /// When the access token expires, if known.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at_ms.map(from_unix_millis)
    }

    /// Time left on the access token at `now` (zero when expired; None when unknown).
    pub fn remaining(&self, now: SystemTime) -> Option<Duration> {
        self.expires_at_ms.map(|exp| Duration::from_millis((exp - unix_millis(now)).max(0) as u64))
    }

    /// Whether the access token is still valid at `now` for at least `margin`.
    ///
    /// A token without a known expiry (sessions written before expiries were always set)
    /// counts as valid for [`ASSUMED_TOKEN_LIFETIME`] after it was received, and as expired
    /// when that time is unknown too: an unknown expiry is never fresh forever.
    pub fn is_fresh(&self, now: SystemTime, margin: Duration) -> bool {
        let exp = match (self.expires_at_ms, self.issued_at_ms) {
            (Some(exp), _) => exp,
            (None, Some(iat)) => iat.saturating_add(ASSUMED_TOKEN_LIFETIME.as_millis() as i64),
            (None, None) => return false,
        };
        exp.saturating_sub(unix_millis(now)) > margin.as_millis() as i64
    }

    /// When an access token received at `now_ms` expires: `expires_in` seconds later, or
    /// `assumed` later when the provider sent no `expires_in`. Saturating: an absurd
    /// `expires_in` cannot overflow.
    pub(crate) fn expiry_ms(now_ms: i64, expires_in: Option<u64>, assumed: Duration) -> i64 {
        let secs = expires_in.unwrap_or(assumed.as_secs());
        let ms = i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000);
        now_ms.saturating_add(ms)
    }

    /// The proactive-refresh margin for this token: `configured`, but at most a quarter of
    /// the token's lifetime, so short-lived tokens are not refreshed the moment they arrive.
    pub fn refresh_margin(&self, configured: Duration) -> Duration {
        match (self.issued_at_ms, self.expires_at_ms) {
            (Some(iat), Some(exp)) if exp > iat => {
                configured.min(Duration::from_millis(((exp - iat) / 4) as u64))
            }
            _ => configured,
        }
    }

    /// SHA-256 over the access and refresh tokens: identifies this version of the session
    /// without revealing it. Stored in the shared coordination database.
    pub fn token_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.access_token.expose().as_bytes());
        h.update([0u8]);
        if let Some(rt) = &self.refresh_token {
            h.update(rt.expose().as_bytes());
        }
        hex(&h.finalize())
    }

    /// Serializes the session for the app's [`SessionStore`](crate::SessionStore).
    /// Touches no persisted state itself.
    pub fn to_blob(&self) -> SessionBlob {
        let env = Envelope { format: SESSION_FORMAT_VERSION, session: self.clone() };
        // Serializing plain strings and numbers into a Vec cannot fail.
        let data = serde_json::to_vec(&env).unwrap_or_default();
        SessionBlob::new(self.generation, SESSION_FORMAT_VERSION, data)
    }

    /// Reads a session written by [`Session::to_blob`].
    ///
    /// Fails with [`Error::Store`] when the data is not a session of a known format.
    pub fn from_blob(blob: &SessionBlob) -> Result<Session> {
        let env: Envelope = serde_json::from_slice(blob.data()).map_err(|e| Error::Store {
            operation: "load".into(),
            message: format!("unreadable session data: {}", e.classify_name()),
            retryable: false,
        })?;
        if env.format > SESSION_FORMAT_VERSION {
            return Err(Error::Store {
                operation: "load".into(),
                message: format!("session format {} is newer than this library", env.format),
                retryable: false,
            });
        }
        Ok(env.session)
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    // serde_json's messages may quote input (which holds tokens): name the class only.
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("account", &self.account)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("subject", &self.subject)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("has_id_token", &self.id_token.is_some())
            .field("expires_at_ms", &self.expires_at_ms)
            .field("scopes", &self.scopes)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Display for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "session of {} at {} (generation {})", self.subject, self.issuer, self.generation)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Session {
        Session {
            account: "default".into(),
            issuer: "https://op.example".into(),
            client_id: "client".into(),
            subject: "alice".into(),
            access_token: Secret::new("AT-secret-value"),
            refresh_token: Some(Secret::new("RT-secret-value")),
            id_token: Some(Secret::new("ID-secret-value")),
            expires_at_ms: Some(2_000_000_000_000),
            issued_at_ms: None,
            scopes: vec!["openid".into()],
            nonce: Some("n".into()),
            auth_time: None,
            session_id: None,
            pending_id_token: None,
            generation: 3,
        }
    }

    #[test]
    fn debug_and_display_hide_tokens() {
        let s = sample();
        for text in [format!("{s:?}"), format!("{s}"), format!("{:?}", s.to_blob())] {
            assert!(!text.contains("secret-value"), "{text}");
        }
    }

    #[test]
    fn blob_round_trip_and_hash() {
        let s = sample();
        let blob = s.to_blob();
        assert_eq!(blob.generation(), 3);
        let back = Session::from_blob(&blob).unwrap();
        assert_eq!(back, s);
        let mut other = s.clone();
        other.refresh_token = Some(Secret::new("RT-2"));
        assert_ne!(other.token_hash(), s.token_hash());
    }

    #[test]
    fn corrupt_blob_is_typed_error_without_content() {
        let blob = SessionBlob::new(1, 1, b"{\"format\":1,\"session\":\"AT-secret".to_vec());
        let err = Session::from_blob(&blob).unwrap_err();
        assert!(matches!(err, Error::Store { .. }));
        assert!(!err.to_string().contains("secret"));
    }

    #[test]
    fn freshness() {
        let mut s = sample();
        let now = from_unix_millis(1_000_000);
        s.expires_at_ms = Some(1_010_000);
        assert!(s.is_fresh(now, Duration::from_secs(5)));
        assert!(!s.is_fresh(now, Duration::from_secs(11)));
        assert_eq!(s.remaining(now), Some(Duration::from_secs(10)));
    }

    #[test]
    fn unknown_expiry_is_not_fresh_forever() {
        let mut s = sample();
        s.expires_at_ms = None;
        s.issued_at_ms = Some(1_000_000);
        let soon = from_unix_millis(1_000_000 + 1000);
        let later = from_unix_millis(1_000_000 + ASSUMED_TOKEN_LIFETIME.as_millis() as i64 + 1);
        assert!(s.is_fresh(soon, Duration::ZERO));
        assert!(!s.is_fresh(later, Duration::ZERO));
        s.issued_at_ms = None;
        assert!(!s.is_fresh(soon, Duration::ZERO));
    }

    #[test]
    fn expiry_saturates() {
        assert_eq!(Session::expiry_ms(1000, Some(2), Duration::ZERO), 3000);
        assert_eq!(Session::expiry_ms(1000, None, Duration::from_secs(5)), 6000);
        assert_eq!(Session::expiry_ms(1000, Some(u64::MAX), Duration::ZERO), i64::MAX);
    }
}
