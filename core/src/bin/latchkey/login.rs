//! `login`: the RFC 8252 loopback redirect. Listens on 127.0.0.1, prints the authorization
//! URL as the first stdout line, waits for the browser's redirect and completes the login.
//!
//! The listener is a minimal HTTP/1.1 server: it reads one request head per connection,
//! answers with a small page and closes. It never logs the request target (it carries the
//! authorization code).

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use latchkey::{
    Client, ClientRegistration, Error, LoginOptions, ProviderMetadata, RegistrationOptions, Session,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::cli::{Global, LoginArgs};
use crate::commands::provider;
use crate::error::{exit_code, kind, CliError, EXIT_PROTOCOL, EXIT_TRANSIENT};
use crate::output::{emit, expires_in, human_expiry, line, table, yes_no};
use crate::state::{self, StateDir};

/// The redirect URI `login` registers when it registers by itself.
pub const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1/callback";
/// Largest request head the listener reads.
const MAX_HEAD: usize = 16 * 1024;
/// Time a browser connection has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the listener binds and what redirect URI it serves.
struct Target {
    ip: IpAddr,
    port: u16,
    path: String,
}

pub async fn login(g: &Global, args: LoginArgs) -> Result<(), CliError> {
    let state = StateDir::new(&g.state_dir);
    let saved = state.load_registration()?;
    let issuer = match (&args.issuer, &saved) {
        (Some(i), _) => i.clone(),
        (None, Some(r)) => r.issuer.clone(),
        (None, None) => {
            return Err(CliError::usage(format!(
                "login needs --issuer URL (there is no registration in {} yet)",
                state.path().display()
            )))
        }
    };
    let client = state::client(g, &state, &issuer)?;
    let metadata = provider(&client, &issuer).await?;
    let reg = match (args.client_id.clone(), saved) {
        (Some(client_id), _) => {
            let reg = ClientRegistration {
                issuer: metadata.issuer.clone(),
                client_id,
                redirect_uris: Vec::new(),
                post_logout_redirect_uris: Vec::new(),
                grant_types: Vec::new(),
                id_token_signed_response_alg: None,
                client_id_issued_at: None,
                registration_access_token: None,
                registration_client_uri: None,
            };
            state.save_registration(&reg)?;
            reg
        }
        (None, Some(r)) if r.issuer == metadata.issuer => r,
        (None, _) => {
            let reg = client
                .register(RegistrationOptions {
                    redirect_uris: vec![DEFAULT_REDIRECT_URI.to_string()],
                    client_name: Some("latchkey CLI".into()),
                    ..Default::default()
                })
                .await
                .map_err(|e| {
                    CliError::lib(
                        "cannot register automatically (register with `latchkey register`, or \
                         pass --client-id)",
                        &e,
                    )
                })?;
            state.save_registration(&reg)?;
            if !g.json {
                eprintln!(
                    "latchkey: registered client_id {} with {} (saved in {})",
                    reg.client_id,
                    reg.issuer,
                    state.registration_path().display()
                );
            }
            reg
        }
    };
    client.restore_registration(reg.clone()).map_err(|e| CliError::lib("registration", &e))?;
    let target = loopback_target(&reg, args.port)?;
    let listener = TcpListener::bind((target.ip, target.port))
        .await
        .map_err(|e| CliError::io(format!("cannot listen on {}:{}", target.ip, target.port), &e))?;
    let port = listener
        .local_addr()
        .map_err(|e| CliError::io("the loopback listener has no address", &e))?
        .port();
    let host = match target.ip {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    let origin = format!("http://{host}:{port}");
    let redirect_uri = format!("{origin}{}", target.path);
    let scopes = if args.scopes.is_empty() { default_scopes(&metadata) } else { args.scopes };
    let start = client
        .start_login(LoginOptions {
            redirect_uri: Some(redirect_uri.clone()),
            scopes,
            prompt: args.prompt,
            login_hint: args.login_hint,
            max_age: args.max_age.map(Duration::from_secs),
            ..Default::default()
        })
        .await
        .map_err(|e| CliError::lib("cannot start the sign-in", &e))?;
    if g.json {
        line(&json!({ "authorization_url": start.url }).to_string());
    } else {
        line(&start.url);
        if std::io::stderr().is_terminal() {
            eprintln!(
                "Open the URL above in a browser to sign in; waiting up to {} s for the \
                 redirect to {redirect_uri}",
                args.timeout
            );
        }
    }
    let session = match tokio::time::timeout(
        Duration::from_secs(args.timeout),
        serve(&listener, &client, &origin, &target.path),
    )
    .await
    {
        Ok(r) => r?,
        Err(_) => {
            return Err(CliError::new(
                EXIT_TRANSIENT,
                "login_timeout",
                format!(
                    "no sign-in redirect arrived within {} s; run `latchkey login` again",
                    args.timeout
                ),
            ))
        }
    };
    let exp = expires_in(session.expires_at_ms);
    let value = json!({
        "signed_in": true,
        "subject": session.subject,
        "issuer": session.issuer,
        "client_id": session.client_id,
        "generation": session.generation,
        "expires_in": exp,
        "scopes": session.scopes,
        "has_refresh_token": session.refresh_token.is_some(),
    });
    emit(g.json, &value, || {
        table(&[
            ("signed in", session.subject.clone()),
            ("issuer", session.issuer.clone()),
            ("generation", session.generation.to_string()),
            ("access token", format!("expires {}", human_expiry(exp))),
            ("refresh token", yes_no(session.refresh_token.is_some()).into()),
            ("scopes", session.scopes.join(" ")),
        ])
    });
    Ok(())
}

/// Those of offline_access, profile and email the provider supports.
fn default_scopes(m: &ProviderMetadata) -> Vec<String> {
    ["offline_access", "profile", "email"]
        .into_iter()
        .filter(|s| m.scopes_supported.iter().any(|x| x == s))
        .map(String::from)
        .collect()
}

/// The first registered loopback redirect URI decides the listener's address and path; a
/// registration without redirect URIs (a `--client-id` given by hand) gets
/// http://127.0.0.1:PORT/callback.
fn loopback_target(reg: &ClientRegistration, port: u16) -> Result<Target, CliError> {
    if reg.redirect_uris.is_empty() {
        return Ok(Target { ip: IpAddr::V4(Ipv4Addr::LOCALHOST), port, path: "/callback".into() });
    }
    for uri in &reg.redirect_uris {
        let Ok(u) = url::Url::parse(uri) else { continue };
        if u.scheme() != "http" {
            continue;
        }
        let ip = match u.host() {
            Some(url::Host::Ipv4(ip)) if ip.is_loopback() => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) if ip.is_loopback() => IpAddr::V6(ip),
            _ => continue,
        };
        let port = if port != 0 { port } else { u.port().unwrap_or(0) };
        return Ok(Target { ip, port, path: u.path().to_string() });
    }
    Err(CliError::new(
        EXIT_PROTOCOL,
        "config",
        format!(
            "the registration has no loopback redirect URI (registered: {}); `login` needs one: \
             register with --redirect-uri {DEFAULT_REDIRECT_URI}",
            reg.redirect_uris.join(" ")
        ),
    ))
}

/// Serves the listener until the provider's redirect completes the login.
async fn serve(
    listener: &TcpListener,
    client: &Client,
    origin: &str,
    path: &str,
) -> Result<Session, CliError> {
    loop {
        let (mut sock, _) = listener
            .accept()
            .await
            .map_err(|e| CliError::io("the loopback listener failed", &e))?;
        let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut sock)).await {
            Ok(Some(h)) => h,
            _ => {
                respond(&mut sock, 400, "Bad request", "The request could not be read.").await;
                continue;
            }
        };
        let Some((method, target)) = request_line(&head) else {
            respond(&mut sock, 400, "Bad request", "The request could not be read.").await;
            continue;
        };
        if method != "GET" {
            respond(&mut sock, 405, "Method not allowed", "Only GET is served here.").await;
            continue;
        }
        let (req_path, query) = target.split_once('?').unwrap_or((target.as_str(), ""));
        if req_path != path {
            respond(&mut sock, 404, "Not found", "This is Latchkey's sign-in listener.").await;
            continue;
        }
        let has =
            |name: &str| url::form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == name);
        if !has("code") && !has("error") {
            respond(
                &mut sock,
                400,
                "Not a sign-in response",
                "This listener waits for the provider's redirect after sign-in.",
            )
            .await;
            continue;
        }
        tracing::debug!("authorization redirect received");
        match client.finish_login(&format!("{origin}{target}")).await {
            Ok(session) => {
                respond(
                    &mut sock,
                    200,
                    "Signed in",
                    "You are signed in to Latchkey. You can close this window.",
                )
                .await;
                return Ok(session);
            }
            Err(Error::UnknownState) => {
                respond(
                    &mut sock,
                    400,
                    "Unknown sign-in request",
                    "This redirect belongs to an older sign-in attempt; use the latest URL.",
                )
                .await;
            }
            Err(e) => {
                let (status, err) = match &e {
                    // The provider's answer reached us as it should: the page says why.
                    Error::Authorization { error, description } => (
                        200,
                        CliError::new(
                            exit_code(&e),
                            kind(&e),
                            format!(
                                "sign-in was refused at the provider: {error}{}",
                                description
                                    .as_deref()
                                    .map(|d| format!(" ({d})"))
                                    .unwrap_or_default()
                            ),
                        ),
                    ),
                    _ => (400, CliError::lib("sign-in failed", &e)),
                };
                respond(&mut sock, status, "Sign-in failed", &err.message).await;
                return Err(err);
            }
        }
    }
}

