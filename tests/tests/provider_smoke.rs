//! Smoke tests of the test provider and the harness, without the Latchkey client: plain
//! reqwest, PKCE by hand, the headless login driver, counters and fault injection.

// Test code: a failed expectation is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey_e2e::{
    login, Browser, BrowserLogin, Fault, FaultWhen, HarnessError, ProviderOptions, TestProvider,
};
use rand::RngCore as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use url::Url;

const REDIRECT_URI: &str = "http://127.0.0.1/callback";

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn http() -> reqwest::Client {
    latchkey_e2e::loopback_client(Duration::from_secs(30)).expect("http client")
}

async fn discovery(op: &TestProvider) -> Result<Value, Box<dyn std::error::Error>> {
    Ok(http().get(op.discovery_url()).send().await?.error_for_status()?.json().await?)
}

fn endpoint(meta: &Value, name: &str) -> String {
    meta[name].as_str().unwrap_or_else(|| panic!("discovery lacks {name}")).to_string()
}

/// Registers a native public client; `extra` fields are merged into the request.
async fn register(op: &TestProvider, extra: Value) -> Result<Value, Box<dyn std::error::Error>> {
    let meta = discovery(op).await?;
    let mut body = json!({
        "application_type": "native",
        "redirect_uris": [REDIRECT_URI],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "client_name": "latchkey smoke test",
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            body.insert(k.clone(), v.clone());
        }
    }
    let resp = http().post(endpoint(&meta, "registration_endpoint")).json(&body).send().await?;
    let status = resp.status();
    let value: Value = resp.json().await?;
    assert_eq!(status.as_u16(), 201, "registration failed: {value}");
    Ok(value)
}

struct Pkce {
    verifier: String,
    challenge: String,
}

fn random_b64(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn pkce() -> Pkce {
    let verifier = random_b64(32);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce { verifier, challenge }
}

fn authorization_url(meta: &Value, client_id: &str, state: &str, pkce: &Pkce) -> String {
    let mut url = Url::parse(&endpoint(meta, "authorization_endpoint")).expect("auth endpoint");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("scope", "openid profile email offline_access")
        .append_pair("state", state)
        .append_pair("nonce", &random_b64(16))
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256");
    url.to_string()
}

fn query(url: &str) -> std::collections::HashMap<String, String> {
    Url::parse(url).expect("redirect URL").query_pairs().into_owned().collect()
}

/// Tokens of a logged-in test client.
struct Session {
    meta: Value,
    client_id: String,
    tokens: Value,
}

impl Session {
    fn refresh_token(&self) -> String {
        self.tokens["refresh_token"].as_str().expect("refresh_token").to_string()
    }
}

/// Registration + login as alice + code exchange.
async fn logged_in(op: &TestProvider, extra: Value) -> Result<Session, Box<dyn std::error::Error>> {
    let meta = discovery(op).await?;
    let client = register(op, extra).await?;
    let client_id = client["client_id"].as_str().expect("client_id").to_string();
    let pkce = pkce();
    let state = random_b64(16);
    let redirect = login(
        &authorization_url(&meta, &client_id, &state, &pkce),
        &BrowserLogin::default().redirect_prefix(REDIRECT_URI),
    )
    .await?;
    assert!(redirect.starts_with(REDIRECT_URI), "{redirect}");
    let params = query(&redirect);
    assert_eq!(params.get("state"), Some(&state));
    assert_eq!(params.get("iss").map(String::as_str), Some(op.issuer()), "RFC 9207 iss");
    let code = params.get("code").expect("code in redirect");

    let resp = http()
        .post(endpoint(&meta, "token_endpoint"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &client_id),
            ("code_verifier", &pkce.verifier),
        ])
        .send()
        .await?;
    let status = resp.status();
    let tokens: Value = resp.json().await?;
    assert_eq!(status.as_u16(), 200, "code exchange: {tokens}");
    assert!(tokens["access_token"].is_string() && tokens["id_token"].is_string(), "{tokens}");
    assert!(tokens["refresh_token"].is_string(), "no refresh token: {tokens}");
    Ok(Session { meta, client_id, tokens })
}

