//! Back-channel logout with real logout tokens: the test provider sends them to a loopback
//! listener (standing in for the app's backend) when the user ends the provider session,
//! and the tests hand them to Latchkey as the backend would relay them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use latchkey::{Client, ClientRegistration, Error, LifecycleState, LoginOptions, LogoutOptions};
use latchkey_e2e::browser::{Browser, BrowserLogin};
use latchkey_e2e::flow::{self, file_client, test_config};
use latchkey_e2e::op::{ProviderOptions, TestProvider};

async fn provider() -> TestProvider {
    TestProvider::start(ProviderOptions { access_token_ttl_secs: 60, ..Default::default() })
        .await
        .expect("test provider")
}

fn client(op: &TestProvider, dir: &Path, holder: &str) -> Client {
    let mut config = test_config(op.issuer(), dir, holder);
    config.clock_skew = Duration::from_secs(1);
    file_client(config, dir).unwrap()
}

/// Registers with a back-channel logout URI on a one-shot listener; returns the
/// registration and the receiver of the first logout request.
async fn register(
    client: &Client,
    session_required: bool,
) -> (ClientRegistration, tokio::sync::oneshot::Receiver<String>) {
    let (bc_url, delivered) = latchkey_e2e::listener::one_shot("/backchannel").await.unwrap();
    let mut extra = serde_json::Map::new();
    extra.insert("backchannel_logout_uri".into(), serde_json::json!(bc_url));
    extra.insert("backchannel_logout_session_required".into(), serde_json::json!(session_required));
    // auth_time in every ID token: the sign-in time logout tokens are compared with.
    extra.insert("require_auth_time".into(), serde_json::json!(true));
    let reg = client
        .register(latchkey::RegistrationOptions {
            redirect_uris: vec![flow::REDIRECT_URI.into()],
            post_logout_redirect_uris: vec!["dev.latchkey.test:/logged-out".into()],
            extra,
            ..Default::default()
        })
        .await
        .unwrap();
    (reg, delivered)
}

async fn sign_in(client: &Client, browser: &Browser) {
    let start = client.start_login(LoginOptions::default()).await.unwrap();
    let redirect = browser
        .login(&start.url, &BrowserLogin::default().redirect_prefix(flow::REDIRECT_URI))
        .await
        .unwrap();
    client.finish_login(&redirect).await.unwrap();
}

/// Ends the provider session in `browser` and returns the logout token the provider sent.
async fn provider_logout(
    client: &Client,
    browser: &Browser,
    delivered: tokio::sync::oneshot::Receiver<String>,
) -> String {
    let url = client
        .end_session_url(LogoutOptions {
            post_logout_redirect_uri: Some("dev.latchkey.test:/logged-out".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    browser.end_session(&url).await.unwrap();
    let request = tokio::time::timeout(Duration::from_secs(10), delivered).await.unwrap().unwrap();
    let body = request.split("\r\n\r\n").nth(1).unwrap();
    url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .expect("the request carries a logout_token")
}

#[tokio::test]
async fn a_process_without_a_session_in_memory_ends_the_committed_session() {
    let op = provider().await;
    let dir = tempfile::tempdir().unwrap();
    let app = client(&op, dir.path(), "app");
    let (reg, delivered) = register(&app, true).await;
    let browser = Browser::new().unwrap();
    sign_in(&app, &browser).await;
    let token = provider_logout(&app, &browser, delivered).await;

    // An extension that never restored the session receives the token.
    let extension = client(&op, dir.path(), "extension");
    extension.restore_registration(reg).unwrap();
    assert!(extension.session().is_none());
    assert!(extension.handle_backchannel_logout(&token).await.unwrap());
    assert_eq!(extension.state(), LifecycleState::LoggedOut);
    // Ended for every process: the store is cleared and the app learns it.
    assert!(!dir.path().join("session.json").exists());
    assert!(matches!(app.sync().await, Err(Error::LoggedOut)), "{:?}", app.session());
    assert_eq!(app.recorded_end().await.unwrap(), Some(latchkey::SessionState::LoggedOut));
}

#[tokio::test]
async fn a_replayed_logout_token_is_refused_in_every_process() {
    let op = provider().await;
    let dir = tempfile::tempdir().unwrap();
    let app = client(&op, dir.path(), "app");
    let (reg, delivered) = register(&app, true).await;
    let browser = Browser::new().unwrap();
    sign_in(&app, &browser).await;
    let token = provider_logout(&app, &browser, delivered).await;
    assert!(app.handle_backchannel_logout(&token).await.unwrap());

    // The user signs in again; the same token, replayed to this or another process, must
    // not end the new session.
    let browser = Browser::new().unwrap();
    sign_in(&app, &browser).await;
    let signed_in = app.session().unwrap();
    let widget = client(&op, dir.path(), "widget");
    widget.restore_registration(reg).unwrap();
    widget.restore_session().await.unwrap().unwrap();
    for c in [&app, &widget] {
        match c.handle_backchannel_logout(&token).await {
            Err(Error::IdToken { reason }) => {
                assert_eq!(reason, "logout token: replayed (its jti was already used)")
            }
            other => panic!("replay accepted: {other:?}"),
        }
    }
    assert_eq!(app.state(), LifecycleState::Authenticated);
    assert_eq!(app.session(), Some(signed_in.clone()));
    assert_eq!(widget.sync().await.unwrap().unwrap().generation, signed_in.generation);
    // The cache holds a hash, not the token or its jti.
    let db = rusqlite_dump(&dir.path().join("lock.db"));
    let jti = claim(&token, "jti");
    assert!(!db.contains(&jti) && !db.contains(&token), "the replay cache stores the jti");
}

#[tokio::test]
async fn a_delayed_logout_for_an_earlier_sign_in_keeps_the_new_session() {
    let op = provider().await;
    let dir = tempfile::tempdir().unwrap();
    let app = client(&op, dir.path(), "app");
    // Without session_required the ID tokens carry no sid: only sub and time can tell
    // the sessions apart.
    let (_reg, delivered) = register(&app, false).await;
    let browser = Browser::new().unwrap();
    sign_in(&app, &browser).await;
    let first = app.session().unwrap();
    let late = provider_logout(&app, &browser, delivered).await;
    assert_eq!(claim(&late, "sub"), first.subject);

    // The push is delayed; meanwhile the user signs in again (a new provider session).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let browser = Browser::new().unwrap();
    sign_in(&app, &browser).await;
    let second = app.session().unwrap();
    assert_eq!(second.subject, first.subject);
    assert!(second.auth_time.unwrap() > first.auth_time.unwrap(), "{second:?}");
    assert!(second.session_id.is_none());

    assert!(!app.handle_backchannel_logout(&late).await.unwrap());
    assert_eq!(app.state(), LifecycleState::Authenticated);
    assert_eq!(app.session(), Some(second));
    assert!(dir.path().join("session.json").exists());
}

/// A claim of a JWT (unverified; for assertions only).
fn claim(token: &str, name: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    claims[name].as_str().unwrap().to_string()
}

/// Every byte of the database file and its WAL, as lossy text.
fn rusqlite_dump(path: &Path) -> String {
    let mut all = Vec::new();
    for p in [path.to_path_buf(), path.with_extension("db-wal")] {
        if let Ok(b) = std::fs::read(&p) {
            all.extend_from_slice(&b);
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}
