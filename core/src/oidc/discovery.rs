//! Provider discovery: OpenID Connect Discovery 1.0, falling back to RFC 8414
//! (`oauth-authorization-server`), with a TTL cache.

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
    /// Which document this came from.
    #[serde(default)]
    pub source: MetadataSource,
}

impl ProviderMetadata {
    /// The endpoint named `what`, or [`Error::Unsupported`].
    pub(crate) fn require<'a>(endpoint: &'a Option<String>, what: &str) -> Result<&'a str> {
        endpoint.as_deref().ok_or_else(|| Error::Unsupported { feature: what.to_string() })
    }

    fn validate(&self, expected_issuer: &str, http: &HttpClient) -> Result<()> {
        if self.issuer != expected_issuer {
            return Err(Error::invalid_response(format!(
                "discovery names issuer `{}` instead of `{expected_issuer}`",
                self.issuer
            )));
        }
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
    /// Tries `{issuer}/.well-known/openid-configuration` first, then the RFC 8414 location
    /// `{origin}/.well-known/oauth-authorization-server{path}`. Fails with
    /// [`Error::InsecureUrl`] for a non-https issuer (unless loopback is allowed), with
    /// [`Error::InvalidResponse`] when the document names another issuer, and with network
    /// errors when neither document can be fetched.
    pub async fn metadata(&self, issuer: &str) -> Result<Arc<ProviderMetadata>> {
        if let Some(m) = self.cached(issuer) {
            return Ok(m);
        }
        let m = Arc::new(self.fetch(issuer).await?);
        self.lock_cache().insert(issuer.to_string(), (m.clone(), Instant::now()));
        Ok(m)
    }

    /// Drops the cached metadata of `issuer` so the next call refetches it.
    pub fn invalidate(&self, issuer: &str) {
        self.lock_cache().remove(issuer);
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
        let first = self.http.get(&oidc_url, None).await;
        let result = match first {
            Ok(resp) if resp.is_success() => {
                let mut m: ProviderMetadata = parse_json(&resp, "discovery document")?;
                m.source = MetadataSource::OpenIdConfiguration;
                m
            }
            Ok(resp) if resp.status == 404 || resp.status == 405 => {
                let path = base.path().trim_end_matches('/');
                let url = format!(
                    "{}/.well-known/oauth-authorization-server{}",
                    base.origin().ascii_serialization(),
                    path
                );
                let resp = self.http.get(&url, None).await?;
                let mut m: ProviderMetadata = parse_json(&resp, "authorization server metadata")?;
                m.source = MetadataSource::OAuthAuthorizationServer;
                m
            }
            Ok(resp) => {
                parse_json::<serde_json::Value>(&resp, "discovery document")?;
                return Err(Error::invalid_response("discovery document: unexpected status"));
            }
            Err(f) => return Err(f.error),
        };
        result.validate(issuer, &self.http)?;
        Ok(result)
    }
}
