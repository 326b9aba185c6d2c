//! The commands other than `login` and `watch`.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Duration;

use latchkey::RevocationGap;
use latchkey::{
    Client, Error, LifecycleState, LogoutOptions, ProviderMetadata, RefreshOutcome,
    RegistrationOptions, Session,
};
use serde_json::{json, Value};

use crate::cli::{Cli, Command, Global, RegisterArgs};
use crate::end_session_handoff::Handoff;
use crate::error::{self, CliError};
use crate::output::{emit, expires_in, human_expiry, table, yes_no};
use crate::state::{self, StateDir};

/// Runs the command.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let g = &cli.global;
    match cli.command {
        Command::Discover { issuer } => discover(g, &issuer).await,
        Command::Register(args) => register(g, args).await,
        Command::Login(args) => crate::login::login(g, args).await,
        Command::Token { min_ttl } => token(g, min_ttl).await,
        Command::Watch(args) => crate::watch::watch(g, args).await,
        Command::Refresh => refresh(g).await,
        Command::Status => status(g).await,
        Command::Userinfo => userinfo(g).await,
        Command::Logout { post_logout_redirect_uri, end_session_wait } => {
            logout(g, post_logout_redirect_uri, Duration::from_secs(end_session_wait)).await
        }
    }
}

/// Discovery with a message that says what is wrong with the issuer.
pub async fn provider(client: &Client, issuer: &str) -> Result<Arc<ProviderMetadata>, CliError> {
    client.provider().await.map_err(|e| discovery_error(issuer, &e))
}

fn discovery_error(issuer: &str, e: &Error) -> CliError {
    let context = match e {
        Error::InsecureUrl { .. } => format!("cannot use the issuer `{issuer}`"),
        _ if e.is_retryable() => format!("cannot reach the provider at `{issuer}`"),
        Error::Provider { .. } | Error::HttpStatus { .. } | Error::InvalidResponse { .. } => {
            format!(
                "no OpenID provider at `{issuer}` (check --issuer; discovery of \
                 {issuer}/.well-known/openid-configuration failed)"
            )
        }
        _ => format!("discovery of `{issuer}` failed"),
    };
    CliError::lib(&context, e)
}

async fn discover(g: &Global, issuer: &str) -> Result<(), CliError> {
    let state = StateDir::new(&g.state_dir);
    let client = state::client(g, &state, issuer)?;
    let m = provider(&client, issuer).await?;
    let pkce = m.code_challenge_methods_supported.iter().any(|x| x == "S256");
    // Many providers omit grant_types_supported although refresh works: "not advertised".
    let refresh_grant = match m.refresh_grant_advertised() {
        Some(b) => json!(b),
        None => json!("not advertised"),
    };
    let source = match m.source {
        latchkey::MetadataSource::OpenIdConfiguration => "openid-configuration",
        latchkey::MetadataSource::OAuthAuthorizationServer => "oauth-authorization-server",
        _ => "other",
    };
    let features = json!({
        "pkce_s256": pkce,
        "authorization_response_iss_parameter": m.authorization_response_iss_parameter_supported,
        "dynamic_registration": m.registration_endpoint.is_some(),
        "refresh_token_grant": refresh_grant,
        "userinfo": m.userinfo_endpoint.is_some(),
        "revocation": m.revocation_endpoint.is_some(),
        "introspection": m.introspection_endpoint.is_some(),
        "end_session": m.end_session_endpoint.is_some(),
        "backchannel_logout": m.backchannel_logout_supported,
    });
    let value = json!({
        "issuer": m.issuer,
        "metadata_source": source,
        "merged_rfc8414": m.merged_rfc8414,
        "endpoints": {
            "authorization": m.authorization_endpoint,
            "token": m.token_endpoint,
            "jwks_uri": m.jwks_uri,
            "userinfo": m.userinfo_endpoint,
            "registration": m.registration_endpoint,
            "revocation": m.revocation_endpoint,
            "introspection": m.introspection_endpoint,
            "end_session": m.end_session_endpoint,
        },
        "features": features,
        "scopes_supported": m.scopes_supported,
        "grant_types_supported": m.grant_types_supported,
        "id_token_signing_alg_values_supported": m.id_token_signing_alg_values_supported,
    });
    emit(g.json, &value, || {
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        let mut rows = vec![
            ("issuer", m.issuer.clone()),
            (
                "metadata",
                if m.merged_rfc8414 {
                    format!("{source} + oauth-authorization-server")
                } else {
                    source.to_string()
                },
            ),
            ("authorization", m.authorization_endpoint.clone()),
            ("token", m.token_endpoint.clone()),
            ("jwks_uri", opt(&m.jwks_uri)),
            ("userinfo", opt(&m.userinfo_endpoint)),
            ("registration", opt(&m.registration_endpoint)),
            ("revocation", opt(&m.revocation_endpoint)),
            ("introspection", opt(&m.introspection_endpoint)),
            ("end_session", opt(&m.end_session_endpoint)),
        ];
        rows.push(("PKCE S256", yes_no(pkce).into()));
        rows.push((
            "RFC 9207 iss",
            yes_no(m.authorization_response_iss_parameter_supported).into(),
        ));
        let refresh_row = match m.refresh_grant_advertised() {
            Some(b) => yes_no(b).to_string(),
            None => "not advertised".to_string(),
        };
        rows.push(("refresh grant", refresh_row));
        rows.push(("back-channel logout", yes_no(m.backchannel_logout_supported).into()));
        rows.push(("scopes", m.scopes_supported.join(" ")));
        rows.push(("ID token algs", m.id_token_signing_alg_values_supported.join(" ")));
        table(&rows)
    });
    Ok(())
}

