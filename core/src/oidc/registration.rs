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
pub struct RegistrationOptions {
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
    /// RFC 7591 `client_uri`: the app's home page (some providers' policies require it).
    pub client_uri: Option<String>,
    /// RFC 7591 `logo_uri`.
    pub logo_uri: Option<String>,
    /// RFC 7591 `tos_uri`: the app's terms of service.
    pub tos_uri: Option<String>,
    /// RFC 7591 `policy_uri`: the app's privacy policy.
    pub policy_uri: Option<String>,
    /// RFC 7591 `contacts`: e-mail addresses of the people responsible for the app.
    pub contacts: Vec<String>,
    /// OpenID Connect `application_type`; `None` sends `native` (the default of a native
    /// app); `web` is possible for providers that insist.
    pub application_type: Option<String>,
    /// Further metadata fields sent as they are (they override the fields above).
    pub extra: Map<String, Value>,
}

/// Why the provider refused a registration, with the metadata field it names when it
/// names one. Carried as the `description` of [`Error::Provider`] by [`register`]: the
/// description starts with `field `NAME`: ` when a field was recognised.
fn refused_field(description: &str, sent: &Map<String, Value>) -> Option<String> {
    // Providers name the field in their description ("client_uri is required",
    // "invalid client_uri", "'policy_uri' missing"...). Take the longest metadata name
    // that appears as a whole word, preferring those Latchkey knows.
    const KNOWN: [&str; 14] = [
        "redirect_uris",
        "post_logout_redirect_uris",
        "client_name",
        "client_uri",
        "logo_uri",
        "tos_uri",
        "policy_uri",
        "contacts",
        "application_type",
        "grant_types",
        "response_types",
        "token_endpoint_auth_method",
        "id_token_signed_response_alg",
        "scope",
    ];
    let words: Vec<&str> = description
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    KNOWN
        .iter()
        .copied()
        .chain(sent.keys().map(String::as_str))
        .filter(|name| words.contains(name))
        .max_by_key(|name| name.len())
        .map(str::to_string)
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

impl ClientRegistration {
    /// Parses a registration saved as JSON (the `Serialize` form of this type).
    ///
    /// Fails with [`Error::Config`] when the JSON is not a registration. The error names
    /// the kind of problem, its line and column, and a missing field by name, but never
    /// quotes the input: it may hold the registration access token.
    pub fn from_json(json: &str) -> Result<ClientRegistration> {
        serde_json::from_str(json).map_err(|e| {
            use serde_json::error::Category;
            let text = e.to_string();
            let what = match e.classify() {
                Category::Syntax => "malformed JSON".to_string(),
                Category::Eof => "truncated JSON".to_string(),
                Category::Io => "unreadable JSON".to_string(),
                // serde's "missing field `x`" names only the field; other data errors may
                // quote a value.
                Category::Data => match text.strip_prefix("missing field `") {
                    Some(rest) => match rest.split_once('`') {
                        Some((field, _)) => format!("missing field `{field}`"),
                        None => "a missing field".to_string(),
                    },
                    None => "a field of the wrong type".to_string(),
                },
            };
            Error::config(format!(
                "invalid registration JSON: {what} at line {} column {}",
                e.line(),
                e.column()
            ))
        })
    }
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

/// A registration refusal whose description names a metadata field gets the description
/// `field `NAME`: <provider's description>`.
fn name_the_field(error: Error, sent: &Map<String, Value>) -> Error {
    match error {
        Error::Provider { error, description: Some(d) } => {
            let description = match refused_field(&d, sent) {
                Some(field) if !d.starts_with("field `") => format!("field `{field}`: {d}"),
                _ => d,
            };
            Error::Provider { error, description: Some(description) }
        }
        other => other,
    }
}

/// Registers a public native client (`token_endpoint_auth_method` none, `application_type`
/// native, grant types authorization_code + refresh_token).
///
/// Sends the RFC 7591 metadata of `req` (`client_uri`, `logo_uri`, `tos_uri`, `policy_uri`,
/// `contacts`, `application_type`...).
///
/// Fails with [`Error::Unsupported`] when the provider has no registration endpoint,
/// [`Error::Config`] without a redirect URI, [`Error::Provider`] when the provider refuses
/// the metadata (`invalid_redirect_uri`, `invalid_client_metadata`...; when its description
/// names a metadata field, the description starts with ``field `NAME`: ``), and network
/// errors. Persists nothing.
pub(crate) async fn register(
    http: &HttpClient,
    metadata: &ProviderMetadata,
    req: &RegistrationOptions,
) -> Result<ClientRegistration> {
    let endpoint = ProviderMetadata::require(&metadata.registration_endpoint, "registration")?;
    if req.redirect_uris.is_empty() {
        return Err(Error::config("registration needs at least one redirect URI"));
    }
    let mut body = json!({
        "application_type": req.application_type.as_deref().unwrap_or("native"),
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
        for (name, value) in [
            ("client_uri", &req.client_uri),
            ("logo_uri", &req.logo_uri),
            ("tos_uri", &req.tos_uri),
            ("policy_uri", &req.policy_uri),
        ] {
            if let Some(v) = value {
                obj.insert(name.into(), json!(v));
            }
        }
        if !req.contacts.is_empty() {
            obj.insert("contacts".into(), json!(req.contacts));
        }
        for (k, v) in &req.extra {
            obj.insert(k.clone(), v.clone());
        }
    }
    let resp = http.post_json(endpoint, &body).await?;
    let sent = body.as_object().cloned().unwrap_or_default();
    let r: RegistrationResponse =
        parse_json(&resp, "registration response").map_err(|e| name_the_field(e, &sent))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_json_errors_never_quote_the_input() {
        let secret = "rat-5f2c0ffee-very-secret";
        let wrong_type = format!(
            r#"{{"issuer":"https://op.example","client_id":"c","registration_access_token":{{"x":"{secret}"}}}}"#
        );
        let unknown_shape = format!(r#"{{"issuer":"{secret}","client_id":7}}"#);
        let broken = format!(
            r#"{{"issuer":"https://op.example","client_id":"c","registration_access_token":"{secret}""#
        );
        for bad in [wrong_type.as_str(), unknown_shape.as_str(), broken.as_str(), "[1,2]"] {
            let err = ClientRegistration::from_json(bad).unwrap_err();
            let text = format!("{err} {err:?}");
            assert!(matches!(err, Error::Config { .. }), "{text}");
            assert!(!text.contains(secret), "{text}");
            assert!(text.contains("line 1 column"), "{text}");
        }
        let missing = ClientRegistration::from_json(r#"{"issuer":"https://op.example"}"#);
        assert!(missing.unwrap_err().to_string().contains("missing field `client_id`"));
        let ok =
            ClientRegistration::from_json(r#"{"issuer":"https://op.example","client_id":"c"}"#);
        assert_eq!(ok.unwrap().client_id, "c");
    }

    #[test]
    fn a_refusal_names_the_field() {
        let sent = serde_json::json!({"redirect_uris": ["app:/cb"], "client_name": "x"});
        let sent = sent.as_object().unwrap();
        let e = name_the_field(
            Error::Provider {
                error: "invalid_client_metadata".into(),
                description: Some("client_uri is required by policy".into()),
            },
            sent,
        );
        match e {
            Error::Provider { description: Some(d), .. } => {
                assert!(d.starts_with("field `client_uri`: client_uri is required"), "{d}")
            }
            other => panic!("{other:?}"),
        }
        let e = name_the_field(
            Error::Provider {
                error: "invalid_client_metadata".into(),
                description: Some("no".into()),
            },
            sent,
        );
        assert!(matches!(e, Error::Provider { description: Some(d), .. } if d == "no"));
    }
}
