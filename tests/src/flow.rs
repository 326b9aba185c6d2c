//! Building blocks shared by the end-to-end tests and the worker: a configured
//! [`Client`] over a state directory, registration and a headless sign-in.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use latchkey::CoordinatorConfig;
use latchkey::{
    Client, ClientConfig, ClientRegistration, FileSessionStore, LoginOptions, RegistrationOptions,
    Session, SessionStore,
};

use crate::browser::{self, BrowserLogin};

/// The redirect URI the tests register (a custom scheme: the headless browser stops there).
pub const REDIRECT_URI: &str = "dev.latchkey.test:/callback";

/// A client configuration for the test provider: loopback http allowed, no clock skew
/// beyond the provider's, short lock timings suited to 1–2 s access tokens.
pub fn test_config(issuer: &str, state_dir: &Path, holder: &str) -> ClientConfig {
    let mut c = ClientConfig::new(issuer, state_dir.join("lock.db"));
    c.holder = holder.to_string();
    c.http.allow_insecure_loopback = true;
    c.http.request_timeout = Duration::from_secs(5);
    c.http.connect_timeout = Duration::from_secs(2);
    c.refresh_margin = Duration::from_secs(30);
    c.clock_skew = Duration::from_secs(5);
    c.lock = CoordinatorConfig::default();
    c
}

/// A client whose session store is a [`FileSessionStore`] in `state_dir`.
pub fn file_client(config: ClientConfig, state_dir: &Path) -> latchkey::Result<Client> {
    let store: Arc<dyn SessionStore> = Arc::new(FileSessionStore::new(state_dir));
    Client::new(config, store)
}

/// Registers a public native client with [`REDIRECT_URI`]; `alg` picks the ID token
/// signing algorithm (`RS256` when None).
pub async fn register(client: &Client, alg: Option<&str>) -> latchkey::Result<ClientRegistration> {
    client
        .register(RegistrationOptions {
            redirect_uris: vec![REDIRECT_URI.to_string()],
            post_logout_redirect_uris: vec!["dev.latchkey.test:/logged-out".to_string()],
            client_name: Some("Latchkey e2e".into()),
            id_token_signed_response_alg: alg.map(String::from),
            ..Default::default()
        })
        .await
}

/// Starts a login and plays the user's browser; returns the redirect URL the app receives.
pub async fn authorize(client: &Client, opts: &BrowserLogin) -> String {
    let start = client
        .start_login(LoginOptions {
            scopes: vec!["openid profile email".into()],
            ..Default::default()
        })
        .await
        .expect("start_login");
    let opts = opts.clone().redirect_prefix(REDIRECT_URI);
    browser::login(&start.url, &opts).await.expect("headless login")
}

/// Signs `user` in: start, headless browser, finish.
pub async fn sign_in(client: &Client, user: &str) -> latchkey::Result<Session> {
    let redirect = authorize(client, &BrowserLogin::default().user(user)).await;
    client.finish_login(&redirect).await
}
