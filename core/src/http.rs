//! The HTTP layer: one injected reqwest client with timeouts, no redirects, a response-size
//! cap and the https rule for provider URLs.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, DATE, RETRY_AFTER};
use url::Url;

use crate::error::{Error, Result};
use crate::secret::Secret;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Time allowed to open a connection (default 10 s).
    pub connect_timeout: Duration,
    /// Time allowed for a whole request and response (default 30 s).
    pub request_timeout: Duration,
    /// Largest response body accepted, in bytes (default 1 MiB).
    pub max_response_bytes: usize,
    /// Allow `http://` URLs whose host is a loopback IP literal (127.0.0.0/8, ::1), for the
    /// issuer and every endpoint discovered from it. Host names, `localhost` included, never
    /// qualify: a name can resolve elsewhere. Off by default; for development providers and
    /// tests only.
    pub allow_insecure_loopback: bool,
    /// Which certificate authorities TLS trusts.
    pub trust: TrustRoots,
}

/// The certificate authorities trusted for https.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrustRoots {
    /// The operating system's verifier and trust store (rustls-platform-verifier): honours
    /// user-installed and enterprise roots. The default on iOS, macOS, Linux and Windows.
    /// On Android it needs the verifier's JNI initialisation with the app's Context.
    Platform,
    /// Mozilla's root store compiled into the library (webpki-roots). Needs no platform
    /// set-up; the default on Android. Also used when the platform verifier cannot be
    /// built (e.g. a container without any CA certificates).
    Bundled,
    /// Exactly these roots (DER-encoded certificates), e.g. a private CA.
    Custom(Vec<Vec<u8>>),
}

impl Default for TrustRoots {
    fn default() -> Self {
        if cfg!(target_os = "android") {
            TrustRoots::Bundled
        } else {
            TrustRoots::Platform
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_response_bytes: 1024 * 1024,
            allow_insecure_loopback: false,
            trust: TrustRoots::default(),
        }
    }
}

/// A response read fully into memory (bounded by [`HttpConfig::max_response_bytes`]).
#[derive(Clone)]
pub struct HttpResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Response body. May hold token values: never log it.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl HttpResponse {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The server's clock from the `Date` header, if present and valid.
    pub fn server_date(&self) -> Option<SystemTime> {
        let v = self.headers.get(DATE)?.to_str().ok()?;
        httpdate_parse(v)
    }

    /// The `Retry-After` header as a delay (seconds form only).
    pub fn retry_after(&self) -> Option<Duration> {
        let v = self.headers.get(RETRY_AFTER)?.to_str().ok()?;
        v.trim().parse::<u64>().ok().map(Duration::from_secs)
    }
}

/// Why a request failed, and whether the provider may have processed it anyway.
#[derive(Debug, Clone)]
pub struct HttpFailure {
    /// The error to report.
    pub error: Error,
    /// `false` when the request certainly never reached the provider (connection refused,
    /// DNS); `true` when it may have been processed (timeout or broken connection after
    /// sending). A refresh whose request may have been processed may have consumed the
    /// refresh token.
    pub maybe_processed: bool,
}

impl From<HttpFailure> for Error {
    fn from(f: HttpFailure) -> Self {
        f.error
    }
}

/// The HTTP client used for every provider call. Cheap to clone; clones share one
/// connection pool.
///
/// The TLS stack (certificate verifier, root store, connection pool) is built on the first
/// request, not when the client is created: a process that only serves a fresh token from
/// the stored session never pays for it.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<once_cell::sync::OnceCell<reqwest::Client>>,
    /// Custom roots, parsed when the client was created.
    roots: Option<Arc<rustls::RootCertStore>>,
    config: Arc<HttpConfig>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Installs the ring crypto provider for rustls once per process (reqwest needs one).
