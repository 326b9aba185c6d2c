//! Checking that a re-authentication the app asked for happened (OIDC Core §3.1.2.1,
//! §3.1.3.7 step 13): with `max_age`, `auth_time` must be within it; with `prompt=login`,
//! `auth_time` must not predate the request. Some providers skip the login anyway (one
//! widely used provider ignores `prompt=login` while advertising it; django-oauth-toolkit
//! ignores `max_age`), so the client checks instead of trusting.

use std::time::Duration;

/// What re-authentication an authorization request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReauthRequest {
    /// `max_age`, in seconds.
    pub max_age_secs: Option<u64>,
    /// `prompt` included `login`.
    pub prompt_login: bool,
    /// When the request was started, Unix seconds on the provider's clock as estimated.
    pub requested_at: i64,
}

/// Why the re-authentication the app asked for did not demonstrably happen. Carried by
/// [`Error::ReauthenticationNotPerformed`](crate::Error::ReauthenticationNotPerformed):
/// the app may start the login again, or decide to accept the older authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthTimeProblem {
    /// The ID token has no `auth_time` although `max_age` was asked for (OIDC Core requires
    /// it then). With `prompt=login` alone a missing `auth_time` cannot be checked and is
    /// not reported (register with `require_auth_time` to always get it).
    Missing,
    /// `auth_time` is older than the `max_age` that was asked for.
    OlderThanMaxAge {
        /// `auth_time` of the ID token (Unix seconds).
        auth_time: i64,
        /// The `max_age` asked for, in seconds.
        max_age_secs: u64,
        /// How long ago the user authenticated, in seconds.
        age_secs: i64,
    },
    /// `prompt=login` was asked for but `auth_time` predates the request: the provider did
    /// not make the user log in again.
    PredatesRequest {
        /// `auth_time` of the ID token (Unix seconds).
        auth_time: i64,
        /// When the request was started (Unix seconds).
        requested_at: i64,
    },
}

impl std::fmt::Display for AuthTimeProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthTimeProblem::Missing => f.write_str("the ID token has no auth_time"),
            AuthTimeProblem::OlderThanMaxAge { max_age_secs, age_secs, .. } => write!(
                f,
                "the user authenticated {age_secs} s ago, more than the max_age of {max_age_secs} s"
            ),
            AuthTimeProblem::PredatesRequest { auth_time, requested_at } => write!(
                f,
                "prompt=login was asked for, but auth_time {auth_time} predates the request \
                 ({requested_at})"
            ),
        }
    }
}

/// Unix seconds of `t` (0 before the epoch).
pub(crate) fn unix_secs(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// Checks `auth_time` against the request, tolerating `skew` of clock difference.
pub(crate) fn check(
    request: &ReauthRequest,
    auth_time: Option<i64>,
    now: i64,
    skew: Duration,
) -> Result<(), AuthTimeProblem> {
    if request.max_age_secs.is_none() && !request.prompt_login {
        return Ok(());
    }
    let skew = i64::try_from(skew.as_secs()).unwrap_or(i64::MAX);
    let Some(auth_time) = auth_time else {
        return match request.max_age_secs {
            Some(_) => Err(AuthTimeProblem::Missing),
            None => Ok(()),
        };
    };
    if let Some(max_age_secs) = request.max_age_secs {
        let age_secs = now.saturating_sub(auth_time);
        if age_secs > i64::try_from(max_age_secs).unwrap_or(i64::MAX).saturating_add(skew) {
            return Err(AuthTimeProblem::OlderThanMaxAge { auth_time, max_age_secs, age_secs });
        }
    }
    if request.prompt_login && auth_time.saturating_add(skew) < request.requested_at {
        return Err(AuthTimeProblem::PredatesRequest {
            auth_time,
            requested_at: request.requested_at,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SKEW: Duration = Duration::from_secs(5);

    #[test]
    fn max_age_and_prompt_login() {
        let none = ReauthRequest { max_age_secs: None, prompt_login: false, requested_at: 1000 };
        assert_eq!(check(&none, None, 1000, SKEW), Ok(()));
        let max_age = ReauthRequest { max_age_secs: Some(60), ..none };
        assert_eq!(check(&max_age, Some(950), 1000, SKEW), Ok(()));
        assert_eq!(check(&max_age, Some(936), 1000, SKEW), Ok(()), "within the skew");
        assert_eq!(
            check(&max_age, Some(900), 1000, SKEW),
            Err(AuthTimeProblem::OlderThanMaxAge {
                auth_time: 900,
                max_age_secs: 60,
                age_secs: 100
            })
        );
        assert_eq!(check(&max_age, None, 1000, SKEW), Err(AuthTimeProblem::Missing));
        let login = ReauthRequest { prompt_login: true, ..none };
        assert_eq!(check(&login, Some(1001), 1002, SKEW), Ok(()));
        assert_eq!(check(&login, None, 1002, SKEW), Ok(()), "nothing to check");
        assert_eq!(
            check(&login, Some(990), 1002, SKEW),
            Err(AuthTimeProblem::PredatesRequest { auth_time: 990, requested_at: 1000 })
        );
    }
}
