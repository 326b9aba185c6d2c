//! What the token benchmarks share: a signed-in session that needs no network.

use latchkey::{Secret, Session};

/// The issuer the benchmark sessions name (never contacted: their tokens stay fresh).
pub const ISSUER: &str = "https://op.example";

/// A session of account `default` at generation 1 whose access token stays fresh for an
/// hour, with placeholder token values.
pub fn fresh_session() -> Session {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Session {
        account: "default".into(),
        issuer: ISSUER.into(),
        client_id: "bench".into(),
        subject: "alice".into(),
        access_token: Secret::new("access-token-for-the-benchmark"),
        refresh_token: Some(Secret::new("refresh-token-for-the-benchmark")),
        id_token: None,
        expires_at_ms: Some(now_ms + 3_600_000),
        issued_at_ms: None,
        scopes: vec!["openid".into()],
        nonce: None,
        auth_time: None,
        session_id: None,
        pending_id_token: None,
        generation: 1,
    }
}