async fn refresh_with(
    client: &reqwest::Client,
    s: &Session,
    refresh_token: &str,
) -> Result<(u16, Value), reqwest::Error> {
    let resp = client
        .post(endpoint(&s.meta, "token_endpoint"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", &s.client_id),
        ])
        .send()
        .await?;
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

async fn refresh(s: &Session, refresh_token: &str) -> Result<(u16, Value), reqwest::Error> {
    refresh_with(&http(), s, refresh_token).await
}

fn jwt_header(jwt: &str) -> Value {
    let header = jwt.split('.').next().expect("jwt header");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64 header")).expect("json")
}

#[tokio::test]
async fn discovery_advertises_what_latchkey_needs() -> TestResult {
    let op = TestProvider::start(ProviderOptions::default()).await?;
    assert!(op.issuer().starts_with("http://127.0.0.1:"), "{}", op.issuer());
    assert!(op.pid() > 0);
    let meta = discovery(&op).await?;
    assert_eq!(meta["issuer"], op.issuer());
    assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
    for name in [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "userinfo_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
        "end_session_endpoint",
        "registration_endpoint",
    ] {
        assert!(meta[name].as_str().is_some_and(|u| u.starts_with(op.issuer())), "{name}: {meta}");
    }
    assert_eq!(meta["backchannel_logout_supported"], true);
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    let algs = meta["id_token_signing_alg_values_supported"].as_array().expect("algs");
    assert!(algs.contains(&json!("ES256")) && algs.contains(&json!("RS256")), "{algs:?}");
    let scopes = meta["scopes_supported"].as_array().expect("scopes");
    for s in ["openid", "profile", "email", "offline_access"] {
        assert!(scopes.contains(&json!(s)), "{s}");
    }
    // JWKS has an RSA and an EC P-256 key.
    let jwks: Value = http().get(endpoint(&meta, "jwks_uri")).send().await?.json().await?;
    let keys = jwks["keys"].as_array().expect("keys");
    assert!(keys.iter().any(|k| k["kty"] == "RSA" && k["alg"] == "RS256"), "{jwks}");
    assert!(keys.iter().any(|k| k["kty"] == "EC" && k["crv"] == "P-256" && k["alg"] == "ES256"));
    assert!(keys.iter().all(|k| k.get("d").is_none()), "private parts leaked: {jwks}");
    Ok(())
}

#[tokio::test]
async fn code_flow_rotation_and_reuse_detection() -> TestResult {
    let op = TestProvider::start(ProviderOptions::default()).await?;
    let s = logged_in(&op, json!({})).await?;
    assert_eq!(s.tokens["expires_in"], 60, "default access token TTL");
    assert_eq!(jwt_header(s.tokens["id_token"].as_str().unwrap_or_default())["alg"], "RS256");

    let rt0 = s.refresh_token();
    let (status, t1) = refresh(&s, &rt0).await?;
    assert_eq!(status, 200, "{t1}");
    let rt1 = t1["refresh_token"].as_str().expect("rotated").to_string();
    assert_ne!(rt1, rt0, "rotation on every use");
    let (status, t2) = refresh(&s, &rt1).await?;
    assert_eq!(status, 200, "{t2}");
    let rt2 = t2["refresh_token"].as_str().expect("rotated").to_string();
    assert!(rt2 != rt1 && rt2 != rt0);
    assert!(t2["id_token"].is_string());

    // userinfo with the newest access token
    let ui = http()
        .get(endpoint(&s.meta, "userinfo_endpoint"))
        .bearer_auth(t2["access_token"].as_str().unwrap_or_default())
        .send()
        .await?;
    assert_eq!(ui.status().as_u16(), 200);
    let claims: Value = ui.json().await?;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["email"], "alice@example.com");

    let c = op.counters().await?;
    assert_eq!((c.code_grants, c.refresh_grants, c.reuse_detections, c.userinfo), (1, 2, 0, 1));

    // Reuse of the first (consumed) refresh token: invalid_grant, grant revoked.
    let (status, err) = refresh(&s, &rt0).await?;
    assert_eq!(status, 400);
    assert_eq!(err["error"], "invalid_grant");
    let c = op.counters().await?;
    assert_eq!(c.reuse_detections, 1, "{c:?}");
    assert_eq!(c.token_error("invalid_grant"), 1);

    // The newest refresh token died with the grant, and that is not another reuse detection.
    let (status, err) = refresh(&s, &rt2).await?;
    assert_eq!((status, err["error"].as_str()), (400, Some("invalid_grant")), "{err}");
    let c = op.counters().await?;
    assert_eq!((c.reuse_detections, c.refresh_grants, c.token_error("invalid_grant")), (1, 2, 2));

    op.reset().await?;
    assert_eq!(op.counters().await?, latchkey_e2e::Counters::default());
    Ok(())
}

