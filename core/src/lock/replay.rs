//! The replay cache of back-channel logout tokens (OIDC Back-Channel Logout 1.0 §2.6:
//! "the RP MUST ... verify that the jti has not been used before"), in the coordination
//! database so that every process of the app sees a token another process already took.
//!
//! Rows hold a SHA-256 hash of the issuer and `jti`, never the token. The table is bounded
//! twice: rows are dropped once the token they stand for is too old to be accepted anyway
//! (its `iat` plus the accepted age and the clock skew), and beyond [`MAX_ENTRIES`] the
//! oldest rows go first.

use rusqlite::{params, Connection, TransactionBehavior};
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::lock::Coordinator;

/// Most rows kept; a flood of valid tokens evicts the oldest first.
pub(crate) const MAX_ENTRIES: i64 = 1024;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS logout_replay (
    key           TEXT PRIMARY KEY NOT NULL,  -- sha256(issuer, jti), hex
    keep_until_ms INTEGER NOT NULL,           -- after this the token is refused as too old
    seen_at_ms    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS logout_replay_keep ON logout_replay (keep_until_ms);
";

/// The row key of a token: a hash of its issuer and `jti` (length-prefixed, so no two
/// pairs share a key).
pub(crate) fn replay_key(issuer: &str, jti: &str) -> String {
    let mut h = Sha256::new();
    h.update((issuer.len() as u64).to_be_bytes());
    h.update(issuer.as_bytes());
    h.update(jti.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl Coordinator {
    /// Records that a logout token with `jti` from `issuer` was accepted, keeping the
    /// record until `keep_until_ms` (Unix ms). Returns `false` when that token was already
    /// recorded by this or another process (a replay), `true` the first time.
    ///
    /// Writes the coordination database (one short immediate transaction, which also
    /// drops expired rows and keeps at most [`MAX_ENTRIES`]). Fails with
    /// [`Error::Database`](crate::Error::Database) on I/O errors or while paused.
    pub(crate) async fn record_logout_jti(
        &self,
        issuer: &str,
        jti: &str,
        keep_until_ms: i64,
    ) -> Result<bool> {
        let key = replay_key(issuer, jti);
        self.inner
            .blocking(move |inner, conn| record(conn, &key, keep_until_ms, inner.now_ms()))
            .await
    }
}

/// The blocking part of [`Coordinator::record_logout_jti`].
pub(crate) fn record(
    conn: &mut Connection,
    key: &str,
    keep_until_ms: i64,
    now_ms: i64,
) -> Result<bool> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(SCHEMA)?;
    tx.execute("DELETE FROM logout_replay WHERE keep_until_ms < ?1", params![now_ms])?;
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO logout_replay (key, keep_until_ms, seen_at_ms) VALUES (?1, ?2, ?3)",
        params![key, keep_until_ms, now_ms],
    )?;
    tx.execute(
        "DELETE FROM logout_replay WHERE key IN (
             SELECT key FROM logout_replay ORDER BY seen_at_ms DESC, key LIMIT -1 OFFSET ?1)",
        params![MAX_ENTRIES],
    )?;
    tx.commit()?;
    Ok(inserted == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(conn: &Connection) -> i64 {
        conn.query_row("SELECT COUNT(*) FROM logout_replay", [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn a_jti_is_taken_once_until_it_expires() {
        let mut conn = Connection::open_in_memory().unwrap();
        let k = replay_key("https://op", "j1");
        assert!(record(&mut conn, &k, 10_000, 1_000).unwrap());
        assert!(!record(&mut conn, &k, 10_000, 2_000).unwrap());
        // Another issuer's token with the same jti is another token.
        assert!(record(&mut conn, &replay_key("https://other", "j1"), 10_000, 2_000).unwrap());
        // Past keep_until the row is gone (the token is refused by its age by then).
        assert!(record(&mut conn, &k, 20_000, 10_001).unwrap());
        assert_eq!(count(&conn), 1);
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut conn = Connection::open_in_memory().unwrap();
        for i in 0..(MAX_ENTRIES + 10) {
            assert!(record(&mut conn, &replay_key("i", &i.to_string()), i64::MAX, i).unwrap());
        }
        assert_eq!(count(&conn), MAX_ENTRIES);
        // The newest are kept, the oldest evicted.
        let newest = replay_key("i", &(MAX_ENTRIES + 9).to_string());
        assert!(!record(&mut conn, &newest, i64::MAX, MAX_ENTRIES + 20).unwrap());
        assert!(record(&mut conn, &replay_key("i", "0"), i64::MAX, MAX_ENTRIES + 21).unwrap());
    }

    #[test]
    fn keys_hold_no_jti() {
        let k = replay_key("https://op", "secret-looking-jti");
        assert_eq!(k.len(), 64);
        assert!(!k.contains("secret"));
        assert_ne!(replay_key("ab", "c"), replay_key("a", "bc"));
    }
}
