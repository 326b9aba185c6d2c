//! ID token validation through openidconnect: signature against the provider's JWKS
//! (RS256, ES256 and the other asymmetric algorithms), `iss`, `aud`, `azp`, `nonce`,
//! `exp` / `iat` with a clock skew, `at_hash`; and the refresh rules of OIDC Core §12.2.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use openidconnect::core::{
    CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AccessToken, AccessTokenHash, ClaimsVerificationError, ClientId, IssuerUrl, Nonce,
    SignatureVerificationError,
};

use crate::error::{Error, Result};
use crate::oidc::jwks::Jwks;
use crate::secret::Secret;

/// How the `nonce` claim is checked.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NonceRule<'a> {
    /// Must be present and equal (initial login).
    Exact(&'a str),
    /// If present, must equal (refresh, OIDC Core §12.2).
    IfPresent(Option<&'a str>),
}

/// What an ID token must match.
#[derive(Debug, Clone)]
pub(crate) struct Expectations<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: NonceRule<'a>,
    /// Access token issued with it (checked against `at_hash` when present).
    pub access_token: Option<&'a Secret>,
    /// For a refreshed ID token: the subject of the session.
    pub subject: Option<&'a str>,
    /// For a refreshed ID token: the `auth_time` of the session, if it had one.
    pub auth_time: Option<i64>,
    pub now: SystemTime,
    pub skew: Duration,
}

/// The claims Latchkey keeps from a validated ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTokenInfo {
    /// `sub`.
    pub subject: String,
    /// `iat`, Unix seconds.
    pub issued_at: i64,
    /// `exp`, Unix seconds.
    pub expires_at: i64,
    /// `auth_time`, Unix seconds.
    pub auth_time: Option<i64>,
    /// `nonce`.
    pub nonce: Option<String>,
    /// `sid`: the provider's session, named again by back-channel logout tokens.
    pub session_id: Option<String>,
}

/// The asymmetric signature algorithms accepted for ID and logout tokens.
pub(crate) const ALGS: [CoreJwsSigningAlgorithm; 8] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

fn id_err(reason: impl Into<String>) -> Error {
    Error::IdToken { reason: reason.into() }
}

/// Validates `raw` against the provider keys, refetching them once when the token names
/// an unknown key.
pub(crate) async fn validate(
    raw: &Secret,
    jwks: &Jwks,
    exp: &Expectations<'_>,
) -> Result<IdTokenInfo> {
    validate_classified(raw, jwks, exp).await.map_err(Rejection::into_error)
}

/// Why an ID token was not accepted, by what it says about the tokens it came with
/// (see the classification table in `docs/adr/0004-refresh-outcomes-under-faults.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// It could not be checked now (keys unreachable, a key unknown while refetching is
    /// rate-limited): check again later.
    Unverifiable(Error),
    /// It deviates from the rules in a way that says nothing against the tokens' origin
    /// (`auth_time` changed, expired, nonce differs, not a JWT).
    Deviation(Error),
    /// It proves another subject, issuer or audience, or a forgery (bad signature with a
    /// known key, `at_hash` mismatch).
    Hostile(Error),
}

impl Rejection {
    pub(crate) fn into_error(self) -> Error {
        match self {
            Rejection::Unverifiable(e) | Rejection::Deviation(e) | Rejection::Hostile(e) => e,
        }
    }
}

/// [`validate`], with the failure classified.
pub(crate) async fn validate_classified(
    raw: &Secret,
    jwks: &Jwks,
    exp: &Expectations<'_>,
) -> std::result::Result<IdTokenInfo, Rejection> {
    let token = CoreIdToken::from_str(raw.expose())
        .map_err(|_| Rejection::Deviation(id_err(malformed(raw.expose()))))?;
    let keys = jwks.keys().await.map_err(Rejection::Unverifiable)?;
    match check(&token, keys, exp) {
        Err(Unknown::Key) => match jwks.refetch_for_unknown_kid().await {
            Ok(Some(keys)) => check(&token, keys, exp).map_err(Unknown::into_rejection),
            Ok(None) => Err(Rejection::Unverifiable(id_err("signed with an unknown key"))),
            Err(e) => Err(Rejection::Unverifiable(e)),
        },
        other => other.map_err(Unknown::into_rejection),
    }
}

enum Unknown {
    Key,
    Other(Error),
    Hostile(Error),
}

impl Unknown {
    fn into_rejection(self) -> Rejection {
        match self {
            Unknown::Key => Rejection::Unverifiable(id_err("signed with an unknown key")),
            Unknown::Other(e) => Rejection::Deviation(e),
            Unknown::Hostile(e) => Rejection::Hostile(e),
        }
    }
}