async fn register(g: &Global, args: RegisterArgs) -> Result<(), CliError> {
    let state = StateDir::new(&g.state_dir);
    let client = state::client(g, &state, &args.issuer)?;
    provider(&client, &args.issuer).await?;
    let reg = client
        .register(RegistrationOptions {
            redirect_uris: args.redirect_uris,
            post_logout_redirect_uris: args.post_logout_redirect_uris,
            client_name: Some(args.client_name),
            client_uri: args.client_uri,
            logo_uri: args.logo_uri,
            tos_uri: args.tos_uri,
            policy_uri: args.policy_uri,
            contacts: args.contacts,
            application_type: args.application_type,
            ..Default::default()
        })
        .await
        .map_err(|e| CliError::lib("registration refused", &e))?;
    state.save_registration(&reg)?;
    let value = json!({
        "registered": true,
        "issuer": reg.issuer,
        "client_id": reg.client_id,
        "redirect_uris": reg.redirect_uris,
        "post_logout_redirect_uris": reg.post_logout_redirect_uris,
        "registration_file": state.registration_path(),
    });
    emit(g.json, &value, || {
        table(&[
            ("registered", format!("client_id {}", reg.client_id)),
            ("issuer", reg.issuer.clone()),
            ("redirect URIs", reg.redirect_uris.join(" ")),
            ("saved in", state.registration_path().display().to_string()),
        ])
    });
    Ok(())
}

async fn token(g: &Global, min_ttl: u64) -> Result<(), CliError> {
    let (client, _) = state::session_client(g).await?;
    let token = client
        .access_token_with_min_ttl(Duration::from_secs(min_ttl))
        .await
        .map_err(|e| CliError::lib("no fresh access token", &e))?;
    let session = client.session();
    // The one place a token value is printed.
    let value = json!({
        "access_token": token.expose(),
        "token_type": "Bearer",
        "expires_in": session.as_ref().and_then(|s| expires_in(s.expires_at_ms)),
        "generation": session.as_ref().map(|s| s.generation),
    });
    emit(g.json, &value, || token.expose().to_string());
    Ok(())
}

