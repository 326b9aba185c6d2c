//! Entry points for the cargo-fuzz targets in `fuzz/` (feature `fuzzing`; not API, hidden
//! from the docs). Each takes arbitrary bytes, runs one decoder of untrusted input and
//! must return without panicking, whatever the bytes; errors are expected and ignored.
//! Nothing here touches the network; `sqlite_rows` writes a temporary database only.

use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use openidconnect::core::{CoreIdToken, CoreJsonWebKeySet};
use rusqlite::types::Value;

use crate::http::{HttpClient, HttpConfig, HttpResponse};
use crate::oidc::jwks::Jwks;
use crate::oidc::token::TokenResponse;
use crate::oidc::{callback, id_token, logout_token, response, ProviderMetadata};
use crate::store::SessionBlob;
use crate::Session;

/// The issuer the token targets expect.
const ISSUER: &str = "https://op.example";
/// The client the token targets expect.
const CLIENT_ID: &str = "native-app";
/// A fixed JWKS (an RSA and an EC key) for the token targets.
const KEYS: &str = r#"{"keys":[
 {"kty":"RSA","kid":"r1","use":"sig","alg":"RS256","e":"AQAB",
  "n":"wW9TkSbcn5FV3iUJ-812sqTvwTGCFrDm6vD2U-g23gn6rrBdFZQbf2bgEnSkolph6CanOYTQ1lKVhKjHLd6Q4MDVGidbVBhESxib2YIzJVUS-0oQgizkBEJxyHI4Zl3xX_sdA_yegLUi-Ykt_gaMPSw_vpxe-pBxu-jd14i-jDfwoPJUdF8ZJGS9orCPRiHCYLDgOscC9XibH9rUbTvG8q4bAPx9Ox6malx4OLvU3pXVjew6LG3iBi2YhpCWe6voMvZJYXqC1n5Mk_KOdGcCFtDgu3I56SGQx_DMMLV2Y6mYF2fO3Q3NXE8XlT2tL8PwsCmk5SznTpTtJh0X2w"},
 {"kty":"EC","kid":"e1","use":"sig","crv":"P-256",
  "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

fn text(data: &[u8]) -> &str {
    std::str::from_utf8(data).unwrap_or("")
}

fn response_of(data: &[u8]) -> HttpResponse {
    HttpResponse { status: 200, headers: Default::default(), body: data.to_vec() }
}

fn jwks() -> &'static Jwks {
    static J: OnceLock<Jwks> = OnceLock::new();
    J.get_or_init(|| {
        // Constant input: the fixed key set parses (checked by the unit test below).
        let keys: CoreJsonWebKeySet = serde_json::from_str(KEYS).unwrap_or_else(|_| {
            serde_json::from_str(r#"{"keys":[]}"#).unwrap_or_else(|_| unreachable!())
        });
        crate::http::install_crypto_provider();
        let http = HttpClient::with_reqwest(reqwest::Client::new(), HttpConfig::default());
        Jwks::preloaded(http, "https://op.example/jwks".into(), keys)
    })
}

/// The authorization redirect parser and the RFC 9207 check.
pub fn callback(data: &[u8]) {
    if let Ok(p) = callback::parse(text(data)) {
        let _ = callback::check_issuer(&p, ISSUER, true);
        let _ = (p.state(), p.iss());
    }
}

/// ID token decoding and validation against the fixed keys, and the description of a
/// token that does not parse.
pub fn id_token(data: &[u8]) {
    let raw = text(data);
    let _ = id_token::malformed(raw);
    let _ = CoreIdToken::from_str(raw);
    let secret = crate::Secret::new(raw);
    let exp = id_token::Expectations {
        issuer: ISSUER,
        client_id: CLIENT_ID,
        nonce: id_token::NonceRule::IfPresent(Some("n")),
        access_token: Some(&secret),
        subject: Some("alice"),
        auth_time: Some(1),
        now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        skew: Duration::from_secs(60),
    };
    let _ = futures::executor::block_on(id_token::validate(&secret, jwks(), &exp));
}

/// Logout token decoding and validation against the fixed keys.
pub fn logout_token(data: &[u8]) {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let _ = futures::executor::block_on(logout_token::validate(
        text(data),
        jwks(),
        ISSUER,
        CLIENT_ID,
        now,
        Duration::from_secs(60),
    ));
}

/// Discovery metadata parsing.
pub fn metadata(data: &[u8]) {
    if let Ok(m) = response::parse_json::<ProviderMetadata>(&response_of(data), "metadata") {
        let _ = ProviderMetadata::require(&m.jwks_uri, "jwks_uri");
    }
}

/// JWKS parsing.
pub fn jwks_document(data: &[u8]) {
    let _ = response::parse_json::<CoreJsonWebKeySet>(&response_of(data), "JWKS");
}

/// Token response parsing, as a success body and as an error body.
pub fn token_response(data: &[u8]) {
    let _ = response::parse_json::<TokenResponse>(&response_of(data), "token response");
    let mut err = response_of(data);
    err.status = 400;
    let _ = response::check_status(&err);
}

/// Session blob decoding, and the file store's account-name decoding.
pub fn session_blob(data: &[u8]) {
    if let Ok(s) = Session::from_blob(&SessionBlob::new(1, 1, data.to_vec())) {
        let _ = (s.to_blob(), s.token_hash(), format!("{s:?}"));
    }
    let _ = crate::store::decode_account(text(data));
}

/// A column value chosen by the fuzzer: NULL, an integer, a real or text.
fn value(data: &mut &[u8]) -> Value {
    let Some((&tag, rest)) = data.split_first() else { return Value::Null };
    *data = rest;
    match tag % 4 {
        0 => Value::Null,
        1 => {
            let mut b = [0u8; 8];
            let n = data.len().min(8);
            b[..n].copy_from_slice(&data[..n]);
            *data = &data[n..];
            Value::Integer(i64::from_le_bytes(b))
        }
        2 => Value::Real(f64::from(tag)),
        _ => {
            let n = data.iter().position(|&b| b == 0xff).unwrap_or(data.len());
            let s = String::from_utf8_lossy(&data[..n]).into_owned();
            *data = data.get(n + 1..).unwrap_or(&[]);
            Value::Text(s)
        }
    }
}

/// Generation and journal rows holding fuzzed values (any SQLite type in any column),
/// decoded by the coordinator.
pub fn sqlite_rows(data: &[u8]) {
    static RT: OnceLock<Option<(tokio::runtime::Runtime, crate::lock::Coordinator)>> =
        OnceLock::new();
    let Some((rt, coordinator)) = RT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
        let dir = std::env::temp_dir().join(format!("latchkey-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let c = crate::lock::Coordinator::open(
            dir.join("lock.db"),
            crate::lock::CoordinatorConfig::default(),
            Arc::new(crate::SystemClock),
        )
        .ok()?;
        Some((rt, c))
    }) else {
        return;
    };
    let mut d = data;
    let generation: Vec<Value> = (0..4).map(|_| value(&mut d)).collect();
    let journal: Vec<Value> = (0..7).map(|_| value(&mut d)).collect();
    rt.block_on(async {
        let wrote = coordinator
            .inner
            .blocking(move |_, conn| {
                conn.execute(
                    "INSERT OR REPLACE INTO generation
                     (account, generation, token_hash, state, updated_at_ms)
                     VALUES ('f', ?1, ?2, ?3, ?4)",
                    rusqlite::params_from_iter(generation),
                )?;
                conn.execute(
                    "INSERT OR REPLACE INTO journal (account, holder, fence, from_generation,
                     phase, new_token_hash, started_at_ms, updated_at_ms)
                     VALUES ('f', ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    rusqlite::params_from_iter(journal),
                )?;
                Ok(())
            })
            .await;
        if wrote.is_ok() {
            let _ = coordinator.generation("f").await;
            let _ = coordinator.journal("f").await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_point_takes_junk() {
        assert!(serde_json::from_str::<CoreJsonWebKeySet>(KEYS).is_ok());
        for input in [&b""[..], b"{}", b"\xff\xfe", b"a.b.c", b"app:/cb?code=c&state=s&code=d"] {
            callback(input);
            id_token(input);
            logout_token(input);
            metadata(input);
            jwks_document(input);
            token_response(input);
            session_blob(input);
            sqlite_rows(input);
        }
        sqlite_rows(b"\x01\xff\xff\xff\xff\xff\xff\xff\xff\x03abc\xff");
    }
}