#[tokio::test]
async fn es256_id_tokens_and_runtime_access_token_ttl() -> TestResult {
    let op = TestProvider::start(ProviderOptions {
        access_token_ttl_secs: 5,
        ..ProviderOptions::default()
    })
    .await?;
    let s = logged_in(&op, json!({ "id_token_signed_response_alg": "ES256" })).await?;
    assert_eq!(s.tokens["expires_in"], 5);
    assert_eq!(jwt_header(s.tokens["id_token"].as_str().unwrap_or_default())["alg"], "ES256");
    op.set_access_token_ttl(2).await?;
    let (status, t1) = refresh(&s, &s.refresh_token()).await?;
    assert_eq!(status, 200, "{t1}");
    assert_eq!(t1["expires_in"], 2);
    assert_eq!(jwt_header(t1["id_token"].as_str().unwrap_or_default())["alg"], "ES256");
    Ok(())
}

#[tokio::test]
async fn fault_status_before_leaves_token_valid() -> TestResult {
    let op = TestProvider::start(ProviderOptions::default()).await?;
    let s = logged_in(&op, json!({})).await?;
    op.push_fault(Fault::status(FaultWhen::Before, 503).refresh_only().retry_after(1)).await?;
    assert_eq!(op.pending_faults().await?.len(), 1);

    let resp = http()
        .post(endpoint(&s.meta, "token_endpoint"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &s.refresh_token()),
            ("client_id", &s.client_id),
        ])
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let body: Value = resp.json().await?;
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(op.pending_faults().await?.is_empty(), "consumed");

    let c = op.counters().await?;
    assert_eq!((c.faults_applied, c.refresh_grants), (1, 0));
    assert!(c.token_errors.is_empty(), "injected errors are not provider errors: {c:?}");

    // Same refresh token still works.
    let (status, t1) = refresh(&s, &s.refresh_token()).await?;
    assert_eq!(status, 200, "{t1}");
    assert_eq!(op.counters().await?.reuse_detections, 0);
    Ok(())
}

#[tokio::test]
async fn fault_drop_after_rotates_the_token() -> TestResult {
    let op = TestProvider::start(ProviderOptions::default()).await?;
    let s = logged_in(&op, json!({})).await?;
    op.push_fault(Fault::drop_connection(FaultWhen::After).refresh_only()).await?;

    let rt0 = s.refresh_token();
    let err = refresh(&s, &rt0).await.expect_err("connection must drop");
    assert!(!err.is_status(), "{err}");
    let c = op.counters().await?;
    assert_eq!((c.refresh_grants, c.faults_applied), (1, 1), "provider processed it: {c:?}");

    // The token WAS rotated: presenting it again is a reuse.
    let (status, body) = refresh(&s, &rt0).await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    assert_eq!(op.counters().await?.reuse_detections, 1);
    Ok(())
}