/// Says which part of a token that does not parse as an ID token is wrong, without quoting
/// any of it: its shape, its header, its claims as JSON, or a required claim (OIDC Core §2)
/// that is missing or has the wrong type.
pub(crate) fn malformed(raw: &str) -> String {
    use base64::Engine;
    let parts: Vec<&str> = raw.split('.').collect();
    if parts.len() != 3 {
        return format!("not a JWT: {} dot-separated parts, not 3", parts.len());
    }
    let decode = |p: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).ok();
    let json =
        |p: &str| decode(p).and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let Some(header) = json(parts[0]) else {
        return "not a JWT: the header is not base64url JSON".into();
    };
    if !header.get("alg").is_some_and(serde_json::Value::is_string) {
        return "not a JWT: the header has no `alg`".into();
    }
    let Some(claims) = json(parts[1]) else {
        return "not a JWT: the claims are not base64url JSON".into();
    };
    let Some(claims) = claims.as_object() else { return "the claims are not a JSON object".into() };
    for (name, is_valid) in [
        ("iss", serde_json::Value::is_string as fn(&serde_json::Value) -> bool),
        ("sub", serde_json::Value::is_string),
        ("aud", |v: &serde_json::Value| v.is_string() || v.is_array()),
        ("exp", serde_json::Value::is_number),
        ("iat", serde_json::Value::is_number),
    ] {
        match claims.get(name) {
            None => return format!("the `{name}` claim is missing"),
            Some(v) if !is_valid(v) => return format!("the `{name}` claim has the wrong type"),
            Some(_) => {}
        }
    }
    if decode(parts[2]).is_none() {
        return "not a JWT: the signature is not base64url".into();
    }
    "a claim has the wrong type or value".into()
}

/// `t` for chrono, clamped to chrono's range (a hostile `Date` header can put a clock
/// anywhere; chrono's own conversion panics outside its range).
fn to_chrono(t: SystemTime) -> chrono::DateTime<chrono::Utc> {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map(|s| -s).unwrap_or(i64::MIN),
    };
    chrono::DateTime::<chrono::Utc>::from_timestamp(secs, 0).unwrap_or(if secs > 0 {
        chrono::DateTime::<chrono::Utc>::MAX_UTC
    } else {
        chrono::DateTime::<chrono::Utc>::MIN_UTC
    })
}

fn check(
    token: &CoreIdToken,
    keys: CoreJsonWebKeySet,
    exp: &Expectations<'_>,
) -> std::result::Result<IdTokenInfo, Unknown> {
    let issuer = IssuerUrl::new(exp.issuer.to_string())
        .map_err(|_| Unknown::Other(Error::config("issuer is not a URL")))?;
    let skew = exp.skew;
    let now = exp.now;
    let verifier = CoreIdTokenVerifier::new_public_client(
        ClientId::new(exp.client_id.to_string()),
        issuer,
        keys,
    )
    .set_allowed_algs(ALGS)
    // exp is checked against (now - skew): a token that expired less than `skew` ago
    // still passes, absorbing clock differences.
    .set_time_fn(move || to_chrono(now.checked_sub(skew).unwrap_or(now)))
    .set_issue_time_verifier_fn(move |iat| {
        if iat > to_chrono(now.checked_add(skew).unwrap_or(now)) {
            Err(format!("issued in the future ({iat})"))
        } else {
            Ok(())
        }
    });
    let nonce_rule = exp.nonce;
    let nonce_check = move |n: Option<&Nonce>| -> std::result::Result<(), String> {
        match (nonce_rule, n) {
            (NonceRule::Exact(want), Some(got)) if got.secret() == want => Ok(()),
            (NonceRule::Exact(_), Some(_)) => Err("nonce mismatch".into()),
            (NonceRule::Exact(_), None) => Err("nonce missing".into()),
            (NonceRule::IfPresent(Some(want)), Some(got)) if got.secret() != want => {
                Err("nonce differs from the original ID token".into())
            }
            _ => Ok(()),
        }
    };
    let claims = token.claims(&verifier, nonce_check).map_err(|e| match e {
        ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        ) => Unknown::Key,
        ClaimsVerificationError::SignatureVerification(s) => {
            Unknown::Hostile(id_err(format!("signature: {s}")))
        }
        // openidconnect reports the issue-time check under `Expired` too.
        ClaimsVerificationError::Expired(m) if m.starts_with("issued in the future") => {
            Unknown::Other(id_err(format!("iat: {m}")))
        }
        ClaimsVerificationError::Expired(m) => Unknown::Other(id_err(format!("expired: {m}"))),
        ClaimsVerificationError::InvalidAudience(m) => {
            Unknown::Hostile(id_err(format!("aud: {m}")))
        }
        ClaimsVerificationError::InvalidIssuer(m) => Unknown::Hostile(id_err(format!("iss: {m}"))),
        ClaimsVerificationError::InvalidNonce(m) => Unknown::Other(id_err(format!("nonce: {m}"))),
        other => Unknown::Other(id_err(other.to_string())),
    })?;
    // azp (OIDC Core §3.1.3.7 steps 4-5): multiple audiences need azp; azp must be us.
    match claims.authorized_party() {
        Some(azp) if azp.as_str() != exp.client_id => {
            return Err(Unknown::Hostile(id_err("azp names another client")));
        }
        None if claims.audiences().len() > 1 => {
            return Err(Unknown::Hostile(id_err("several audiences but no azp")));
        }
        _ => {}
    }
    if let (Some(want_hash), Some(at)) = (claims.access_token_hash(), exp.access_token) {
        let alg = token.signing_alg().map_err(|e| Unknown::Other(id_err(e.to_string())))?;
        let key =
            token.signing_key(&verifier).map_err(|e| Unknown::Other(id_err(e.to_string())))?;
        let got = AccessTokenHash::from_token(&AccessToken::new(at.expose().to_string()), alg, key)
            .map_err(|e| Unknown::Other(id_err(format!("at_hash: {e}"))))?;
        if &got != want_hash {
            return Err(Unknown::Hostile(id_err("at_hash does not match the access token")));
        }
    }
    let subject = claims.subject().as_str().to_string();
    if let Some(want) = exp.subject {
        if subject != want {
            return Err(Unknown::Hostile(id_err("refreshed ID token names another subject")));
        }
    }
    let auth_time = claims.auth_time().map(|t| t.timestamp());
    if let (Some(want), Some(got)) = (exp.auth_time, auth_time) {
        if want != got {
            return Err(Unknown::Other(id_err("refreshed ID token changed auth_time")));
        }
    }
    Ok(IdTokenInfo {
        subject,
        issued_at: claims.issue_time().timestamp(),
        expires_at: claims.expiration().timestamp(),
        auth_time,
        nonce: claims.nonce().map(|n| n.secret().clone()),
        session_id: session_id_claim(token),
    })
}