pub(crate) fn install_crypto_provider() {
    static ONCE: once_cell::sync::OnceCell<()> = once_cell::sync::OnceCell::new();
    ONCE.get_or_init(|| {
        // Err means another part of the process installed a provider first: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl HttpClient {
    /// Creates a client with rustls, the configured timeouts and redirects disabled. The
    /// TLS stack itself is built on the first request.
    ///
    /// Fails with [`Error::Config`] when a custom root certificate cannot be parsed.
    /// Touches no persisted state.
    pub fn new(config: HttpConfig) -> Result<Self> {
        let roots = match &config.trust {
            TrustRoots::Custom(ders) => {
                let mut roots = rustls::RootCertStore::empty();
                for der in ders {
                    roots
                        .add(rustls::pki_types::CertificateDer::from(der.clone()))
                        .map_err(|e| Error::config(format!("custom root certificate: {e}")))?;
                }
                Some(Arc::new(roots))
            }
            TrustRoots::Platform | TrustRoots::Bundled => None,
        };
        Ok(HttpClient { inner: Arc::default(), roots, config: Arc::new(config) })
    }

    /// Wraps a reqwest client the app built itself (proxies, pinning, custom roots).
    /// The app is responsible for disabling redirects and setting timeouts on it.
    pub fn with_reqwest(inner: reqwest::Client, config: HttpConfig) -> Self {
        HttpClient {
            inner: Arc::new(once_cell::sync::OnceCell::with_value(inner)),
            roots: None,
            config: Arc::new(config),
        }
    }

    /// The reqwest client, built on first use (shared by every clone).
    fn client(&self) -> std::result::Result<&reqwest::Client, HttpFailure> {
        self.inner.get_or_try_init(|| self.build()).map_err(not_sent)
    }

    fn build(&self) -> Result<reqwest::Client> {
        install_crypto_provider();
        let config = &self.config;
        let base = || {
            reqwest::Client::builder()
                .connect_timeout(config.connect_timeout)
                .timeout(config.request_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("latchkey/", env!("CARGO_PKG_VERSION")))
        };
        let http_err = |e: reqwest::Error| Error::config(format!("HTTP client: {e}"));
        let with_roots = |roots: rustls::RootCertStore| {
            base().tls_backend_preconfigured(rustls_config(roots)?).build().map_err(http_err)
        };
        match (&config.trust, &self.roots) {
            (TrustRoots::Custom(_), Some(roots)) => with_roots(roots.as_ref().clone()),
            (TrustRoots::Platform, _) => match base().build() {
                Ok(c) => Ok(c),
                Err(e) => {
                    tracing::warn!(error = %e, "platform certificate verifier unavailable; using the bundled roots");
                    with_roots(bundled_roots())
                }
            },
            _ => with_roots(bundled_roots()),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// Parses `url` and checks it is https, or http on loopback when allowed.
    ///
    /// Fails with [`Error::InsecureUrl`].
    pub(crate) fn check_url(&self, url: &str) -> Result<Url> {
        check_url(url, self.config.allow_insecure_loopback)
    }

    /// GET `url`, with a bearer token when given.
    pub(crate) async fn get(
        &self,
        url: &str,
        bearer: Option<&Secret>,
    ) -> std::result::Result<HttpResponse, HttpFailure> {
        let url = self.check_url(url).map_err(not_sent)?;
        let mut req = self.client()?.get(url).header(ACCEPT, "application/json");
        if let Some(token) = bearer {
            req = req.header(AUTHORIZATION, format!("Bearer {}", token.expose()));
        }
        self.send(req).await
    }

    /// POST an `application/x-www-form-urlencoded` body.
    pub(crate) async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
    ) -> std::result::Result<HttpResponse, HttpFailure> {
        let url = self.check_url(url).map_err(not_sent)?;
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let req = self
            .client()?
            .post(url)
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        self.send(req).await
    }

    /// POST a JSON body.
    pub(crate) async fn post_json(
        &self,
        url: &str,
        body: &serde_json::Value,
    ) -> std::result::Result<HttpResponse, HttpFailure> {
        let url = self.check_url(url).map_err(not_sent)?;
        let req = self
            .client()?
            .post(url)
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        self.send(req).await
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> std::result::Result<HttpResponse, HttpFailure> {
        let mut resp = req.send().await.map_err(classify)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let limit = self.config.max_response_bytes;
        if resp.content_length().is_some_and(|n| n as usize > limit) {
            return Err(HttpFailure {
                error: Error::ResponseTooLarge { limit },
                maybe_processed: true,
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > limit {
                return Err(HttpFailure {
                    error: Error::ResponseTooLarge { limit },
                    maybe_processed: true,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse { status, headers, body })
    }
}

fn bundled_roots() -> rustls::RootCertStore {
    rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }
}

/// A rustls client configuration on the ring provider with `roots`.
fn rustls_config(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn not_sent(error: Error) -> HttpFailure {
    HttpFailure { error, maybe_processed: false }
}

fn classify(e: reqwest::Error) -> HttpFailure {
    // reqwest's messages carry the URL; strip it so query strings never reach a log.
    let e = e.without_url();
    if e.is_timeout() {
        return HttpFailure { error: Error::Timeout, maybe_processed: true };
    }
    let maybe_processed = !e.is_connect() && !e.is_builder();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    HttpFailure { error: Error::Network { message }, maybe_processed }
}

/// Checks that `url` is https, or http on a loopback IP literal (127.0.0.0/8, ::1) when
/// `allow_loopback` is set.
///
/// Fails with [`Error::InsecureUrl`] for any other URL: plain http to a host name
/// (`localhost` included) or to a non-loopback address, another scheme, or a malformed URL.
/// Touches no persisted state.
pub fn check_url(url: &str, allow_loopback: bool) -> Result<Url> {
    let parsed = Url::parse(url)
        .map_err(|e| Error::InsecureUrl { reason: format!("`{url}` is not a URL: {e}") })?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if allow_loopback && is_loopback(&parsed) => Ok(parsed),
        "http" if is_loopback(&parsed) => Err(Error::InsecureUrl {
            reason: format!("`{}` uses http; allow insecure loopback to use it", origin(&parsed)),
        }),
        _ => Err(Error::InsecureUrl { reason: format!("`{}` must use https", origin(&parsed)) }),
    }
}

fn origin(u: &Url) -> String {
    u.origin().ascii_serialization()
}

/// Whether the URL's host is a loopback IP literal (127.0.0.0/8 or ::1). Host names,
/// `localhost` included, are not: they go through name resolution, which can point
/// anywhere. IPv4-mapped IPv6 forms (`::ffff:127.0.0.1`) are not accepted either.
pub fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(_)) | None => false,
    }
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only form servers send.
/// `None` for anything else, including out-of-range fields and years outside 1970–9999
/// (the form has four year digits), so a hostile header can never overflow the arithmetic.
fn httpdate_parse(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" || parts[3].len() != 4 {
        return None;
    }
    let day: i64 = parts[1].parse().ok()?;
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .iter()
        .position(|m| *m == parts[2])? as i64
        + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<i64> = parts[4].split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    if hms.len() != 3
        || !(1970..=9999).contains(&year)
        || !(1..=31).contains(&day)
        || !(0..24).contains(&hms[0])
        || !(0..60).contains(&hms[1])
        || !(0..61).contains(&hms[2])
    {
        return None;
    }
    // Days from civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    u64::try_from(secs).ok().map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_rules() {
        assert!(check_url("https://op.example/x", false).is_ok());
        assert!(check_url("http://op.example/x", true).is_err());
        assert!(check_url("http://127.0.0.1:8080/x", false).is_err());
        assert!(check_url("http://127.0.0.1:8080/x", true).is_ok());
        assert!(check_url("http://[::1]:8080/x", true).is_ok());
        assert!(check_url("ftp://127.0.0.1/x", true).is_err());
        assert!(check_url("not a url", true).is_err());
    }

    #[test]
    fn loopback_exception_is_for_ip_literals_only() {
        let allowed = [
            "http://127.0.0.1/x",
            "http://127.0.0.1:1/x",
            "http://127.1.2.3:8080/x",
            "http://127.255.255.254/x",
            "http://[::1]/x",
            "http://[0:0:0:0:0:0:0:1]:9/x",
            // The URL parser turns these IPv4 spellings into 127.0.0.1.
            "http://2130706433/x",
            "http://0x7f.0.0.1/x",
        ];
        for u in allowed {
            assert!(check_url(u, true).is_ok(), "{u}");
            assert!(
                matches!(check_url(u, false), Err(Error::InsecureUrl { ref reason }) if reason.contains("allow insecure loopback")),
                "{u}"
            );
        }
        let refused = [
            "http://localhost/x",
            "http://LOCALHOST:8080/x",
            "http://localhost./x",
            "http://sub.localhost/x",
            "http://127.0.0.1.nip.io/x",
            "http://loopback/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://[::2]/x",
            "http://128.0.0.1/x",
            "http://0.0.0.0/x",
            "http://10.0.0.1/x",
            "http://[::]/x",
        ];
        for u in refused {
            assert!(
                matches!(check_url(u, true), Err(Error::InsecureUrl { ref reason }) if reason.contains("must use https")),
                "{u}: {:?}",
                check_url(u, true)
            );
        }
        // https is never restricted to loopback.
        assert!(check_url("https://localhost/x", false).is_ok());
    }

    #[test]
    fn client_check_url_follows_the_config() {
        let on =
            HttpClient::new(HttpConfig { allow_insecure_loopback: true, ..Default::default() })
                .unwrap();
        assert!(on.check_url("http://127.0.0.1:4/x").is_ok());
        assert!(matches!(on.check_url("http://localhost:4/x"), Err(Error::InsecureUrl { .. })));
        let off = HttpClient::new(HttpConfig::default()).unwrap();
        assert!(matches!(off.check_url("http://127.0.0.1:4/x"), Err(Error::InsecureUrl { .. })));
    }

    #[test]
    fn every_trust_choice_builds_a_client() {
        for trust in [TrustRoots::Platform, TrustRoots::Bundled, TrustRoots::Custom(vec![])] {
            let c =
                HttpClient::new(HttpConfig { trust: trust.clone(), ..Default::default() }).unwrap();
            // Nothing of the TLS stack exists until the first request needs it.
            assert!(c.inner.get().is_none(), "{trust:?}: built eagerly");
            let clone = c.clone();
            assert!(c.client().is_ok(), "{trust:?}");
            // Clones share the one client built.
            assert!(clone.inner.get().is_some(), "{trust:?}: a clone built its own");
        }
        let bad = HttpConfig {
            trust: TrustRoots::Custom(vec![b"not DER".to_vec()]),
            ..Default::default()
        };
        assert!(matches!(HttpClient::new(bad), Err(Error::Config { .. })));
    }

    #[test]
    fn parses_http_date() {
        let t = httpdate_parse("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(), 784111777);
        assert!(httpdate_parse("yesterday").is_none());
        let t = httpdate_parse("Fri, 31 Dec 9999 23:59:59 GMT").unwrap();
        assert_eq!(t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(), 253402300799);
    }

    #[test]
    fn absurd_http_dates_are_ignored() {
        for d in [
            "Fri, 31 Dec 99999 23:59:59 GMT",
            "Fri, 31 Dec 262143 23:59:59 GMT",
            "Fri, 31 Dec 9223372036854775807 23:59:59 GMT",
            "Fri, 31 Dec -9223372036854775807 23:59:59 GMT",
            "Fri, 31 Dec 1969 23:59:59 GMT",
            "Fri, 31 Dec 0001 23:59:59 GMT",
            "Fri, 31 Dec -001 23:59:59 GMT",
            "Mon, 99 Jan 2026 10:00:00 GMT",
            "Mon, 01 Jan 2026 24:00:00 GMT",
            "Mon, 01 Jan 2026 10:60:00 GMT",
            "Mon, 01 Jan 2026 10:00:99999999999999999 GMT",
            "Mon, 01 Jan 2026 10:00 GMT",
            "Mon, 01 Foo 2026 10:00:00 GMT",
            "Mon, 01 Jan 2026 10:00:00 UTC",
        ] {
            assert!(httpdate_parse(d).is_none(), "{d}");
        }
    }
}
