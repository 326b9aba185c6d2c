//! Provider discovery: OpenID Connect Discovery 1.0 merged with RFC 8414
//! (`oauth-authorization-server`), with a TTL cache.
//!
//! Some providers list endpoints only in the RFC 8414 document (django-oauth-toolkit puts
//! `revocation_endpoint` and `registration_endpoint` there and not in
//! openid-configuration), so both are read: the OpenID document wins on every field both
//! define, the RFC 8414 one fills in the rest, and both must name the configured issuer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::http::HttpClient;
use crate::oidc::response::parse_json;

/// Which document the metadata came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub enum MetadataSource {
    /// `/.well-known/openid-configuration`.
    #[default]
    OpenIdConfiguration,
    /// `/.well-known/oauth-authorization-server` (RFC 8414).
    OAuthAuthorizationServer,
}

/// What Latchkey knows about a provider: its endpoints and features.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderMetadata {
    /// The issuer identifier (exactly the one asked for).
    pub issuer: String,
    /// Authorization endpoint.
    pub authorization_endpoint: String,
    /// Token endpoint.
    pub token_endpoint: String,
    /// JWKS document of the provider's signing keys.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// UserInfo endpoint.
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    /// Dynamic client registration endpoint (RFC 7591).
    #[serde(default)]
    pub registration_endpoint: Option<String>,
    /// Token revocation endpoint (RFC 7009).
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    /// RP-initiated logout endpoint.
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    /// Token introspection endpoint (RFC 7662).
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
    /// Where users manage their account.
    #[serde(default)]
    pub account_management_uri: Option<String>,
    /// Actions the account management page accepts.
    #[serde(default)]
    pub account_management_actions_supported: Vec<String>,
    /// RFC 9207: the authorization response carries `iss`.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// OpenID Connect Back-Channel Logout support.
    #[serde(default)]
    pub backchannel_logout_supported: bool,
    /// Back-channel logout tokens carry `sid`.
    #[serde(default)]
    pub backchannel_logout_session_supported: bool,
    /// PKCE methods.
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
    /// Scopes the provider advertises.
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    /// Grant types the provider advertises.
    #[serde(default)]
    pub grant_types_supported: Vec<String>,
    /// ID token signing algorithms.
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// Client authentication methods the revocation endpoint accepts (RFC 8414). Empty: not
    /// advertised. A list without `none` means a public client's revocation may be refused.
    #[serde(default)]
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// `prompt` values the provider advertises (OIDC Discovery; e.g. `login`, `consent`).
    #[serde(default)]
    pub prompt_values_supported: Vec<String>,
    /// Which document this came from: the OpenID document when it exists (possibly merged
    /// with the RFC 8414 one, see [`ProviderMetadata::merged_rfc8414`]).
    #[serde(default)]
    pub source: MetadataSource,
    /// The RFC 8414 document was found next to the OpenID one and the fields only it defines
    /// were merged in.
    #[serde(default)]
    pub merged_rfc8414: bool,
}

impl ProviderMetadata {
    /// The endpoint named `what`, or [`Error::Unsupported`].
    pub(crate) fn require<'a>(endpoint: &'a Option<String>, what: &str) -> Result<&'a str> {
        endpoint.as_deref().ok_or_else(|| Error::Unsupported { feature: what.to_string() })
    }

    /// Whether the provider advertises that the `refresh_token` grant is supported:
    /// `Some(true)` / `Some(false)` when `grant_types_supported` is present, `None` when it
    /// is not advertised (many providers omit it although refresh works).
    pub fn refresh_grant_advertised(&self) -> Option<bool> {
        if self.grant_types_supported.is_empty() {
            None
        } else {
            Some(self.grant_types_supported.iter().any(|g| g == "refresh_token"))
        }
    }

    /// Whether a public client (no secret) may call the revocation endpoint according to
    /// `revocation_endpoint_auth_methods_supported`: true when the list is absent or names
    /// `none`.
    pub fn public_revocation_advertised(&self) -> bool {
        self.revocation_endpoint_auth_methods_supported.is_empty()
            || self.revocation_endpoint_auth_methods_supported.iter().any(|m| m == "none")
    }

    fn validate(&self, expected_issuer: &str, http: &HttpClient) -> Result<()> {
        check_issuer(&self.issuer, expected_issuer, "discovery")?;
        http.check_url(&self.authorization_endpoint)?;
        http.check_url(&self.token_endpoint)?;
        for e in [
            &self.jwks_uri,
            &self.userinfo_endpoint,
            &self.registration_endpoint,
            &self.revocation_endpoint,
            &self.end_session_endpoint,
        ]
        .into_iter()
        .flatten()
        {
            http.check_url(e)?;
        }
        if !self.code_challenge_methods_supported.is_empty()
            && !self.code_challenge_methods_supported.iter().any(|m| m == "S256")
        {
            return Err(Error::Unsupported { feature: "PKCE S256".into() });
        }
        Ok(())
    }
}

