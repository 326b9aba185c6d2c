//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0 §2.6): validating a logout
//! token the app's backend relayed, refusing replays across processes, matching it to the
//! session by `sub` / `sid` and sign-in time, and ending the session for every process.

use crate::client::{Client, Inner};
use crate::error::{Error, Result};
use crate::lock::SessionState;
use crate::oidc::logout_token::{self, LogoutToken, MAX_AGE};
use crate::session::Session;

impl Client {
    /// Handles a back-channel logout token that the app's backend relayed: validates it
    /// (signature, `iss`, `aud`, `iat`, `events`, no `nonce`), refuses a token whose `jti`
    /// this or another process already took, and, when it names this account's session,
    /// ends that session for every process (like a logout, without revocation: the
    /// provider has already ended the grant). Returns whether a session was ended.
    ///
    /// The token names the session by `sub`, `sid` or both; every one it carries must
    /// match. A token issued before the session was signed in (its `iat` earlier than the
    /// session's `auth_time`, beyond the clock skew) is about an earlier session and ends
    /// nothing. A process that holds no session in memory (it never called
    /// [`Client::restore_session`]) matches against the session the store holds for the
    /// committed generation.
    ///
    /// Fails with [`Error::IdToken`] when the token is not a valid logout token for this
    /// client or is a replay, with [`Error::NotRegistered`] when neither a session nor a
    /// registration names the client, and with [`Error::Store`] / [`Error::Database`] when
    /// the stored session or the coordination database cannot be read; the session is
    /// kept then. Writes the replay cache of the coordination database; ending a session
    /// writes the database's generation record and clears the store.
    pub async fn handle_backchannel_logout(&self, logout_token: &str) -> Result<bool> {
        let inner = &self.inner;
        let metadata = inner.metadata().await?;
        let client_id = match self.session() {
            Some(s) => s.client_id,
            None => self.registration().ok_or(Error::NotRegistered)?.client_id,
        };
        let jwks = inner.jwks(&metadata)?;
        let skew = inner.config.clock_skew;
        let token = logout_token::validate(
            logout_token,
            &jwks,
            &metadata.issuer,
            &client_id,
            inner.provider_now(),
            skew,
        )
        .await?;
        // Kept as long as the token itself is accepted (validate refuses older ones).
        let keep_until_ms =
            token.issued_at.saturating_add((MAX_AGE + skew).as_secs() as i64).saturating_mul(1000);
        if !inner.coordinator.record_logout_jti(&metadata.issuer, &token.jti, keep_until_ms).await?
        {
            return Err(Error::IdToken {
                reason: "logout token: replayed (its jti was already used)".into(),
            });
        }
        let session = match self.session() {
            Some(s) => s,
            None => match inner.committed_session().await? {
                Some(s) => s,
                None => {
                    tracing::debug!("back-channel logout: no active session to end");
                    return Ok(false);
                }
            },
        };
        if !names_session(&token, &session, skew.as_secs() as i64) {
            tracing::debug!("back-channel logout names another session");
            return Ok(false);
        }
        match inner.end_session(SessionState::LoggedOut, "back-channel logout", None).await {
            Err(Error::LoggedOut) | Ok(_) => Ok(true),
            Err(e) => Err(e),
        }
    }
}

impl Inner {
    /// The session the store holds when it is the committed, active generation; None when
    /// the store holds none, it belongs to another issuer or account, or the generation
    /// record says it ended. Reads the store and the coordination database only.
    async fn committed_session(&self) -> Result<Option<Session>> {
        let Some(blob) = self.load_with_retry().await? else { return Ok(None) };
        let session = Session::from_blob(&blob)?;
        if session.issuer != self.config.issuer || session.account != self.config.account {
            return Ok(None);
        }
        match self.coordinator.generation(self.account()).await? {
            Some(rec)
                if rec.state != SessionState::Active && rec.generation >= session.generation =>
            {
                Ok(None)
            }
            // Active at this generation, ahead of it (a commit was interrupted), or no record
            // yet: the stored session is the one every process would restore.
            _ => Ok(Some(session)),
        }
    }
}

/// Whether `token` names `session` (§2.6): every identifier it carries matches, and it was
/// not issued before the session's sign-in.
pub(crate) fn names_session(token: &LogoutToken, session: &Session, skew_secs: i64) -> bool {
    let sub_differs = token.subject.as_deref().is_some_and(|s| s != session.subject);
    let sid_differs = match (&token.session_id, &session.session_id) {
        (Some(t), Some(s)) => t != s,
        // A sid-only token cannot be matched without the session's sid.
        (Some(_), None) => token.subject.is_none(),
        _ => false,
    };
    let before_sign_in =
        session.auth_time.is_some_and(|t| token.issued_at.saturating_add(skew_secs) < t);
    !(sub_differs || sid_differs || before_sign_in)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn session(sub: &str, sid: Option<&str>, auth_time: Option<i64>) -> Session {
        Session {
            account: "default".into(),
            issuer: "https://op".into(),
            client_id: "c".into(),
            subject: sub.into(),
            access_token: Secret::new("at"),
            refresh_token: None,
            id_token: None,
            expires_at_ms: None,
            issued_at_ms: None,
            scopes: vec![],
            nonce: None,
            auth_time,
            session_id: sid.map(String::from),
            pending_id_token: None,
            generation: 1,
        }
    }

    fn token(sub: Option<&str>, sid: Option<&str>, iat: i64) -> LogoutToken {
        LogoutToken {
            subject: sub.map(String::from),
            session_id: sid.map(String::from),
            jti: "j".into(),
            issued_at: iat,
        }
    }

    #[test]
    fn matching_rules() {
        let s = session("alice", Some("sid-1"), Some(1_000));
        let cases = [
            (token(Some("alice"), None, 2_000), true),
            (token(None, Some("sid-1"), 2_000), true),
            (token(Some("alice"), Some("sid-1"), 2_000), true),
            (token(Some("bob"), None, 2_000), false),
            (token(None, Some("sid-2"), 2_000), false),
            (token(Some("alice"), Some("sid-2"), 2_000), false),
            (token(Some("bob"), Some("sid-1"), 2_000), false),
            // Issued before this session's sign-in: about an earlier session.
            (token(Some("alice"), None, 900), false),
            // Within the skew: still this session.
            (token(Some("alice"), None, 950), true),
        ];
        for (t, want) in cases {
            assert_eq!(names_session(&t, &s, 60), want, "{t:?}");
        }
        let no_sid = session("alice", None, None);
        assert!(!names_session(&token(None, Some("sid-1"), 1), &no_sid, 60));
        assert!(names_session(&token(Some("alice"), Some("sid-1"), 1), &no_sid, 60));
    }
}