#[tokio::test]
async fn fault_delay_before_is_not_processed_when_client_gave_up() -> TestResult {
    let op = TestProvider::start(ProviderOptions::default()).await?;
    let s = logged_in(&op, json!({})).await?;
    op.push_fault(Fault::delay(FaultWhen::Before, Duration::from_millis(1500)).refresh_only())
        .await?;

    let impatient = latchkey_e2e::loopback_client(Duration::from_millis(300))?;
    let err = refresh_with(&impatient, &s, &s.refresh_token()).await.expect_err("timeout");
    assert!(err.is_timeout(), "{err}");
    tokio::time::sleep(Duration::from_millis(2000)).await;

    let c = op.counters().await?;
    assert_eq!((c.refresh_grants, c.faults_applied), (0, 1), "{c:?}");
    let (status, t1) = refresh(&s, &s.refresh_token()).await?;
    assert_eq!(status, 200, "token untouched: {t1}");
    assert_eq!(op.counters().await?.reuse_detections, 0);
    Ok(())
}

#[tokio::test]
async fn fault_delay_before_then_processed_for_a_patient_client() -> TestResult {
    let op = TestProvider::start(ProviderOptions::default()).await?;
    let s = logged_in(&op, json!({})).await?;
    op.push_fault(Fault::delay(FaultWhen::Before, Duration::from_millis(300)).refresh_only())
        .await?;
    let started = std::time::Instant::now();
    let (status, body) = refresh(&s, &s.refresh_token()).await?;
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(op.counters().await?.refresh_grants, 1);
    Ok(())
}

#[tokio::test]
async fn deny_consent_redirects_with_access_denied() -> TestResult {
    let op = TestProvider::start(ProviderOptions::default()).await?;
    let meta = discovery(&op).await?;
    let client = register(&op, json!({})).await?;
    let client_id = client["client_id"].as_str().expect("client_id");
    let state = random_b64(16);
    let redirect = login(
        &authorization_url(&meta, client_id, &state, &pkce()),
        &BrowserLogin::default().user("bob").deny(),
    )
    .await?;
    assert!(redirect.starts_with(REDIRECT_URI), "{redirect}");
    let params = query(&redirect);
    assert_eq!(params.get("error").map(String::as_str), Some("access_denied"), "{redirect}");
    assert_eq!(params.get("state"), Some(&state));
    assert_eq!(params.get("iss").map(String::as_str), Some(op.issuer()));
    assert!(!params.contains_key("code"));
    Ok(())
}

#[tokio::test]
async fn unknown_user_is_rejected() -> TestResult {
    let op = TestProvider::start(ProviderOptions::default()).await?;
    let meta = discovery(&op).await?;
    let client = register(&op, json!({})).await?;
    let client_id = client["client_id"].as_str().expect("client_id");
    let err = login(
        &authorization_url(&meta, client_id, "s", &pkce()),
        &BrowserLogin::default().user("mallory"),
    )
    .await
    .expect_err("unknown user");
    assert!(matches!(err, HarnessError::LoginRejected { .. }), "{err}");
    Ok(())
}

#[tokio::test]
async fn end_session_in_the_same_browser_sends_backchannel_logout() -> TestResult {
    let op = TestProvider::start(ProviderOptions::default()).await?;
    let meta = discovery(&op).await?;
    let (bc_url, delivered) = latchkey_e2e::listener::one_shot("/backchannel").await?;
    let post_logout = "http://127.0.0.1/logged-out";
    let client = register(
        &op,
        json!({ "backchannel_logout_uri": bc_url, "post_logout_redirect_uris": [post_logout] }),
    )
    .await?;
    let client_id = client["client_id"].as_str().expect("client_id").to_string();
    let browser = Browser::new()?;
    let p = pkce();
    let redirect = browser
        .login(&authorization_url(&meta, &client_id, "st", &p), &BrowserLogin::default())
        .await?;
    let code = query(&redirect).get("code").cloned().expect("code");
    let tokens: Value = http()
        .post(endpoint(&meta, "token_endpoint"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &client_id),
            ("code_verifier", &p.verifier),
        ])
        .send()
        .await?
        .json()
        .await?;
    let id_token = tokens["id_token"].as_str().expect("id_token");

    let mut end = Url::parse(&endpoint(&meta, "end_session_endpoint"))?;
    end.query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair("post_logout_redirect_uri", post_logout)
        .append_pair("state", "bye");
    let after = browser.end_session(end.as_str()).await?;
    assert!(after.starts_with(post_logout), "{after}");
    assert_eq!(query(&after).get("state").map(String::as_str), Some("bye"));

    let request = tokio::time::timeout(Duration::from_secs(5), delivered).await??;
    assert!(request.starts_with("POST /backchannel"), "{request}");
    assert!(request.contains("logout_token="), "{request}");
    let c = op.counters().await?;
    assert_eq!(c.backchannel_logouts, 1, "{c:?}");
    Ok(())
}