fn outcome_name(o: &RefreshOutcome) -> &'static str {
    match o {
        RefreshOutcome::Refreshed { .. } => "refreshed",
        RefreshOutcome::Adopted { .. } => "adopted",
        RefreshOutcome::StillFresh { .. } => "still_fresh",
        RefreshOutcome::KeptValidToken { .. } => "kept_valid_token",
        _ => "other",
    }
}

async fn refresh(g: &Global) -> Result<(), CliError> {
    let (client, _) = state::session_client(g).await?;
    let outcome = client.refresh().await.map_err(|e| CliError::lib("refresh failed", &e))?;
    let exp = client.session().and_then(|s| expires_in(s.expires_at_ms));
    let name = outcome_name(&outcome);
    let value = json!({
        "outcome": name,
        "generation": outcome.generation(),
        "expires_in": exp,
    });
    emit(g.json, &value, || {
        let what = match outcome {
            RefreshOutcome::Refreshed { .. } => "refreshed",
            RefreshOutcome::Adopted { .. } => "adopted the session another process refreshed",
            RefreshOutcome::StillFresh { .. } => "still fresh, nothing to do",
            RefreshOutcome::KeptValidToken { .. } => {
                "kept the valid access token (refreshing now would not be safe)"
            }
            _ => "done",
        };
        format!(
            "{what}: generation {}, access token expires {}",
            outcome.generation(),
            human_expiry(exp)
        )
    });
    Ok(())
}

fn state_name(s: LifecycleState) -> &'static str {
    match s {
        LifecycleState::Unregistered => "unregistered",
        LifecycleState::Registered => "registered",
        LifecycleState::Authorizing => "authorizing",
        LifecycleState::Authenticated => "authenticated",
        LifecycleState::Refreshing => "refreshing",
        LifecycleState::ReauthRequired => "reauth_required",
        LifecycleState::LoggedOut => "logged_out",
        _ => "other",
    }
}

fn session_json(s: &Session) -> Value {
    json!({
        "subject": s.subject,
        "issuer": s.issuer,
        "client_id": s.client_id,
        "generation": s.generation,
        "expires_in": expires_in(s.expires_at_ms),
        "scopes": s.scopes,
        "has_refresh_token": s.refresh_token.is_some(),
        "has_id_token": s.id_token.is_some(),
    })
}

async fn status(g: &Global) -> Result<(), CliError> {
    let state = StateDir::new(&g.state_dir);
    let Some(reg) = state.load_registration()? else {
        let value = json!({
            "state": "unregistered",
            "account": g.account,
            "state_dir": state.path(),
            "registration": Value::Null,
            "session": Value::Null,
        });
        emit(g.json, &value, || {
            table(&[
                ("state", "unregistered".into()),
                ("state dir", state.path().display().to_string()),
            ])
        });
        return Err(state.not_registered());
    };
    let (client, _) = state::registered_client(g, &state)?;
    let restored = client.restore_session().await;
    let (state_label, problem) = match &restored {
        Ok(Some(_)) => (state_name(client.state()), None),
        Ok(None) => {
            let e = state::no_session_error(g, &state).await;
            let label = match e.kind.as_str() {
                "logged_out" => "logged_out",
                "reauth_required" => "reauth_required",
                _ => "no_session",
            };
            (label, Some(e))
        }
        Err(e) if e.requires_reauthentication() => {
            (error::kind(e), Some(CliError::lib("the session has ended", e)))
        }
        Err(e) => return Err(CliError::lib("cannot read the session", e)),
    };
    let session = restored.ok().flatten();
    let value = json!({
        "state": state_label,
        "account": g.account,
        "state_dir": state.path(),
        "registration": {
            "issuer": reg.issuer,
            "client_id": reg.client_id,
            "redirect_uris": reg.redirect_uris,
        },
        "session": session.as_ref().map(session_json),
    });
    emit(g.json, &value, || {
        let mut rows = vec![("state", state_label.to_string())];
        if let Some(s) = &session {
            let exp = expires_in(s.expires_at_ms);
            rows.push(("subject", s.subject.clone()));
            rows.push(("issuer", s.issuer.clone()));
            rows.push(("generation", s.generation.to_string()));
            rows.push(("access token", format!("expires {}", human_expiry(exp))));
            rows.push(("refresh token", yes_no(s.refresh_token.is_some()).into()));
            rows.push(("scopes", s.scopes.join(" ")));
        } else {
            rows.push(("issuer", reg.issuer.clone()));
        }
        rows.push(("client_id", reg.client_id.clone()));
        rows.push(("account", g.account.clone()));
        rows.push(("state dir", state.path().display().to_string()));
        table(&rows)
    });
    match problem {
        Some(p) => Err(p),
        None => Ok(()),
    }
}

