//! Back-channel logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.4, §2.6), for
//! tokens the app's backend relays to the app (e.g. by push). The signature is checked by
//! openidconnect's JSON Web Key implementation; the claims rules are checked here.

use std::time::{Duration, SystemTime};

use base64::Engine;
use openidconnect::core::{CoreJsonWebKey, CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
use openidconnect::{JsonWebKey, JwsSigningAlgorithm};
use serde::Deserialize;
use serde_json::Value;

use crate::clock::unix_millis;
use crate::error::{Error, Result};
use crate::oidc::id_token::ALGS;
use crate::oidc::jwks::Jwks;

/// The event a logout token must carry.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Oldest `iat` accepted (a logout token is meant for immediate delivery).
pub(crate) const MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// A validated logout token: which session the provider ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutToken {
    /// `sub`, when present.
    pub subject: Option<String>,
    /// `sid`, when present.
    pub session_id: Option<String>,
    /// `jti`.
    pub jti: String,
    /// `iat`, Unix seconds.
    pub issued_at: i64,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
}

fn bad(reason: impl Into<String>) -> Error {
    Error::IdToken { reason: format!("logout token: {}", reason.into()) }
}

fn b64(part: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).map_err(|_| bad("not base64url"))
}

enum KeyCheck {
    Verified,
    NoKey,
}

fn verify_with(
    keys: &CoreJsonWebKeySet,
    alg: &CoreJwsSigningAlgorithm,
    kid: Option<&str>,
    input: &[u8],
    sig: &[u8],
) -> Result<KeyCheck> {
    let candidates: Vec<&CoreJsonWebKey> = keys
        .keys()
        .iter()
        .filter(|k| kid.is_none() || k.key_id().map(|id| id.as_str()) == kid)
        .filter(|k| alg.key_type().as_ref().is_some_and(|t| t == k.key_type()))
        .collect();
    if candidates.is_empty() {
        return Ok(KeyCheck::NoKey);
    }
    for key in candidates {
        if key.verify_signature(alg, input, sig).is_ok() {
            return Ok(KeyCheck::Verified);
        }
    }
    Err(bad("signature does not verify"))
}

/// Validates a logout token for `client_id` from `issuer`.
///
/// Fails with [`Error::IdToken`] when the signature, `iss`, `aud`, `iat`, `jti`, `events`,
/// `sub`/`sid` or the absence of `nonce` is wrong.
pub(crate) async fn validate(
    raw: &str,
    jwks: &Jwks,
    issuer: &str,
    client_id: &str,
    now: SystemTime,
    skew: Duration,
) -> Result<LogoutToken> {
    let parts: Vec<&str> = raw.split('.').collect();
    if parts.len() != 3 {
        return Err(bad("not a signed JWT"));
    }
    let header: Header = serde_json::from_slice(&b64(parts[0])?).map_err(|_| bad("bad header"))?;
    if header
        .typ
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("logout+jwt") && !t.eq_ignore_ascii_case("JWT"))
    {
        return Err(bad("unexpected typ"));
    }
    let alg: CoreJwsSigningAlgorithm = serde_json::from_value(Value::String(header.alg.clone()))
        .map_err(|_| bad("unknown alg"))?;
    if !ALGS.contains(&alg) {
        return Err(bad(format!("algorithm {} not allowed", header.alg)));
    }
    let input = format!("{}.{}", parts[0], parts[1]);
    let sig = b64(parts[2])?;
    let kid = header.kid.as_deref();
    match verify_with(&jwks.keys().await?, &alg, kid, input.as_bytes(), &sig)? {
        KeyCheck::Verified => {}
        KeyCheck::NoKey => match jwks.refetch_for_unknown_kid().await? {
            Some(keys) => match verify_with(&keys, &alg, kid, input.as_bytes(), &sig)? {
                KeyCheck::Verified => {}
                KeyCheck::NoKey => return Err(bad("signed with an unknown key")),
            },
            None => return Err(bad("signed with an unknown key")),
        },
    }
    let claims: Value = serde_json::from_slice(&b64(parts[1])?).map_err(|_| bad("bad claims"))?;
    if claims["iss"].as_str() != Some(issuer) {
        return Err(bad("iss differs"));
    }
    let aud_ok = match &claims["aud"] {
        Value::String(a) => a == client_id,
        Value::Array(a) => a.iter().any(|v| v.as_str() == Some(client_id)),
        _ => false,
    };
    if !aud_ok {
        return Err(bad("aud does not name this client"));
    }
    let iat = claims["iat"].as_i64().ok_or_else(|| bad("no iat"))?;
    let now_s = unix_millis(now) / 1000;
    if iat > now_s + skew.as_secs() as i64 || iat < now_s - (MAX_AGE + skew).as_secs() as i64 {
        return Err(bad("iat out of range"));
    }
    if let Some(exp) = claims["exp"].as_i64() {
        if exp + (skew.as_secs() as i64) < now_s {
            return Err(bad("expired"));
        }
    }
    let jti = claims["jti"].as_str().ok_or_else(|| bad("no jti"))?.to_string();
    if !claims["events"][BACKCHANNEL_LOGOUT_EVENT].is_object() {
        return Err(bad("no back-channel logout event"));
    }
    if !claims["nonce"].is_null() {
        return Err(bad("must not carry a nonce"));
    }
    let subject = claims["sub"].as_str().map(String::from);
    let session_id = claims["sid"].as_str().map(String::from);
    if subject.is_none() && session_id.is_none() {
        return Err(bad("neither sub nor sid"));
    }
    Ok(LogoutToken { subject, session_id, jti, issued_at: iat })
}
