//! A malicious provider (a real HTTP server on 127.0.0.1, `latchkey_e2e::hostile`) against
//! the core API. Every case asserts the exact typed error, that nothing was saved (the
//! store's file is byte for byte the same, no other file appeared) and that the session
//! signed in before the attack is still the one in memory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use latchkey::{Client, ClientRegistration, Error, LoginOptions, Session};
use latchkey_e2e::flow::{file_client, test_config, REDIRECT_URI};
use latchkey_e2e::hostile::{HostileProvider, Reply};
use latchkey_e2e::jwt::{self, TestKey};
use serde_json::{json, Value};

const CLIENT_ID: &str = "native-app";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Claims of a good ID token for `sub`.
fn claims(issuer: &str, sub: &str, nonce: &str, access_token: &str) -> Value {
    json!({
        "iss": issuer,
        "aud": CLIENT_ID,
        "sub": sub,
        "iat": now(),
        "exp": now() + 300,
        "nonce": nonce,
        "at_hash": jwt::at_hash(access_token),
        "sid": "sid-1",
    })
}

fn token_reply(access_token: &str, id_token: &str) -> Reply {
    Reply::json(&json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 300,
        "refresh_token": format!("rt-{access_token}"),
        "id_token": id_token,
    }))
}

/// A hostile provider, a client signed in against it (as `alice`) and a snapshot of the
/// state directory.
struct Bed {
    hp: HostileProvider,
    key: TestKey,
    dir: tempfile::TempDir,
    client: Client,
    baseline: Session,
    snapshot: Vec<(PathBuf, Vec<u8>)>,
}

fn registration(issuer: &str) -> ClientRegistration {
    serde_json::from_value(json!({
        "issuer": issuer,
        "client_id": CLIENT_ID,
        "redirect_uris": [REDIRECT_URI],
        "post_logout_redirect_uris": [],
        "grant_types": ["authorization_code", "refresh_token"],
        "id_token_signed_response_alg": null,
        "client_id_issued_at": null,
        "registration_access_token": null,
        "registration_client_uri": null,
    }))
    .unwrap()
}

