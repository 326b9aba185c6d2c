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
    /// Allow `http://` URLs whose host is a loopback address (127.0.0.0/8, ::1) or
    /// `localhost`. Off by default; for development providers and tests only.
    pub allow_insecure_loopback: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_response_bytes: 1024 * 1024,
            allow_insecure_loopback: false,
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

/// The HTTP client used for every provider call. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    config: Arc<HttpConfig>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Installs the ring crypto provider for rustls once per process (reqwest needs one).
pub fn install_crypto_provider() {
    static ONCE: once_cell::sync::OnceCell<()> = once_cell::sync::OnceCell::new();
    ONCE.get_or_init(|| {
        // Err means another part of the process installed a provider first: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl HttpClient {
    /// Builds a client with rustls, the configured timeouts and redirects disabled.
    ///
    /// Fails with [`Error::Config`] when the TLS stack cannot be initialised.
    pub fn new(config: HttpConfig) -> Result<Self> {
        install_crypto_provider();
        let inner = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("latchkey/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::config(format!("HTTP client: {e}")))?;
        Ok(HttpClient { inner, config: Arc::new(config) })
    }

    /// Wraps a reqwest client the app built itself (proxies, pinning, custom roots).
    /// The app is responsible for disabling redirects and setting timeouts on it.
    pub fn with_reqwest(inner: reqwest::Client, config: HttpConfig) -> Self {
        HttpClient { inner, config: Arc::new(config) }
    }

    /// The configuration in force.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// Parses `url` and checks it is https, or http on loopback when allowed.
    ///
    /// Fails with [`Error::InsecureUrl`].
    pub fn check_url(&self, url: &str) -> Result<Url> {
        check_url(url, self.config.allow_insecure_loopback)
    }

    /// GET `url`, with a bearer token when given.
    pub async fn get(
        &self,
        url: &str,
        bearer: Option<&Secret>,
    ) -> std::result::Result<HttpResponse, HttpFailure> {
        let url = self.check_url(url).map_err(not_sent)?;
        let mut req = self.inner.get(url).header(ACCEPT, "application/json");
        if let Some(token) = bearer {
            req = req.header(AUTHORIZATION, format!("Bearer {}", token.expose()));
        }
        self.send(req).await
    }

    /// POST an `application/x-www-form-urlencoded` body.
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
    ) -> std::result::Result<HttpResponse, HttpFailure> {
        let url = self.check_url(url).map_err(not_sent)?;
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let req = self
            .inner
            .post(url)
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        self.send(req).await
    }

    /// POST a JSON body.
    pub async fn post_json(
        &self,
        url: &str,
        body: &serde_json::Value,
    ) -> std::result::Result<HttpResponse, HttpFailure> {
        let url = self.check_url(url).map_err(not_sent)?;
        let req = self
            .inner
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

/// Checks that `url` is https, or http on a loopback host when `allow_loopback` is set.
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

/// Whether the URL's host is a loopback address or `localhost`.
pub fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only form servers send.
fn httpdate_parse(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: i64 = parts[1].parse().ok()?;
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .iter()
        .position(|m| *m == parts[2])? as i64
        + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<i64> = parts[4].split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    if hms.len() != 3 {
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
        assert!(check_url("http://localhost/x", true).is_ok());
        assert!(check_url("ftp://127.0.0.1/x", true).is_err());
        assert!(check_url("not a url", true).is_err());
    }

    #[test]
    fn parses_http_date() {
        let t = httpdate_parse("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(), 784111777);
        assert!(httpdate_parse("yesterday").is_none());
    }
}
