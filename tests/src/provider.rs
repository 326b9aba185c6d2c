//! The real providers the end-to-end tests run against, behind one type, so a test is
//! written once and run against each: node-oidc-provider ([`crate::op`], with counters and
//! fault injection) and django-oauth-toolkit ([`crate::dot`], without either).
//!
//! Both serve an issuer `http://127.0.0.1:PORT`, open dynamic registration of the tests'
//! public native client, the users `alice` and `bob` (their login name is the `sub`), login
//! and consent pages the [`crate::browser`] drives, refresh-token rotation and reuse
//! detection that revokes the whole family.

use std::fmt;

use crate::dot::{DotOptions, DotProvider};
use crate::op::{Counters, ProviderOptions, TestProvider};
use crate::HarnessError;

/// Which provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// node-oidc-provider (`tests/op`).
    Node,
    /// django-oauth-toolkit (`tests/dot`).
    Dot,
}

impl ProviderKind {
    /// Every provider, in the order tests run them.
    pub const ALL: [ProviderKind; 2] = [ProviderKind::Node, ProviderKind::Dot];

    /// Starts this provider with access tokens living `access_token_ttl_secs`.
    pub async fn start(self, access_token_ttl_secs: u64) -> Result<Provider, HarnessError> {
        match self {
            ProviderKind::Node => {
                TestProvider::start(ProviderOptions { access_token_ttl_secs, ..Default::default() })
                    .await
                    .map(Provider::Node)
            }
            ProviderKind::Dot => {
                DotProvider::start(DotOptions { access_token_ttl_secs, ..Default::default() })
                    .await
                    .map(Provider::Dot)
            }
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProviderKind::Node => "node-oidc-provider",
            ProviderKind::Dot => "django-oauth-toolkit",
        })
    }
}

/// A running provider of either kind; stopped on drop.
#[derive(Debug)]
pub enum Provider {
    /// node-oidc-provider.
    Node(TestProvider),
    /// django-oauth-toolkit.
    Dot(DotProvider),
}

impl Provider {
    /// Which one this is.
    pub fn kind(&self) -> ProviderKind {
        match self {
            Provider::Node(_) => ProviderKind::Node,
            Provider::Dot(_) => ProviderKind::Dot,
        }
    }

    /// The issuer, `http://127.0.0.1:PORT`.
    pub fn issuer(&self) -> &str {
        match self {
            Provider::Node(p) => p.issuer(),
            Provider::Dot(p) => p.issuer(),
        }
    }

    /// The node provider, for what only it can do (counters, faults, admin revocation).
    pub fn node(&self) -> Option<&TestProvider> {
        match self {
            Provider::Node(p) => Some(p),
            Provider::Dot(_) => None,
        }
    }

    /// What the provider served, where it counts (node only; `None` for
    /// django-oauth-toolkit).
    pub async fn counters(&self) -> Result<Option<Counters>, HarnessError> {
        match self {
            Provider::Node(p) => p.counters().await.map(Some),
            Provider::Dot(_) => Ok(None),
        }
    }

    /// The provider's last log lines, for failure messages.
    pub fn log_tail(&self) -> String {
        match self {
            Provider::Node(p) => p.stderr_tail(),
            Provider::Dot(p) => p.stderr_tail(),
        }
    }
}

/// Declares each listed `async fn NAME(kind: ProviderKind)` of the calling test file as two
/// tests, `node::NAME` and `dot::NAME`. Prefix the list with `multi_thread;` for a
/// multi-threaded runtime.
///
/// ```ignore
/// async fn signs_in(kind: ProviderKind) { /* ... */ }
/// latchkey_e2e::for_each_provider!(signs_in);
/// ```
#[macro_export]
macro_rules! for_each_provider {
    (multi_thread; $($name:ident),+ $(,)?) => {
        $crate::for_each_provider!(@mod node, Node, tokio::test(flavor = "multi_thread"), $($name),+);
        $crate::for_each_provider!(@mod dot, Dot, tokio::test(flavor = "multi_thread"), $($name),+);
    };
    ($($name:ident),+ $(,)?) => {
        $crate::for_each_provider!(@mod node, Node, tokio::test, $($name),+);
        $crate::for_each_provider!(@mod dot, Dot, tokio::test, $($name),+);
    };
    (@mod $module:ident, $kind:ident, $test:meta, $($name:ident),+) => {
        mod $module {
            $(
                #[$test]
                async fn $name() {
                    super::$name($crate::ProviderKind::$kind).await
                }
            )+
        }
    };
}

/// Presents `refresh_token` to the token endpoint directly, as a client that kept an old
/// copy would. Returns the HTTP status and the body. Used to show that a provider really
/// revoked a token (or a whole family).
pub async fn raw_refresh(
    token_endpoint: &str,
    client_id: &str,
    refresh_token: &str,
) -> Result<(u16, String), HarnessError> {
    let http = crate::loopback_client(std::time::Duration::from_secs(10))?;
    let resp = http
        .post(token_endpoint)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client_id),
        ])
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await.unwrap_or_default()))
}