#[tokio::test]
async fn provider_exits_when_dropped() -> TestResult {
    let op = TestProvider::start(ProviderOptions::default()).await?;
    let pid = op.pid();
    let issuer = op.issuer().to_string();
    drop(op);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "pid {pid} still there");
    assert!(http().get(format!("{issuer}/jwks")).send().await.is_err());
    Ok(())
}

#[tokio::test]
async fn fault_status_after_rotates_the_token_and_counts_once() -> TestResult {
    let op = TestProvider::start(ProviderOptions::default()).await?;
    let s = logged_in(&op, json!({})).await?;
    op.push_fault(
        Fault::status(FaultWhen::After, 500).refresh_only().body(json!({"error": "server_error"})),
    )
    .await?;
    let rt0 = s.refresh_token();
    let (status, body) = refresh(&s, &rt0).await?;
    assert_eq!((status, body["error"].as_str()), (500, Some("server_error")), "{body}");
    let c = op.counters().await?;
    assert_eq!((c.refresh_grants, c.faults_applied), (1, 1), "{c:?}");
    assert!(c.token_errors.is_empty(), "{c:?}");
    let (status, _) = refresh(&s, &rt0).await?;
    assert_eq!(status, 400, "rotated behind the client's back");
    assert_eq!(op.counters().await?.reuse_detections, 1);
    Ok(())
}

#[tokio::test]
async fn fault_delay_after_answers_late() -> TestResult {
    let op = TestProvider::start(ProviderOptions::default()).await?;
    let s = logged_in(&op, json!({})).await?;
    op.push_fault(Fault::delay(FaultWhen::After, Duration::from_millis(400)).refresh_only())
        .await?;
    let started = std::time::Instant::now();
    let (status, body) = refresh(&s, &s.refresh_token()).await?;
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() >= Duration::from_millis(400));
    // Code grants are not affected by a refresh-only fault.
    assert_eq!(op.counters().await?.faults_applied, 1);
    Ok(())
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_one_wins_and_grant_dies() -> TestResult {
    let op = TestProvider::start(ProviderOptions::default()).await?;
    let s = logged_in(&op, json!({})).await?;
    let rt0 = s.refresh_token();
    let (a, b) = tokio::join!(refresh(&s, &rt0), refresh(&s, &rt0));
    let (a, b) = (a?, b?);
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 400], "{a:?} {b:?}");
    let winner = if a.0 == 200 { a.1 } else { b.1 };
    let c = op.counters().await?;
    assert_eq!((c.refresh_grants, c.reuse_detections), (1, 1), "{c:?}");
    // The winner's new refresh token died with the grant.
    let (status, _) = refresh(&s, winner["refresh_token"].as_str().expect("rt")).await?;
    assert_eq!(status, 400);
    Ok(())
}

#[tokio::test]
async fn admin_revocation_kills_the_grant_without_reuse() -> TestResult {
    let op = TestProvider::start(ProviderOptions::default()).await?;
    let s = logged_in(&op, json!({})).await?;
    assert_eq!(op.revoke_grants(Some("bob")).await?, 0);
    assert_eq!(op.revoke_grants(Some("alice")).await?, 1);
    let (status, body) = refresh(&s, &s.refresh_token()).await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(op.counters().await?.reuse_detections, 0);
    Ok(())
}

fn rt_of(tokens: &Value) -> String {
    tokens["refresh_token"].as_str().expect("refresh_token in the response").to_string()
}

