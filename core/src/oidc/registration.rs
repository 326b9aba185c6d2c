//! Dynamic client registration (RFC 7591) of a public native client, and the persisted
//! registration the app restores on later runs.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::http::HttpClient;
use crate::oidc::discovery::ProviderMetadata;
use crate::oidc::response::parse_json;
use crate::secret::Secret;

/// What to register.
#[derive(Debug, Clone, Default)]
pub struct RegistrationRequest {
    /// Redirect URIs: custom schemes or loopback http URIs (RFC 8252).
    pub redirect_uris: Vec<String>,
    /// Where the provider may send the user after logout.
    pub post_logout_redirect_uris: Vec<String>,
    /// Human-readable client name.
    pub client_name: Option<String>,
    /// Scopes the client will ask for.
    pub scope: Option<String>,
    /// ID token signing algorithm to ask for (`RS256`, `ES256`, ...).
    pub id_token_signed_response_alg: Option<String>,
    /// Further metadata fields sent as they are.
    pub extra: Map<String, Value>,
}

/// A client registration: the client_id and the metadata the provider accepted.
/// Persist it (it is not secret apart from the registration access token) and restore it
/// with [`Client::restore_registration`](crate::Client::restore_registration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRegistration {
    /// The issuer the client is registered with.
    pub issuer: String,
    /// The client identifier.
    pub client_id: String,
    /// Registered redirect URIs.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Registered post-logout redirect URIs.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Registered grant types.
    #[serde(default)]
    pub grant_types: Vec<String>,
    /// ID token signing algorithm the provider will use.
    #[serde(default)]
    pub id_token_signed_response_alg: Option<String>,
    /// When the client_id was issued (Unix seconds).
    #[serde(default)]
    pub client_id_issued_at: Option<i64>,
    /// RFC 7592 management token, if issued.
    #[serde(default)]
    pub registration_access_token: Option<Secret>,
    /// RFC 7592 management URI, if issued.
    #[serde(default)]
    pub registration_client_uri: Option<String>,
}

#[derive(Deserialize)]
struct RegistrationResponse {
    client_id: String,
    #[serde(default)]
    client_secret: Option<Secret>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    grant_types: Vec<String>,
    #[serde(default)]
    id_token_signed_response_alg: Option<String>,
    #[serde(default)]
    client_id_issued_at: Option<i64>,
    #[serde(default)]
    registration_access_token: Option<Secret>,
    #[serde(default)]
    registration_client_uri: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
}

/// Registers a public native client (`token_endpoint_auth_method` none, `application_type`
/// native, grant types authorization_code + refresh_token).
///
/// Fails with [`Error::Unsupported`] when the provider has no registration endpoint,
/// [`Error::Config`] without a redirect URI, [`Error::Provider`] when the provider refuses
/// the metadata (`invalid_redirect_uri`, ...), and network errors. Persists nothing.
pub(crate) async fn register(
    http: &HttpClient,
    metadata: &ProviderMetadata,
    req: &RegistrationRequest,
) -> Result<ClientRegistration> {
    let endpoint = ProviderMetadata::require(&metadata.registration_endpoint, "registration")?;
    if req.redirect_uris.is_empty() {
        return Err(Error::config("registration needs at least one redirect URI"));
    }
    let mut body = json!({
        "application_type": "native",
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "redirect_uris": req.redirect_uris,
    });
    // `body` is a JSON object literal: as_object_mut cannot fail.
    if let Some(obj) = body.as_object_mut() {
        if !req.post_logout_redirect_uris.is_empty() {
            obj.insert("post_logout_redirect_uris".into(), json!(req.post_logout_redirect_uris));
        }
        if let Some(n) = &req.client_name {
            obj.insert("client_name".into(), json!(n));
        }
        if let Some(s) = &req.scope {
            obj.insert("scope".into(), json!(s));
        }
        if let Some(a) = &req.id_token_signed_response_alg {
            obj.insert("id_token_signed_response_alg".into(), json!(a));
        }
        for (k, v) in &req.extra {
            obj.insert(k.clone(), v.clone());
        }
    }
    let resp = http.post_json(endpoint, &body).await?;
    let r: RegistrationResponse = parse_json(&resp, "registration response")?;
    if r.client_secret.is_some()
        || r.token_endpoint_auth_method.as_deref().is_some_and(|m| m != "none")
    {
        return Err(Error::invalid_response(
            "the provider registered a confidential client; native apps must be public clients",
        ));
    }
    Ok(ClientRegistration {
        issuer: metadata.issuer.clone(),
        client_id: r.client_id,
        redirect_uris: r.redirect_uris,
        post_logout_redirect_uris: r.post_logout_redirect_uris,
        grant_types: r.grant_types,
        id_token_signed_response_alg: r.id_token_signed_response_alg,
        client_id_issued_at: r.client_id_issued_at,
        registration_access_token: r.registration_access_token,
        registration_client_uri: r.registration_client_uri,
    })
}