/// The `sid` claim of an already verified token (openidconnect's core claims leave it out).
fn session_id_claim(token: &CoreIdToken) -> Option<String> {
    use base64::Engine;
    let raw = serde_json::to_value(token).ok()?;
    let payload = raw.as_str()?.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("sid")?.as_str().map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn jwt(header: &str, claims: &str) -> String {
        let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.{}", e(header), e(claims), e("sig"))
    }

    #[test]
    fn malformed_tokens_name_what_failed() {
        let h = r#"{"alg":"RS256"}"#;
        let full = r#"{"iss":"i","sub":"s","aud":"a","exp":1,"iat":1}"#;
        let cases = [
            ("a.b".to_string(), "not a JWT: 2 dot-separated parts, not 3"),
            ("!.b.c".to_string(), "not a JWT: the header is not base64url JSON"),
            (jwt("{}", full), "not a JWT: the header has no `alg`"),
            (jwt(h, r#"{"iss":"i","aud":"a","exp":1,"iat":1}"#), "the `sub` claim is missing"),
            (jwt(h, r#"{"sub":"s","aud":"a","exp":1,"iat":1}"#), "the `iss` claim is missing"),
            (jwt(h, r#"{"iss":"i","sub":"s","exp":1,"iat":1}"#), "the `aud` claim is missing"),
            (jwt(h, r#"{"iss":"i","sub":"s","aud":"a","iat":1}"#), "the `exp` claim is missing"),
            (jwt(h, r#"{"iss":"i","sub":"s","aud":"a","exp":1}"#), "the `iat` claim is missing"),
            (
                jwt(h, r#"{"iss":"i","sub":7,"aud":"a","exp":1,"iat":1}"#),
                "the `sub` claim has the wrong type",
            ),
            (
                jwt(h, r#"{"iss":"i","sub":"s","aud":"a","exp":"1","iat":1}"#),
                "the `exp` claim has the wrong type",
            ),
            (jwt(h, "[1]"), "the claims are not a JSON object"),
            (
                format!("{}.!!.x", jwt(h, full).split('.').next().unwrap()),
                "not a JWT: the claims are not base64url JSON",
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(malformed(&raw), want, "{raw}");
            assert!(CoreIdToken::from_str(&raw).is_err() || want.is_empty());
        }
    }

    #[test]
    fn chrono_conversion_never_panics() {
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX) * 4000);
        assert_eq!(to_chrono(far), chrono::DateTime::<chrono::Utc>::MAX_UTC);
        assert_eq!(to_chrono(SystemTime::UNIX_EPOCH).timestamp(), 0);
        if let Some(before) = SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(1 << 60)) {
            assert_eq!(to_chrono(before), chrono::DateTime::<chrono::Utc>::MIN_UTC);
        }
    }
}