/// The `issuer` a metadata document names must be exactly the configured one; an issuer
/// differing only by a trailing slash gets an error naming the exact value to configure.
fn check_issuer(named: &str, expected: &str, document: &str) -> Result<()> {
    if named == expected {
        return Ok(());
    }
    if named.trim_end_matches('/') == expected.trim_end_matches('/') {
        return Err(Error::invalid_response(format!(
            "{document} names issuer `{named}`, which differs from the configured `{expected}` \
             only by a trailing slash; issuers are compared exactly: configure `{named}`"
        )));
    }
    Err(Error::invalid_response(format!(
        "{document} names issuer `{named}` instead of `{expected}`"
    )))
}

/// Fetches and caches provider metadata. Touches no persisted state.
#[derive(Debug)]
pub struct Discovery {
    http: HttpClient,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Arc<ProviderMetadata>, Instant)>>,
}

impl Discovery {
    /// A discovery client whose cache entries live for `ttl`.
    pub fn new(http: HttpClient, ttl: Duration) -> Self {
        Discovery { http, ttl, cache: Mutex::new(HashMap::new()) }
    }

    /// The provider's metadata, from the cache when younger than the TTL.
    ///
    /// Reads `{issuer}/.well-known/openid-configuration` and the RFC 8414 document
    /// `{origin}/.well-known/oauth-authorization-server{path}`, and merges them: the OpenID
    /// document wins on fields both define; without it (404/405) the RFC 8414 document alone
    /// is used. The merged result is cached. An RFC 8414 document that cannot be fetched or
    /// read next to a valid OpenID document is ignored.
    ///
    /// Fails with [`Error::InsecureUrl`] for a non-https issuer (unless loopback is allowed),
    /// with [`Error::InvalidResponse`] when either document names another issuer (naming the
    /// exact issuer when only a trailing slash differs), and with network errors when no
    /// document can be fetched.
    pub async fn metadata(&self, issuer: &str) -> Result<Arc<ProviderMetadata>> {
        if let Some(m) = self.cached(issuer) {
            return Ok(m);
        }
        let m = Arc::new(self.fetch(issuer).await?);
        self.lock_cache().insert(issuer.to_string(), (m.clone(), Instant::now()));
        Ok(m)
    }

