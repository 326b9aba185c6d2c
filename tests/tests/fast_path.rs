//! `Client::fresh_access_token`: the synchronous first step of `access_token`, against the
//! real provider. It serves exactly the token `access_token` would serve from memory, says
//! `None` where `access_token` would refresh, never refreshes itself, and fails for the
//! states in which `access_token` fails without a request.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use latchkey::{Error, LogoutOptions};
use latchkey_e2e::flow::{file_client, register, sign_in, test_config};
use latchkey_e2e::op::{ProviderOptions, TestProvider};

#[tokio::test(flavor = "multi_thread")]
async fn fresh_access_token_follows_the_rules_of_access_token_and_never_refreshes() {
    let op =
        TestProvider::start(ProviderOptions { access_token_ttl_secs: 60, ..Default::default() })
            .await
            .expect("test provider");
    let dir = tempfile::tempdir().unwrap();
    let client = file_client(test_config(op.issuer(), dir.path(), "app"), dir.path()).unwrap();
    register(&client, None).await.unwrap();
    let err = client.fresh_access_token(Duration::ZERO).unwrap_err();
    assert!(matches!(err, Error::NoSession), "{err:?}");

    let session = sign_in(&client, "alice").await.unwrap();
    op.reset().await.unwrap();
    let fresh = client.fresh_access_token(Duration::ZERO).unwrap().expect("a fresh token");
    assert_eq!(fresh.expose(), session.access_token.expose());
    assert_eq!(fresh.expose(), client.access_token().await.unwrap().expose());
    // 60 s tokens cannot stay valid for two minutes: not fresh for that caller, and asking
    // does not refresh (access_token_with_min_ttl would).
    for _ in 0..3 {
        assert!(client.fresh_access_token(Duration::from_secs(120)).unwrap().is_none());
    }
    let counters = op.counters().await.unwrap();
    assert_eq!(counters.refresh_grants, 0, "{counters:?}");
    assert_eq!(client.session().unwrap().generation, session.generation);

    // After logout: the error access_token gives, without a request.
    client.logout(LogoutOptions::default()).await.unwrap();
    let err = client.fresh_access_token(Duration::ZERO).unwrap_err();
    assert!(matches!(err, Error::LoggedOut | Error::NoSession), "{err:?}");
    let slow = client.access_token().await.unwrap_err();
    assert_eq!(std::mem::discriminant(&err), std::mem::discriminant(&slow), "{err:?} {slow:?}");
    assert_eq!(op.counters().await.unwrap().refresh_grants, 0);
}