/// Reads up to the end of the request head; None on EOF, errors or an oversized head.
pub(crate) async fn read_head(sock: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            return String::from_utf8(buf).ok();
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
    }
}

/// `GET /callback?x HTTP/1.1` → ("GET", "/callback?x").
pub(crate) fn request_line(head: &str) -> Option<(String, String)> {
    let first = head.lines().next()?;
    let mut parts = first.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return None;
    }
    Some((method, target))
}

pub(crate) async fn respond(sock: &mut TcpStream, status: u16, title: &str, message: &str) {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Bad Request",
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body><h1>{t}</h1><p>{m}</p></body></html>\n",
        t = html_escape(title),
        m = html_escape(message)
    );
    let resp = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    // The browser may have gone away: nothing to do about it.
    let _ = sock.write_all(resp.as_bytes()).await;
    let _ = sock.shutdown().await;
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn reg(uris: &[&str]) -> ClientRegistration {
        ClientRegistration {
            issuer: "https://op.example".into(),
            client_id: "c".into(),
            redirect_uris: uris.iter().map(|s| s.to_string()).collect(),
            post_logout_redirect_uris: vec![],
            grant_types: vec![],
            id_token_signed_response_alg: None,
            client_id_issued_at: None,
            registration_access_token: None,
            registration_client_uri: None,
        }
    }

    #[test]
    fn loopback_target_from_registration() {
        let t = loopback_target(&reg(&["app:/cb", "http://127.0.0.1/cb"]), 0).unwrap();
        assert_eq!((t.ip, t.port, t.path.as_str()), (IpAddr::V4(Ipv4Addr::LOCALHOST), 0, "/cb"));
        let t = loopback_target(&reg(&["http://127.0.0.1:8765/callback"]), 0).unwrap();
        assert_eq!(t.port, 8765);
        let t = loopback_target(&reg(&["http://[::1]/callback"]), 9000).unwrap();
        assert!(t.ip.is_ipv6() && t.port == 9000);
        assert!(loopback_target(&reg(&["https://app.example/cb"]), 0).is_err());
        assert_eq!(loopback_target(&reg(&[]), 0).unwrap().path, "/callback");
    }

    #[test]
    fn parses_request_line() {
        assert_eq!(
            request_line("GET /callback?code=1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(("GET".into(), "/callback?code=1".into()))
        );
        assert_eq!(request_line("garbage"), None);
        assert_eq!(request_line("GET http://x/ HTTP/1.1"), None);
    }

    #[test]
    fn escapes_html() {
        assert_eq!(
            html_escape("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }
}