    fn lock_cache(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (Arc<ProviderMetadata>, Instant)>> {
        // A poisoned cache only means a panic elsewhere mid-insert; the map is still usable.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cached(&self, issuer: &str) -> Option<Arc<ProviderMetadata>> {
        let cache = self.lock_cache();
        cache.get(issuer).filter(|(_, at)| at.elapsed() < self.ttl).map(|(m, _)| m.clone())
    }

    async fn fetch(&self, issuer: &str) -> Result<ProviderMetadata> {
        let base = self.http.check_url(issuer)?;
        let oidc_url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        let rfc8414_url = format!(
            "{}/.well-known/oauth-authorization-server{}",
            base.origin().ascii_serialization(),
            base.path().trim_end_matches('/')
        );
        let oidc = match self.http.get(&oidc_url, None).await {
            Ok(resp) if resp.is_success() => Some(document(&resp, "discovery document")?),
            Ok(resp) if resp.status == 404 || resp.status == 405 => None,
            Ok(resp) => {
                parse_json::<serde_json::Value>(&resp, "discovery document")?;
                return Err(Error::invalid_response("discovery document: unexpected status"));
            }
            Err(f) => return Err(f.error),
        };
        let result = match oidc {
            Some(oidc) => {
                check_issuer(document_issuer(&oidc), issuer, "discovery document")?;
                // The RFC 8414 document is optional next to the OpenID one.
                let rfc8414 = match self.http.get(&rfc8414_url, None).await {
                    Ok(resp) if resp.is_success() => {
                        document(&resp, "authorization server metadata").ok()
                    }
                    _ => None,
                };
                match rfc8414 {
                    Some(rfc8414) => {
                        check_issuer(
                            document_issuer(&rfc8414),
                            issuer,
                            "authorization server metadata",
                        )?;
                        let mut m = metadata_from(merge(oidc, rfc8414), "discovery documents")?;
                        m.merged_rfc8414 = true;
                        m
                    }
                    None => metadata_from(oidc, "discovery document")?,
                }
            }
            None => {
                let resp = self.http.get(&rfc8414_url, None).await?;
                let doc = document(&resp, "authorization server metadata")?;
                let mut m = metadata_from(doc, "authorization server metadata")?;
                m.source = MetadataSource::OAuthAuthorizationServer;
                m
            }
        };
        result.validate(issuer, &self.http)?;
        Ok(result)
    }
}

type Document = serde_json::Map<String, serde_json::Value>;

/// A metadata document: a JSON object.
fn document(resp: &crate::http::HttpResponse, what: &str) -> Result<Document> {
    match parse_json::<serde_json::Value>(resp, what)? {
        serde_json::Value::Object(map) => Ok(map),
        _ => Err(Error::invalid_response(format!("{what}: not a JSON object"))),
    }
}

fn document_issuer(doc: &Document) -> &str {
    doc.get("issuer").and_then(serde_json::Value::as_str).unwrap_or_default()
}

/// The OpenID document's fields over the RFC 8414 document's.
fn merge(oidc: Document, mut rfc8414: Document) -> Document {
    rfc8414.extend(oidc);
    rfc8414
}

fn metadata_from(doc: Document, what: &str) -> Result<ProviderMetadata> {
    let mut m: ProviderMetadata = serde_json::from_value(serde_json::Value::Object(doc))
        .map_err(|e| Error::invalid_response(format!("{what}: {e}")))?;
    m.source = MetadataSource::OpenIdConfiguration;
    m.merged_rfc8414 = false;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(v: serde_json::Value) -> Document {
        match v {
            serde_json::Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn openid_fields_win_and_rfc8414_fills_in() {
        let oidc = doc(serde_json::json!({
            "issuer": "https://op.example",
            "authorization_endpoint": "https://op.example/oidc-auth",
            "token_endpoint": "https://op.example/token",
        }));
        let rfc = doc(serde_json::json!({
            "issuer": "https://op.example",
            "authorization_endpoint": "https://op.example/oauth-auth",
            "token_endpoint": "https://op.example/token",
            "revocation_endpoint": "https://op.example/revoke",
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic"],
        }));
        let m = metadata_from(merge(oidc, rfc), "x").unwrap();
        assert_eq!(m.authorization_endpoint, "https://op.example/oidc-auth");
        assert_eq!(m.revocation_endpoint.as_deref(), Some("https://op.example/revoke"));
        assert!(!m.public_revocation_advertised());
        assert_eq!(m.refresh_grant_advertised(), None);
    }

    #[test]
    fn trailing_slash_issuer_error_names_the_exact_issuer() {
        let err = check_issuer("https://id.example.com/", "https://id.example.com", "discovery")
            .unwrap_err()
            .to_string();
        assert!(err.contains("trailing slash"), "{err}");
        assert!(err.contains("configure `https://id.example.com/`"), "{err}");
        let err = check_issuer("https://other.example", "https://id.example.com", "discovery")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("trailing slash") && err.contains("https://other.example"), "{err}");
        assert!(check_issuer("https://a.example", "https://a.example", "d").is_ok());
    }
}