async fn userinfo_status(s: &Session, tokens: &Value) -> Result<u16, reqwest::Error> {
    let resp = http()
        .get(endpoint(&s.meta, "userinfo_endpoint"))
        .bearer_auth(tokens["access_token"].as_str().unwrap_or_default())
        .send()
        .await?;
    Ok(resp.status().as_u16())
}

/// `--reuse-interval`: a consumed refresh token presented again soon after its first use is
/// served from the same grant (which keeps rotating) instead of revoking the grant.
#[tokio::test]
async fn reuse_within_the_interval_is_served_and_the_grant_stays_alive() -> TestResult {
    let op = TestProvider::start(ProviderOptions {
        reuse_interval_secs: Some(60),
        ..Default::default()
    })
    .await?;
    let s = logged_in(&op, json!({})).await?;
    let rt0 = s.refresh_token();
    let (status, t1) = refresh(&s, &rt0).await?;
    assert_eq!(status, 200, "{t1}");
    // rt0 is consumed; presented again within the interval it is served, twice even.
    let (status, t1b) = refresh(&s, &rt0).await?;
    assert_eq!(status, 200, "reuse within the interval: {t1b}");
    let (status, t1c) = refresh(&s, &rt0).await?;
    assert_eq!(status, 200, "{t1c}");
    let (rt1, rt1b, rt1c) = (rt_of(&t1), rt_of(&t1b), rt_of(&t1c));
    assert!(rt1b != rt0 && rt1b != rt1 && rt1c != rt1b, "new tokens each time");
    // The grant is alive: the tokens of the reuse continue the rotation and work.
    let (status, t2) = refresh(&s, &rt1b).await?;
    assert_eq!(status, 200, "{t2}");
    assert_eq!(userinfo_status(&s, &t2).await?, 200);
    let c = op.counters().await?;
    assert_eq!(
        (c.refresh_grants, c.reuse_within_interval, c.reuse_detections, c.grants_revoked),
        (4, 2, 0, 0),
        "{c:?}"
    );
    assert_eq!(c.token_error("invalid_grant"), 0);
    Ok(())
}

/// The admin knob, and what happens once the interval is over: reuse detection as without
/// an interval (invalid_grant, the whole grant revoked).
#[tokio::test]
async fn reuse_after_the_interval_is_detected_and_revokes_the_grant() -> TestResult {
    let op = TestProvider::start(ProviderOptions::default()).await?;
    let s = logged_in(&op, json!({})).await?;
    op.set_reuse_interval(2).await?;
    let rt0 = s.refresh_token();
    let (status, t1) = refresh(&s, &rt0).await?;
    assert_eq!(status, 200, "{t1}");
    let (status, t1b) = refresh(&s, &rt0).await?;
    assert_eq!(status, 200, "within 2 s of the first use: {t1b}");
    // Counted from the first use, not the last reuse.
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    let (status, err) = refresh(&s, &rt0).await?;
    assert_eq!((status, err["error"].as_str()), (400, Some("invalid_grant")), "{err}");
    let c = op.counters().await?;
    assert_eq!((c.reuse_within_interval, c.reuse_detections), (1, 1), "{c:?}");
    assert!(c.grants_revoked >= 1, "{c:?}");
    // Revoked: every token of the grant, from either branch, is dead.
    for rt in [rt_of(&t1), rt_of(&t1b)] {
        let (status, err) = refresh(&s, &rt).await?;
        assert_eq!((status, err["error"].as_str()), (400, Some("invalid_grant")), "{err}");
    }
    assert_eq!(userinfo_status(&s, &t1b).await?, 401);

    // 0 turns it off again: an immediate reuse is detected.
    let s = logged_in(&op, json!({})).await?;
    op.set_reuse_interval(0).await?;
    let rt0 = s.refresh_token();
    assert_eq!(refresh(&s, &rt0).await?.0, 200);
    assert_eq!(refresh(&s, &rt0).await?.0, 400);
    assert_eq!(op.counters().await?.reuse_detections, 2);
    Ok(())
}