/// The session files of the state directory (the coordination database aside), sorted.
fn session_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with("lock.db"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

impl Bed {
    async fn new() -> Bed {
        let hp = HostileProvider::start().await.unwrap();
        let key = TestKey::main("k1");
        hp.set("/jwks", Reply::json(&jwt::jwks(&[&key])));
        let dir = tempfile::tempdir().unwrap();
        let client = new_client(&hp, dir.path());
        let mut bed =
            Bed { hp, key, dir, client, baseline: placeholder_session(), snapshot: Vec::new() };
        let issuer = bed.hp.issuer().to_string();
        let key = &bed.key;
        let baseline = bed
            .login(|nonce| {
                token_reply("at-good", &key.sign(&claims(&issuer, "alice", nonce, "at-good")))
            })
            .await
            .expect("the good login succeeds");
        assert_eq!(baseline.subject, "alice");
        bed.baseline = baseline;
        bed.snapshot = session_files(bed.dir.path());
        assert_eq!(bed.snapshot.len(), 1, "one session file after sign-in");
        bed
    }

    /// Starts a login, lets `reply` build the token response from the request's nonce,
    /// and delivers a well-formed redirect.
    async fn login(&self, reply: impl FnOnce(&str) -> Reply) -> latchkey::Result<Session> {
        let (nonce, state) = self.start().await;
        self.hp.set("/token", reply(&nonce));
        let redirect =
            format!("{REDIRECT_URI}?code=code-1&state={state}&iss={}", urlencode(self.hp.issuer()));
        self.client.finish_login(&redirect).await
    }

    async fn start(&self) -> (String, String) {
        let start = self
            .client
            .start_login(LoginOptions { scopes: vec!["openid".into()], ..Default::default() })
            .await
            .unwrap();
        let url = url::Url::parse(&start.url).unwrap();
        let nonce = url.query_pairs().find(|(k, _)| k == "nonce").unwrap().1.into_owned();
        (nonce, start.state)
    }

    /// A token for `sub` with `edit` applied to its claims, signed with the test key.
    fn id_token(&self, nonce: &str, at: &str, edit: impl FnOnce(&mut Value)) -> String {
        let mut c = claims(self.hp.issuer(), "alice", nonce, at);
        edit(&mut c);
        self.key.sign(&c)
    }

    /// Nothing was saved and the earlier session is the one in memory.
    fn assert_untouched(&self, case: &str) {
        assert_eq!(session_files(self.dir.path()), self.snapshot, "{case}: the store changed");
        let s = self.client.session().unwrap_or_else(|| panic!("{case}: the session is gone"));
        assert_eq!(s, self.baseline, "{case}: the session in memory changed");
    }
}

fn new_client(hp: &HostileProvider, dir: &Path) -> Client {
    let mut config = test_config(hp.issuer(), dir, "app");
    config.clock_skew = Duration::from_secs(60);
    let client = file_client(config, dir).unwrap();
    client.restore_registration(registration(hp.issuer())).unwrap();
    client
}

fn placeholder_session() -> Session {
    serde_json::from_value(json!({
        "account": "", "issuer": "", "client_id": "", "subject": "",
        "access_token": "", "refresh_token": null, "id_token": null,
        "expires_at_ms": null, "scopes": [], "nonce": null, "auth_time": null,
        "generation": 0
    }))
    .unwrap()
}

/// What a case expects of the error.
type Expect = Box<dyn Fn(&Error) -> bool>;
/// Builds a token response from the request's nonce.
type MakeReply<'a> = Box<dyn Fn(&str) -> Reply + 'a>;

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn id_token_reason(r: latchkey::Result<Session>, case: &str) -> String {
    match r {
        Err(Error::IdToken { reason }) => reason,
        other => panic!("{case}: expected an ID token error, got {other:?}"),
    }
}

#[tokio::test]
async fn hostile_id_tokens_are_refused_with_the_failed_check_named() {
    let bed = Bed::new().await;
    let iss = bed.hp.issuer().to_string();
    let at = "at-evil";
    type Build<'a> = Box<dyn Fn(&Bed, &str) -> String + 'a>;
    let cases: Vec<(&str, Build, &str)> = vec![
        (
            "alg none",
            Box::new(|_b: &Bed, n: &str| jwt::unsigned(&claims(&iss, "alice", n, at))),
            "signature",
        ),
        (
            "HS256 with the RSA public key as secret",
            Box::new(|_b: &Bed, n: &str| {
                jwt::sign_hs256(
                    jwt::RSA_PUBLIC_PEM.as_bytes(),
                    &json!({"alg": "HS256", "typ": "JWT", "kid": "k1"}),
                    &claims(&iss, "alice", n, at),
                )
            }),
            "signature",
        ),
        (
            "unknown kid",
            Box::new(|_b: &Bed, n: &str| {
                TestKey::main("k-unknown").sign(&claims(&iss, "alice", n, at))
            }),
            "signed with an unknown key",
        ),
        (
            "signed by another key under the known kid",
            Box::new(|_b: &Bed, n: &str| TestKey::second("k1").sign(&claims(&iss, "alice", n, at))),
            "signature",
        ),
        (
            "tampered signature",
            Box::new(|b: &Bed, n: &str| jwt::tamper_signature(&b.id_token(n, at, |_| {}))),
            "signature",
        ),
        (
            "tampered claims",
            Box::new(|b: &Bed, n: &str| {
                let good = b.id_token(n, at, |_| {});
                let evil = b.id_token(n, at, |c| c["sub"] = json!("mallory"));
                let g: Vec<&str> = good.split('.').collect();
                let e: Vec<&str> = evil.split('.').collect();
                format!("{}.{}.{}", g[0], e[1], g[2])
            }),
            "signature",
        ),
        (
            "wrong iss",
            Box::new(|b: &Bed, n: &str| {
                b.id_token(n, at, |c| c["iss"] = json!("https://evil.example"))
            }),
            "iss",
        ),
        (
            "wrong aud",
            Box::new(|b: &Bed, n: &str| b.id_token(n, at, |c| c["aud"] = json!("another-app"))),
            "aud",
        ),
        (
            "several audiences, no azp",
            Box::new(|b: &Bed, n: &str| {
                b.id_token(n, at, |c| c["aud"] = json!([CLIENT_ID, "another-app"]))
            }),
            "aud: `another-app` is not a trusted audience",
        ),
        (
            "several audiences, azp names another client",
            Box::new(|b: &Bed, n: &str| {
                b.id_token(n, at, |c| {
                    c["aud"] = json!([CLIENT_ID, "another-app"]);
                    c["azp"] = json!("another-app");
                })
            }),
            "aud: `another-app` is not a trusted audience",
        ),
        (
            "wrong nonce",
            Box::new(|b: &Bed, n: &str| b.id_token(n, at, |c| c["nonce"] = json!("replayed"))),
            "nonce",
        ),
        (
            "no nonce",
            Box::new(|b: &Bed, n: &str| {
                b.id_token(n, at, |c| {
                    c.as_object_mut().unwrap().remove("nonce");
                })
            }),
            "nonce",
        ),
        (
            "expired",
            Box::new(|b: &Bed, n: &str| {
                b.id_token(n, at, |c| {
                    c["iat"] = json!(now() - 7200);
                    c["exp"] = json!(now() - 3600);
                })
            }),
            "expired",
        ),
        (
            "iat in the future beyond the skew",
            Box::new(|b: &Bed, n: &str| {
                b.id_token(n, at, |c| {
                    c["iat"] = json!(now() + 3600);
                    c["exp"] = json!(now() + 7200);
                })
            }),
            "iat: issued in the future (",
        ),
        (
            "missing sub",
            Box::new(|b: &Bed, n: &str| {
                b.id_token(n, at, |c| {
                    c.as_object_mut().unwrap().remove("sub");
                })
            }),
            "the `sub` claim is missing",
        ),
        (
            "at_hash mismatch",
            Box::new(|b: &Bed, n: &str| b.id_token(n, "another-access-token", |_| {})),
            "at_hash does not match the access token",
        ),
        ("not a JWT", Box::new(|_b: &Bed, _n: &str| "garbage".to_string()), "not a JWT"),
    ];
    for (case, build, want) in &cases {
        let before = bed.hp.requests_to("/token").len();
        let r = bed.login(|n| token_reply(at, &build(&bed, n))).await;
        let reason = id_token_reason(r, case);
        assert!(reason.contains(want), "{case}: `{reason}` does not name `{want}`");
        assert!(!reason.contains(at), "{case}: the error quotes the access token");
        assert_eq!(bed.hp.requests_to("/token").len(), before + 1, "{case}");
        bed.assert_untouched(case);
        println!("{case}: IdToken {{ reason: {reason:?} }}");
    }
}

#[tokio::test]
async fn jwks_with_a_duplicate_kid_is_refused() {
    let bed = Bed::new().await;
    // Two different keys under one kid: which one verifies is ambiguous.
    bed.hp.set("/jwks", Reply::json(&jwt::jwks(&[&TestKey::second("k1"), &TestKey::main("k1")])));
    let other = new_client(&bed.hp, bed.dir.path());
    let (nonce, state) = {
        let start = other
            .start_login(LoginOptions { scopes: vec!["openid".into()], ..Default::default() })
            .await
            .unwrap();
        let url = url::Url::parse(&start.url).unwrap();
        (url.query_pairs().find(|(k, _)| k == "nonce").unwrap().1.into_owned(), start.state)
    };
    bed.hp.set("/token", token_reply("at-2", &bed.id_token(&nonce, "at-2", |_| {})));
    let r = other
        .finish_login(&format!(
            "{REDIRECT_URI}?code=c&state={state}&iss={}",
            urlencode(bed.hp.issuer())
        ))
        .await;
    let reason = id_token_reason(r, "duplicate kid");
    assert!(reason.starts_with("signature: Ambiguous key identification"), "{reason}");
    assert!(other.session().is_none());
    bed.assert_untouched("duplicate kid");
    println!("duplicate kid: IdToken {{ reason: {reason:?} }}");
}

#[tokio::test]
async fn hostile_token_responses_are_refused() {
    let bed = Bed::new().await;
    let big = vec![b' '; 1024 * 1024 + 1];
    let cases: Vec<(&str, MakeReply, Expect)> = vec![
        (
            "over the size cap (Content-Length)",
            Box::new(|_| Reply::raw(200, big.clone())),
            Box::new(|e| matches!(e, Error::ResponseTooLarge { limit: 1048576 })),
        ),
        (
            "over the size cap (streamed)",
            Box::new(|_| Reply::raw(200, big.clone()).without_length()),
            Box::new(|e| matches!(e, Error::ResponseTooLarge { limit: 1048576 })),
        ),
        (
            "invalid JSON",
            Box::new(|_| Reply::raw(200, "{\"access_token\": \"at-x\", ")),
            Box::new(
                |e| matches!(e, Error::InvalidResponse { reason } if reason.starts_with("token response: malformed JSON")),
            ),
        ),
        (
            "no access_token",
            Box::new(|_| Reply::json(&json!({"token_type": "Bearer"}))),
            Box::new(
                |e| matches!(e, Error::InvalidResponse { reason } if reason.contains("`access_token`")),
            ),
        ),
        (
            "token_type not bearer",
            Box::new(|n| {
                let mut r: Value = json!({"access_token": "at-x", "token_type": "mac", "id_token": bed.id_token(n, "at-x", |_| {})});
                r["expires_in"] = json!(300);
                Reply::json(&r)
            }),
            Box::new(
                |e| matches!(e, Error::InvalidResponse { reason } if reason == "unsupported token type `mac`"),
            ),
        ),
        (
            "negative expires_in",
            Box::new(|n| {
                Reply::json(
                    &json!({"access_token": "at-x", "token_type": "Bearer", "expires_in": -1, "id_token": bed.id_token(n, "at-x", |_| {})}),
                )
            }),
            Box::new(
                |e| matches!(e, Error::InvalidResponse { reason } if reason.contains("expires_in") || reason.contains("token response")),
            ),
        ),
        (
            "huge expires_in",
            Box::new(|n| {
                Reply::json(
                    &json!({"access_token": "at-x", "token_type": "Bearer", "expires_in": u64::MAX, "id_token": bed.id_token(n, "at-x", |_| {})}),
                )
            }),
            Box::new(
                |e| matches!(e, Error::InvalidResponse { reason } if reason.contains("expires_in")),
            ),
        ),
        (
            "expires_in beyond i64 milliseconds",
            Box::new(|n| {
                Reply::json(
                    &json!({"access_token": "at-x", "token_type": "Bearer", "expires_in": 9_300_000_000_000_000u64, "id_token": bed.id_token(n, "at-x", |_| {})}),
                )
            }),
            Box::new(
                |e| matches!(e, Error::InvalidResponse { reason } if reason.contains("expires_in")),
            ),
        ),
        (
            "an OAuth error body (400)",
            Box::new(|_| {
                Reply::raw(400, "{\"error\":\"invalid_grant\",\"error_description\":\"no\"}")
            }),
            Box::new(|e| matches!(e, Error::Provider { error, .. } if error == "invalid_grant")),
        ),
        (
            "no ID token from an OpenID provider",
            Box::new(|_| Reply::json(&json!({"access_token": "at-x", "token_type": "Bearer"}))),
            Box::new(
                |e| matches!(e, Error::IdToken { reason } if reason == "the token response has no ID token"),
            ),
        ),
    ];
    for (case, reply, ok) in &cases {
        let r = bed.login(reply).await;
        match &r {
            Err(e) if ok(e) => println!("{case}: {e:?}"),
            other => panic!("{case}: unexpected {other:?}"),
        }
        bed.assert_untouched(case);
    }
}

#[tokio::test]
async fn an_absurd_date_header_is_ignored_not_fatal() {
    let bed = Bed::new().await;
    for date in [
        "Fri, 31 Dec 99999 23:59:59 GMT",
        "Fri, 31 Dec 262143 23:59:59 GMT",
        "Fri, 31 Dec 9223372036854775807 23:59:59 GMT",
        "Fri, 31 Dec -9223372036854775807 23:59:59 GMT",
        "Mon, 99 Jan 2026 99:99:99 GMT",
    ] {
        // A good token with a broken Date header: the login neither panics nor lets the
        // header shift the clock used for the ID token checks.
        let r = bed
            .login(|n| {
                token_reply("at-date", &bed.id_token(n, "at-date", |_| {})).header("Date", date)
            })
            .await;
        let s = r.unwrap_or_else(|e| panic!("{date}: {e:?}"));
        assert_eq!(s.subject, "alice");
    }
    // A well-formed date far from ours is believed (the device clock may be the wrong
    // one); against it the token is expired: a typed error, and nothing is saved.
    let client = new_client(&bed.hp, bed.dir.path());
    let signed_in = client.restore_session().await.unwrap().unwrap();
    let snapshot = session_files(bed.dir.path());
    let start = client
        .start_login(LoginOptions { scopes: vec!["openid".into()], ..Default::default() })
        .await
        .unwrap();
    let url = url::Url::parse(&start.url).unwrap();
    let nonce = url.query_pairs().find(|(k, _)| k == "nonce").unwrap().1.into_owned();
    bed.hp.set(
        "/token",
        token_reply("at-9999", &bed.id_token(&nonce, "at-9999", |_| {}))
            .header("Date", "Fri, 31 Dec 9999 23:59:59 GMT"),
    );
    let r = client
        .finish_login(&format!(
            "{REDIRECT_URI}?code=c&state={}&iss={}",
            start.state,
            urlencode(bed.hp.issuer())
        ))
        .await;
    let reason = id_token_reason(r, "Date 9999");
    assert!(reason.starts_with("expired: "), "{reason}");
    assert_eq!(session_files(bed.dir.path()), snapshot);
    assert_eq!(client.session(), Some(signed_in));
}

/// The provider rotated (the old refresh token is consumed) and names another subject in
/// the refreshed ID token: proof of another identity. The answer was made durable first, as
/// every refresh answer is, so the check runs on a committed generation: the session ends
/// for every process (`ReauthRequired` recorded), the new refresh token is revoked, the store
/// is cleared, and mallory's tokens never become a session anywhere.
#[tokio::test]
async fn a_refresh_naming_another_subject_ends_the_session_everywhere() {
    let bed = Bed::new().await;
    let iss = bed.hp.issuer().to_string();
    let before = bed.hp.requests_to("/token").len();
    let nonce = bed.baseline.nonce.clone().unwrap();
    bed.hp.set(
        "/token",
        token_reply("at-mallory", &bed.key.sign(&claims(&iss, "mallory", &nonce, "at-mallory"))),
    );
    bed.hp.set("/revoke", Reply::json(&json!({})));
    let r = bed.client.refresh().await;
    match &r {
        Err(Error::IdToken { reason }) => {
            assert_eq!(reason, "refreshed ID token names another subject")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(bed.hp.requests_to("/token").len(), before + 1);
    let sent = bed.hp.requests_to("/token").pop().unwrap();
    assert_eq!(sent.form("grant_type").as_deref(), Some("refresh_token"));
    // The new refresh token was revoked (best effort).
    let revoked = bed.hp.requests_to("/revoke");
    assert!(
        revoked.iter().any(|r| r.form("token").as_deref() == Some("rt-at-mallory")),
        "{revoked:?}"
    );
    // Ended for every process: nothing in memory, nothing in the store, recorded as ended.
    assert_eq!(bed.client.state(), latchkey::LifecycleState::ReauthRequired);
    assert!(bed.client.session().is_none());
    assert!(!bed.dir.path().join("session.json").exists());
    let other = new_client(&bed.hp, bed.dir.path());
    assert!(other.restore_session().await.unwrap().is_none());
    assert_eq!(other.recorded_end().await.unwrap(), Some(latchkey::SessionState::ReauthRequired));
    println!("refresh with another sub: {r:?}");
}

#[tokio::test]
async fn hostile_callbacks_never_reach_the_token_endpoint() {
    let bed = Bed::new().await;
    let iss = urlencode(bed.hp.issuer());
    let evil = urlencode("https://evil.example");
    let (_, state) = bed.start().await;
    let before = bed.hp.requests_to("/token").len();
    let cases: Vec<(String, Expect)> = vec![
        (
            format!("{REDIRECT_URI}?code=c&state=not-{state}&iss={iss}"),
            Box::new(|e| matches!(e, Error::UnknownState)),
        ),
        (
            format!("{REDIRECT_URI}?state={state}&iss={iss}"),
            Box::new(
                |e| matches!(e, Error::InvalidResponse { reason } if reason.contains("neither `code` nor `error`")),
            ),
        ),
        (
            format!("{REDIRECT_URI}?code=c&error=access_denied&state={state}&iss={iss}"),
            Box::new(
                |e| matches!(e, Error::InvalidResponse { reason } if reason.contains("both `code` and `error`")),
            ),
        ),
        (
            format!("{REDIRECT_URI}?code=c&state={state}&iss={iss}&code=attacker"),
            Box::new(|e| matches!(e, Error::RepeatedParameter { name } if name == "code")),
        ),
        (
            format!("{REDIRECT_URI}?code=c&state={state}&iss={iss}&iss={evil}"),
            Box::new(|e| matches!(e, Error::RepeatedParameter { name } if name == "iss")),
        ),
        (
            format!("{REDIRECT_URI}?code=c&state={state}&state={state}&iss={iss}"),
            Box::new(|e| matches!(e, Error::RepeatedParameter { name } if name == "state")),
        ),
        (
            format!("{REDIRECT_URI}?code=c&state={state}"),
            Box::new(|e| matches!(e, Error::MissingIssuer)),
        ),
    ];
    for (url, ok) in &cases {
        let r = bed.client.finish_login(url).await;
        match &r {
            Err(e) if ok(e) => println!("{url}: {e:?}"),
            other => panic!("{url}: unexpected {other:?}"),
        }
        bed.assert_untouched(url);
    }
    // A mismatched iss consumes the pending request (a code is single-use) but never
    // reaches the token endpoint. (The missing-iss case above consumed the first one.)
    let (_, state) = bed.start().await;
    let r =
        bed.client.finish_login(&format!("{REDIRECT_URI}?code=c&state={state}&iss={evil}")).await;
    assert!(
        matches!(&r, Err(Error::IssuerMismatch { actual, .. }) if actual == "https://evil.example"),
        "{r:?}"
    );
    bed.assert_untouched("iss mismatch");
    assert_eq!(bed.hp.requests_to("/token").len(), before, "a hostile callback reached /token");
}

#[tokio::test]
async fn hostile_metadata_is_refused() {
    let bed = Bed::new().await;
    let good = bed.hp.good_metadata();
    let port = url::Url::parse(bed.hp.issuer()).unwrap().port().unwrap();
    let cases: Vec<(&str, Value, Expect)> = vec![
        (
            "issuer differs from the requested one",
            {
                let mut m = good.clone();
                m["issuer"] = json!("https://evil.example");
                m
            },
            Box::new(
                |e| matches!(e, Error::InvalidResponse { reason } if reason.starts_with("discovery document names issuer `https://evil.example`")),
            ),
        ),
        (
            "issuer with a trailing slash",
            {
                let mut m = good.clone();
                m["issuer"] = json!(format!("{}/", bed.hp.issuer()));
                m
            },
            Box::new(
                |e| matches!(e, Error::InvalidResponse { reason } if reason.starts_with("discovery document names issuer")),
            ),
        ),
        (
            "plain http token endpoint on a public host",
            {
                let mut m = good.clone();
                m["token_endpoint"] = json!("http://op.example/token");
                m
            },
            Box::new(
                |e| matches!(e, Error::InsecureUrl { reason } if reason.contains("must use https")),
            ),
        ),
        (
            "plain http jwks_uri on localhost",
            {
                let mut m = good.clone();
                m["jwks_uri"] = json!(format!("http://localhost:{port}/jwks"));
                m
            },
            Box::new(
                |e| matches!(e, Error::InsecureUrl { reason } if reason.contains("localhost") && reason.contains("must use https")),
            ),
        ),
        (
            "plain http userinfo on a private address",
            {
                let mut m = good.clone();
                m["userinfo_endpoint"] = json!("http://10.0.0.1/userinfo");
                m
            },
            Box::new(|e| matches!(e, Error::InsecureUrl { .. })),
        ),
        (
            "no PKCE S256",
            {
                let mut m = good.clone();
                m["code_challenge_methods_supported"] = json!(["plain"]);
                m
            },
            Box::new(|e| matches!(e, Error::Unsupported { feature } if feature == "PKCE S256")),
        ),
        (
            "not JSON",
            Value::String("<html>".into()),
            Box::new(|e| matches!(e, Error::InvalidResponse { .. })),
        ),
    ];
    for (case, metadata, ok) in &cases {
        match metadata {
            Value::String(s) => {
                bed.hp.set("/.well-known/openid-configuration", Reply::raw(200, s.clone()))
            }
            m => bed.hp.set("/.well-known/openid-configuration", Reply::json(m)),
        }
        // A new process discovers afresh; the signed-in one has its metadata cached.
        let client = new_client(&bed.hp, bed.dir.path());
        let r = client.provider().await;
        match &r {
            Err(e) if ok(e) => println!("{case}: {e:?}"),
            other => panic!("{case}: unexpected {other:?}"),
        }
        let start = client.start_login(LoginOptions::default()).await;
        assert!(start.is_err(), "{case}: a login started");
        bed.assert_untouched(case);
    }
}

#[tokio::test]
async fn a_registration_without_client_id_is_refused() {
    let hp = HostileProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = file_client(test_config(hp.issuer(), dir.path(), "app"), dir.path()).unwrap();
    hp.set(
        "/reg",
        Reply::raw(201, "{\"redirect_uris\":[\"dev.latchkey.test:/callback\"],\"registration_access_token\":\"rat-secret\"}"),
    );
    let r = latchkey_e2e::flow::register(&client, None).await;
    match &r {
        Err(Error::InvalidResponse { reason }) => {
            assert_eq!(reason, "registration response: missing field `client_id`");
            assert!(!reason.contains("rat-secret"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(client.registration().is_none());
    println!("registration without client_id: {r:?}");
}

#[tokio::test]
async fn hostile_userinfo_is_refused() {
    let bed = Bed::new().await;
    for (case, reply, want) in [
        (
            "another sub",
            Reply::json(&json!({"sub": "mallory"})),
            "userinfo `sub` differs from the session's",
        ),
        ("no sub", Reply::json(&json!({"name": "x"})), "userinfo has no `sub`"),
        (
            "not an object",
            Reply::json(&json!(["sub", "alice"])),
            "userinfo: a value has the wrong type or is out of range",
        ),
        ("not JSON", Reply::raw(200, "sub=alice"), "userinfo: malformed JSON"),
    ] {
        bed.hp.set("/userinfo", reply);
        match bed.client.userinfo().await {
            Err(Error::InvalidResponse { reason }) => {
                assert!(reason.starts_with(want), "{case}: {reason}")
            }
            other => panic!("{case}: unexpected {other:?}"),
        }
        bed.assert_untouched(case);
    }
}
