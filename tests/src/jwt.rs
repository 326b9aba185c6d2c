//! Minting JWTs for the hostile provider: RS256 with a fixed test key (openidconnect's
//! signer), HS256 with any secret, `alg: none`, and raw header/claims so a test can break
//! any part of a token on purpose.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openidconnect::core::{CoreHmacKey, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey};
use openidconnect::{JsonWebKeyId, PrivateSigningKey};
use serde_json::{json, Value};
use sha2::Digest;

/// The test key's private half (PKCS#1 PEM). Test material only, never used elsewhere.
pub const RSA_PEM: &str = include_str!("../fixtures/hostile-rsa.pem");
/// A second, unrelated key (for a JWKS with a duplicate `kid`).
pub const RSA_PEM_2: &str = include_str!("../fixtures/hostile-rsa-2.pem");
/// The test key's public half (SPKI PEM): the "secret" of the algorithm-confusion attack.
pub const RSA_PUBLIC_PEM: &str = include_str!("../fixtures/hostile-rsa.pub.pem");

/// An RSA signing key with its `kid`.
pub struct TestKey {
    key: CoreRsaPrivateSigningKey,
    kid: String,
}

impl TestKey {
    /// The main test key under `kid`.
    pub fn main(kid: &str) -> TestKey {
        TestKey::from_pem(RSA_PEM, kid)
    }

    /// The second test key under `kid`.
    pub fn second(kid: &str) -> TestKey {
        TestKey::from_pem(RSA_PEM_2, kid)
    }

    fn from_pem(pem: &str, kid: &str) -> TestKey {
        let key = CoreRsaPrivateSigningKey::from_pem(pem, Some(JsonWebKeyId::new(kid.into())))
            .expect("the fixture key parses");
        TestKey { key, kid: kid.to_string() }
    }

    /// The key's `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        serde_json::to_value(self.key.as_verification_key()).expect("a JWK serializes")
    }

    /// `claims` signed RS256 with a header naming this key.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(&json!({"alg": "RS256", "typ": "JWT", "kid": self.kid}), claims)
    }

    /// `claims` signed RS256 under an arbitrary header (e.g. another `kid` or `typ`).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = signing_input(header, claims);
        let sig = self
            .key
            .sign(&CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, input.as_bytes())
            .expect("RS256 signs");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

/// A JWKS document holding `keys`.
pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

/// `claims` signed HS256 with `secret` under `header` (which should say `"alg": "HS256"`).
pub fn sign_hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = signing_input(header, claims);
    let sig = CoreHmacKey::new(secret)
        .sign(&CoreJwsSigningAlgorithm::HmacSha256, input.as_bytes())
        .expect("HS256 signs");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// An unsecured JWT (`alg: none`, empty signature).
pub fn unsigned(claims: &Value) -> String {
    format!("{}.", signing_input(&json!({"alg": "none", "typ": "JWT"}), claims))
}

/// `token` with one byte of its signature changed.
pub fn tamper_signature(token: &str) -> String {
    let (input, sig) = token.rsplit_once('.').expect("a JWS has three parts");
    let mut bytes = URL_SAFE_NO_PAD.decode(sig).expect("the signature is base64url");
    bytes[0] ^= 0x01;
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The `at_hash` of an access token for an RS256 ID token (OIDC Core §3.1.3.6).
pub fn at_hash(access_token: &str) -> String {
    let digest = sha2::Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

fn signing_input(header: &Value, claims: &Value) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("JSON encodes"));
    format!("{}.{}", part(header), part(claims))
}
