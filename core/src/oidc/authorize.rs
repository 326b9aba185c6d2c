//! Building authorization requests: PKCE S256, state and nonce, and the pending requests
//! waiting for their redirect, keyed by `state`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use openidconnect::{CsrfToken, Nonce, PkceCodeChallenge};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{Error, Result};
use crate::oidc::auth_time::ReauthRequest;
use crate::oidc::discovery::ProviderMetadata;
use crate::secret::Secret;
use crate::store::SessionBlob;

/// Options of one authorization request.
#[derive(Debug, Clone, Default)]
pub struct LoginOptions {
    /// Redirect URI (must be registered). Defaults to the registration's first one.
    pub redirect_uri: Option<String>,
    /// Scopes; `openid` is always included. Defaults to `openid`.
    pub scopes: Vec<String>,
    /// `prompt` (e.g. `login`, `consent`). With `login`,
    /// [`Client::finish_login`](crate::Client::finish_login) checks that `auth_time` does
    /// not predate the request.
    pub prompt: Option<String>,
    /// `max_age`: the longest time since the user last authenticated.
    /// [`Client::finish_login`](crate::Client::finish_login) checks `auth_time` against it
    /// and fails with [`Error::ReauthenticationNotPerformed`] when it is older. May also be
    /// given as an `extra_params` entry.
    pub max_age: Option<Duration>,
    /// `login_hint`.
    pub login_hint: Option<String>,
    /// `ui_locales`, space separated.
    pub ui_locales: Option<String>,
    /// Further query parameters (names that Latchkey sets itself are refused).
    pub extra_params: Vec<(String, String)>,
}

/// A started authorization: open `url` in the system browser; the redirect will carry
/// `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationStart {
    /// The URL to open.
    pub url: String,
    /// The request's state value (also the key to abort it).
    pub state: String,
}

/// A request waiting for its redirect. Holds the PKCE verifier: never leaves the process.
#[derive(Debug, Clone)]
pub(crate) struct PendingAuthorization {
    pub issuer: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub nonce: String,
    pub pkce_verifier: Secret,
    pub scopes: Vec<String>,
    pub created: Instant,
    /// What re-authentication was asked for (`max_age`, `prompt=login`); its
    /// `requested_at` is set by the caller, which knows the provider's clock.
    pub reauth: ReauthRequest,
}

const RESERVED: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
];

/// Checks RFC 8707 resource indicators: each an absolute URI without a fragment.
/// Fails with [`Error::Config`] naming the first one that is not.
pub(crate) fn check_resources(resources: &[String]) -> Result<()> {
    for r in resources {
        match Url::parse(r) {
            Ok(u) if u.fragment().is_none() => {}
            Ok(_) => return Err(Error::config(format!("resource `{r}` must not have a fragment"))),
            Err(_) => return Err(Error::config(format!("resource `{r}` is not an absolute URI"))),
        }
    }
    Ok(())
}

