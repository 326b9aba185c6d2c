//! End-to-end test support for Latchkey.
//!
//! - [`op`]: starts the real test provider (node-oidc-provider in `tests/op`) on a free
//!   loopback port and drives its admin API (counters, fault injection, runtime TTLs).
//! - [`browser`]: a headless "user with a browser" that completes the provider's login and
//!   consent pages and returns the redirect to the app.
//! - [`dot`]: starts django-oauth-toolkit (`tests/dot`), the second real provider.
//! - [`provider`]: either provider behind one type, for tests run against both.
//! - [`hostile`]: a malicious provider on loopback serving crafted responses, with
//!   [`jwt`] to mint (and break) the tokens it hands out.
#![forbid(unsafe_code)]
// Test support: a failed expectation is a test failure, reported by the panic.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod browser;
pub mod dot;
mod error;
pub mod flow;
pub mod hostile;
pub mod jwt;
pub mod listener;
pub mod op;
pub mod provider;
pub mod workers;

pub use browser::{deliver, login, Browser, BrowserLogin, Delivery};
pub use error::HarnessError;
pub use op::{Counters, Fault, FaultEndpoint, FaultKind, FaultWhen, ProviderOptions, TestProvider};
pub use provider::{Provider, ProviderKind};

/// Installs rustls' ring crypto provider as the process default, once. reqwest (built with
/// `rustls-no-provider`) panics when it builds a client without one. Safe to call repeatedly
/// and from many threads; an already installed provider is kept.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Whether `host` (as in a URL's host, IPv6 with or without brackets) is a loopback name or
/// address: `localhost`, `127.0.0.0/8` or `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match h.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

/// A reqwest client for talking to loopback services: no redirects followed, no proxy, the
/// given overall timeout.
pub fn loopback_client(timeout: std::time::Duration) -> Result<reqwest::Client, HarnessError> {
    install_crypto_provider();
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .build()?)
}