async fn userinfo(g: &Global) -> Result<(), CliError> {
    let (client, _) = state::session_client(g).await?;
    let claims = client.userinfo().await.map_err(|e| CliError::lib("userinfo failed", &e))?;
    let value = Value::Object(claims);
    emit(g.json, &value, || serde_json::to_string_pretty(&value).unwrap_or_default());
    Ok(())
}

async fn logout(
    g: &Global,
    post_logout_redirect_uri: Option<String>,
    end_session_wait: Duration,
) -> Result<(), CliError> {
    let (client, session) = state::session_client(g).await?;
    let outcome = client
        .logout(LogoutOptions { post_logout_redirect_uri, ..Default::default() })
        .await
        .map_err(|e| CliError::lib("logout failed", &e))?;
    let url = outcome.end_session_url.as_deref().map(latchkey::without_id_token_hint);
    // The browser gets the URL with the id_token_hint through a one-time loopback redirect;
    // only the URL without it is ever printed.
    let handoff = match &outcome.end_session_url {
        Some(_) if !end_session_wait.is_zero() => Some(Handoff::bind().await?),
        _ => None,
    };
    let revocation_error = outcome.revocation_error.as_ref().map(|e| e.to_string());
    let outlives = outcome.refresh_token_may_outlive_logout.as_ref().map(|gap| match gap {
        RevocationGap::NoRevocationEndpoint => {
            "the provider has no revocation endpoint".to_string()
        }
        RevocationGap::ClientAuthenticationRequired { advertised } => format!(
            "the provider revokes only for authenticated clients ({})",
            advertised.join(", ")
        ),
        RevocationGap::RequestFailed => "the revocation request failed".to_string(),
        _ => "not revoked".to_string(),
    });
    let value = json!({
        "logged_out": true,
        "subject": session.subject,
        "refresh_token_revoked": outcome.refresh_token_revoked,
        "access_token_revoked": outcome.access_token_revoked,
        "revocation_error": revocation_error,
        "refresh_token_may_outlive_logout": outlives,
        "end_session_url": url,
        "browser_url": handoff.as_ref().map(|h| h.url.clone()),
    });
    emit(g.json, &value, || {
        let mut rows = vec![
            ("logged out", format!("{} (every process of this state dir)", session.subject)),
            (
                "refresh token",
                if outcome.refresh_token_revoked { "revoked" } else { "not revoked" }.into(),
            ),
            (
                "access token",
                if outcome.access_token_revoked { "revoked" } else { "not revoked" }.into(),
            ),
        ];
        if let Some(e) = &revocation_error {
            rows.push(("revocation error", e.clone()));
        }
        if let Some(o) = &outlives {
            rows.push(("refresh token may outlive the logout", o.clone()));
        }
        match (&handoff, &url) {
            (Some(h), _) => rows.push(("end the browser session", h.url.clone())),
            (None, Some(u)) => rows.push(("end the browser session", u.clone())),
            (None, None) => {}
        }
        table(&rows)
    });
    if let (Some(h), Some(full)) = (handoff, outcome.end_session_url.as_deref()) {
        if std::io::stderr().is_terminal() {
            eprintln!(
                "Open the end-session URL above in the browser you signed in with; waiting up \
                 to {} s",
                end_session_wait.as_secs()
            );
        }
        if !h.serve(full, end_session_wait).await {
            tracing::info!("the browser did not open the end-session hand-off URL in time");
        }
    }
    Ok(())
}