/// Builds the authorization URL and the matching pending request, with one `resource`
/// parameter per entry of `resources` (RFC 8707).
pub(crate) fn build(
    metadata: &ProviderMetadata,
    client_id: &str,
    redirect_uri: &str,
    opts: &LoginOptions,
    resources: &[String],
) -> Result<(AuthorizationStart, PendingAuthorization)> {
    let mut url = Url::parse(&metadata.authorization_endpoint)
        .map_err(|_| Error::invalid_response("authorization endpoint is not a URL"))?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let state = CsrfToken::new_random().secret().clone();
    let nonce = Nonce::new_random().secret().clone();
    let mut scopes = vec!["openid".to_string()];
    for s in &opts.scopes {
        for part in s.split_whitespace() {
            if !scopes.iter().any(|x| x == part) {
                scopes.push(part.to_string());
            }
        }
    }
    for (k, _) in &opts.extra_params {
        if RESERVED.contains(&k.as_str()) {
            return Err(Error::config(format!("`{k}` is set by Latchkey itself")));
        }
    }
    // `max_age` may also come as an extra parameter (the bindings pass it so): it is
    // checked against auth_time all the same.
    let mut max_age_secs = opts.max_age.map(|m| m.as_secs());
    for (_, v) in opts.extra_params.iter().filter(|(k, _)| k == "max_age") {
        let n: u64 = v
            .parse()
            .map_err(|_| Error::config(format!("max_age `{v}` is not a number of seconds")))?;
        if max_age_secs.is_some_and(|m| m != n) {
            return Err(Error::config("max_age is given twice with different values"));
        }
        max_age_secs = Some(n);
    }
    let max_age_in_extra = opts.extra_params.iter().any(|(k, _)| k == "max_age");
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", challenge.as_str())
            .append_pair("code_challenge_method", "S256");
        for r in resources {
            q.append_pair("resource", r);
        }
        if let Some(p) = &opts.prompt {
            q.append_pair("prompt", p);
        }
        if let (Some(m), false) = (max_age_secs, max_age_in_extra) {
            q.append_pair("max_age", &m.to_string());
        }
        if let Some(h) = &opts.login_hint {
            q.append_pair("login_hint", h);
        }
        if let Some(l) = &opts.ui_locales {
            q.append_pair("ui_locales", l);
        }
        for (k, v) in &opts.extra_params {
            q.append_pair(k, v);
        }
    }
    let pending = PendingAuthorization {
        issuer: metadata.issuer.clone(),
        client_id: client_id.to_string(),
        redirect_uri: redirect_uri.to_string(),
        nonce,
        pkce_verifier: Secret::new(verifier.secret().clone()),
        scopes,
        created: Instant::now(),
        reauth: ReauthRequest {
            max_age_secs,
            prompt_login: opts
                .prompt
                .as_deref()
                .is_some_and(|p| p.split(' ').any(|x| x == "login")),
            requested_at: 0,
        },
    };
    Ok((AuthorizationStart { url: url.to_string(), state }, pending))
}

/// Pending authorization requests keyed by state, bounded in number and age.
#[derive(Debug, Default)]
pub(crate) struct PendingRequests {
    map: HashMap<String, PendingAuthorization>,
    /// Whether the requests are also kept in the app's store (see [`pending_login_key`]).
    pub(crate) persist: bool,
}

/// The store key under which the pending logins of `account` are persisted: the account
/// with [`PENDING_LOGIN_SUFFIX`], in the app's own `SessionStore`.
pub(crate) fn pending_login_key(account: &str) -> String {
    format!("{account}{PENDING_LOGIN_SUFFIX}")
}

/// Suffix of the store key of persisted pending logins.
pub const PENDING_LOGIN_SUFFIX: &str = ".pending-login";
/// The `format` of a persisted pending-login blob (distinct from session formats).
pub const PENDING_LOGIN_FORMAT: u32 = 0x504c_0001;

/// One pending request as persisted: everything needed to finish it in another process.
/// Holds the PKCE verifier and nonce: the blob belongs in the app's secure store only.
#[derive(Serialize, Deserialize)]
struct PersistedPending {
    state: String,
    issuer: String,
    client_id: String,
    redirect_uri: String,
    nonce: String,
    pkce_verifier: Secret,
    scopes: Vec<String>,
    /// When the request was started, Unix milliseconds (this device's clock).
    created_unix_ms: u64,
    max_age_secs: Option<u64>,
    prompt_login: bool,
    requested_at: i64,
}

/// How long a pending request stays valid.
pub(crate) const PENDING_TTL: Duration = Duration::from_secs(15 * 60);
/// How many requests may be pending at once (oldest dropped first).
pub(crate) const MAX_PENDING: usize = 16;

impl PendingRequests {
    pub(crate) fn insert(&mut self, state: String, p: PendingAuthorization) {
        self.map.retain(|_, v| v.created.elapsed() < PENDING_TTL);
        while self.map.len() >= MAX_PENDING {
            let oldest = self.map.iter().min_by_key(|(_, v)| v.created).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.map.remove(&k),
                None => break,
            };
        }
        self.map.insert(state, p);
    }

    pub(crate) fn take(&mut self, state: &str) -> Option<PendingAuthorization> {
        self.map.remove(state).filter(|p| p.created.elapsed() < PENDING_TTL)
    }

    pub(crate) fn contains(&self, state: &str) -> bool {
        self.map.contains_key(state)
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The live requests as a blob for the store, None when there are none (then the
    /// persisted key is cleared). `now_ms` is the current Unix time in milliseconds.
    pub(crate) fn to_blob(&self, now_ms: u64) -> Option<SessionBlob> {
        let list: Vec<PersistedPending> = self
            .map
            .iter()
            .filter(|(_, p)| p.created.elapsed() < PENDING_TTL)
            .map(|(state, p)| PersistedPending {
                state: state.clone(),
                issuer: p.issuer.clone(),
                client_id: p.client_id.clone(),
                redirect_uri: p.redirect_uri.clone(),
                nonce: p.nonce.clone(),
                pkce_verifier: p.pkce_verifier.clone(),
                scopes: p.scopes.clone(),
                created_unix_ms: now_ms
                    .saturating_sub(u64::try_from(p.created.elapsed().as_millis()).unwrap_or(0)),
                max_age_secs: p.reauth.max_age_secs,
                prompt_login: p.reauth.prompt_login,
                requested_at: p.reauth.requested_at,
            })
            .collect();
        if list.is_empty() {
            return None;
        }
        // Serializing plain strings and numbers cannot fail.
        let data = serde_json::to_vec(&list).unwrap_or_default();
        Some(SessionBlob::new(0, PENDING_LOGIN_FORMAT, data))
    }

    /// Adds the requests of a persisted blob that are not known here and not expired
    /// (another process, or this one before it was killed, started them).
    ///
    /// Fails with [`Error::Config`] for a blob of another format or that does not parse;
    /// the requests in memory are left untouched then.
    pub(crate) fn merge_blob(&mut self, blob: &SessionBlob, now_ms: u64) -> Result<()> {
        if blob.format() != PENDING_LOGIN_FORMAT {
            return Err(Error::config("the persisted pending logins have an unknown format"));
        }
        let list: Vec<PersistedPending> = serde_json::from_slice(blob.data())
            .map_err(|_| Error::config("the persisted pending logins do not parse"))?;
        for p in list {
            let age = Duration::from_millis(now_ms.saturating_sub(p.created_unix_ms));
            // A start time in the future (clock change) counts as "just now".
            if age >= PENDING_TTL || self.map.contains_key(&p.state) {
                continue;
            }
            let Some(created) = Instant::now().checked_sub(age) else { continue };
            let pending = PendingAuthorization {
                issuer: p.issuer,
                client_id: p.client_id,
                redirect_uri: p.redirect_uri,
                nonce: p.nonce,
                pkce_verifier: p.pkce_verifier,
                scopes: p.scopes,
                created,
                reauth: ReauthRequest {
                    max_age_secs: p.max_age_secs,
                    prompt_login: p.prompt_login,
                    requested_at: p.requested_at,
                },
            };
            self.insert(p.state, pending);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ProviderMetadata {
        serde_json::from_value(serde_json::json!({
            "issuer": "https://op.example",
            "authorization_endpoint": "https://op.example/auth",
            "token_endpoint": "https://op.example/token"
        }))
        .unwrap()
    }

    #[test]
    fn pending_requests_survive_a_blob_round_trip_and_expire() {
        let opts = LoginOptions { prompt: Some("login".into()), ..Default::default() };
        let (start, pending) = build(&meta(), "cid", "app:/cb", &opts, &[]).unwrap();
        let verifier = pending.pkce_verifier.clone();
        let mut first = PendingRequests::default();
        assert!(first.to_blob(1_000_000).is_none(), "nothing to persist");
        first.insert(start.state.clone(), pending);
        let blob = first.to_blob(10_000_000).unwrap();
        assert_eq!(blob.format(), PENDING_LOGIN_FORMAT);

        let mut second = PendingRequests::default();
        second.merge_blob(&blob, 10_000_500).unwrap();
        let restored = second.take(&start.state).expect("restored in another process");
        assert_eq!(restored.pkce_verifier, verifier);
        assert_eq!(restored.client_id, "cid");
        assert!(restored.reauth.prompt_login);

        let ttl_ms = u64::try_from(PENDING_TTL.as_millis()).unwrap();
        let mut late = PendingRequests::default();
        late.merge_blob(&blob, 10_000_000 + ttl_ms).unwrap();
        assert!(late.take(&start.state).is_none(), "expired requests are not restored");

        let mut bad = PendingRequests::default();
        let other = SessionBlob::new(0, 1, b"[]".to_vec());
        assert!(matches!(bad.merge_blob(&other, 0), Err(Error::Config { .. })));
        let garbage = SessionBlob::new(0, PENDING_LOGIN_FORMAT, b"{".to_vec());
        assert!(matches!(bad.merge_blob(&garbage, 0), Err(Error::Config { .. })));
    }

    #[test]
    fn max_age_typed_or_extra_is_sent_once_and_remembered() {
        let typed = LoginOptions { max_age: Some(Duration::from_secs(30)), ..Default::default() };
        let extra = LoginOptions {
            extra_params: vec![("max_age".into(), "30".into())],
            ..Default::default()
        };
        for opts in [typed, extra] {
            let (start, pending) = build(&meta(), "cid", "app:/cb", &opts, &[]).unwrap();
            let url = Url::parse(&start.url).unwrap();
            assert_eq!(url.query_pairs().filter(|(k, v)| k == "max_age" && v == "30").count(), 1);
            assert_eq!(pending.reauth.max_age_secs, Some(30));
        }
        let bad = LoginOptions {
            extra_params: vec![("max_age".into(), "soon".into())],
            ..Default::default()
        };
        assert!(matches!(build(&meta(), "c", "a:/b", &bad, &[]), Err(Error::Config { .. })));
    }

    #[test]
    fn resources_are_sent_and_checked() {
        let resources = vec!["https://api.example/mcp".to_string(), "urn:example:r".to_string()];
        let (start, _) =
            build(&meta(), "cid", "app:/cb", &LoginOptions::default(), &resources).unwrap();
        let url = Url::parse(&start.url).unwrap();
        let sent: Vec<String> =
            url.query_pairs().filter(|(k, _)| k == "resource").map(|(_, v)| v.into()).collect();
        assert_eq!(sent, resources);
        assert!(check_resources(&resources).is_ok());
        assert!(check_resources(&["https://api.example/#x".into()]).is_err());
        assert!(check_resources(&["/relative".into()]).is_err());
    }

    #[test]
    fn url_has_pkce_state_nonce_and_options() {
        let opts = LoginOptions {
            scopes: vec!["profile email".into(), "openid".into()],
            prompt: Some("consent".into()),
            login_hint: Some("alice".into()),
            ui_locales: Some("fr".into()),
            extra_params: vec![("acr_values".into(), "1".into())],
            ..Default::default()
        };
        let (start, pending) = build(&meta(), "cid", "app:/cb", &opts, &[]).unwrap();
        let url = Url::parse(&start.url).unwrap();
        let q: HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["scope"], "openid profile email");
        assert_eq!(q["state"], start.state);
        assert_eq!(q["nonce"], pending.nonce);
        assert_eq!(q["prompt"], "consent");
        assert_eq!(q["login_hint"], "alice");
        assert_eq!(q["ui_locales"], "fr");
        assert_eq!(q["acr_values"], "1");
        // ≥ 128 bits of randomness, base64url: at least 22 characters.
        assert!(start.state.len() >= 22 && pending.nonce.len() >= 22);
        assert!(!start.url.contains(pending.pkce_verifier.expose()));
        let (again, _) = build(&meta(), "cid", "app:/cb", &opts, &[]).unwrap();
        assert_ne!(again.state, start.state);
    }

    #[test]
    fn reserved_extra_param_refused() {
        let opts =
            LoginOptions { extra_params: vec![("state".into(), "x".into())], ..Default::default() };
        assert!(matches!(build(&meta(), "c", "a:/b", &opts, &[]), Err(Error::Config { .. })));
    }

    #[test]
    fn pending_is_bounded() {
        let mut p = PendingRequests::default();
        for i in 0..40 {
            let (_, pend) = build(&meta(), "c", "a:/b", &LoginOptions::default(), &[]).unwrap();
            p.insert(format!("s{i}"), pend);
        }
        assert_eq!(p.len(), MAX_PENDING);
        assert!(p.contains("s39"));
        assert!(p.take("s39").is_some());
        assert!(p.take("s39").is_none());
    }
}
