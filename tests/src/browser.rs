//! A headless user: plays the browser in the authorization code flow against the test
//! providers' login and consent pages (`tests/op/server.js`, and the Django pages of
//! `tests/dot`), with its own cookie jar. Each form is posted with its hidden inputs (CSRF
//! tokens, the authorization request's parameters).
//!
//! Only loopback URLs are ever requested; redirects are followed by hand until the first
//! `Location` that goes back to the app.

use std::time::Duration;

use url::Url;

use crate::{is_loopback_host, HarnessError};

/// Default bound on requests in one flow.
pub const DEFAULT_MAX_STEPS: usize = 20;

/// How the user answers the provider's pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserLogin {
    /// Login name typed on the login page (`alice` or `bob` exist). Default `alice`.
    pub user: String,
    /// Approve (default) or deny the consent page. Denying makes the provider redirect to the
    /// app with `error=access_denied`.
    pub approve: bool,
    /// Stop at the first redirect whose `Location` starts with this (the app's redirect URI).
    /// Empty (default): stop at the first redirect that leaves the provider's origin (scheme,
    /// host and port of the authorization URL). A non-http(s) `Location` (custom scheme)
    /// always stops.
    pub redirect_prefix: String,
    /// Most requests in one flow. Default 20.
    pub max_steps: usize,
}

impl Default for BrowserLogin {
    fn default() -> Self {
        BrowserLogin {
            user: "alice".to_string(),
            approve: true,
            redirect_prefix: String::new(),
            max_steps: DEFAULT_MAX_STEPS,
        }
    }
}

impl BrowserLogin {
    /// Log in as `user`.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = user.into();
        self
    }

    /// Deny consent.
    pub fn deny(mut self) -> Self {
        self.approve = false;
        self
    }

    /// Stop at the first `Location` starting with `prefix`.
    pub fn redirect_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.redirect_prefix = prefix.into();
        self
    }
}

/// The app's answer when [`deliver`] hands it the redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// HTTP status.
    pub status: u16,
    /// Response body as text.
    pub body: String,
}

/// A browser with one cookie jar. Keep one to log in and later end the session at the
/// provider in the same browser session; use [`login`] for a fresh browser per login.
#[derive(Debug, Clone)]
pub struct Browser {
    client: reqwest::Client,
}

enum Step {
    Get(Url),
    Post(Url, Vec<(String, String)>),
}

impl Step {
    fn url(&self) -> &Url {
        match self {
            Step::Get(u) | Step::Post(u, _) => u,
        }
    }
}

fn parse_loopback(url: &str) -> Result<Url, HarnessError> {
    let parsed = Url::parse(url)
        .map_err(|e| HarnessError::Url { url: url.into(), reason: e.to_string() })?;
    check_loopback(&parsed)?;
    Ok(parsed)
}

fn check_loopback(url: &Url) -> Result<(), HarnessError> {
    let http = matches!(url.scheme(), "http" | "https");
    let loopback = url.host_str().is_some_and(is_loopback_host);
    if http && loopback {
        Ok(())
    } else {
        Err(HarnessError::NotLoopback(url.to_string()))
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Value of `attr="..."` inside one tag's text.
fn attribute(tag: &str, attr: &str) -> Option<String> {
    let needle = format!("{attr}=\"");
    let mut from = 0;
    while let Some(pos) = tag[from..].find(&needle) {
        let start = from + pos;
        // Must be a whole attribute name (preceded by whitespace).
        let preceded = tag[..start].chars().last().is_some_and(char::is_whitespace);
        let value_start = start + needle.len();
        if preceded {
            let end = tag[value_start..].find('"')? + value_start;
            return Some(html_unescape(&tag[value_start..end]));
        }
        from = value_start;
    }
    None
}

/// Opening tags `<name ...>` of the document, in order.
fn tags<'a>(html: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let open = format!("<{name}");
    let mut rest = html;
    std::iter::from_fn(move || loop {
        let pos = rest.find(&open)?;
        let after = &rest[pos..];
        let end = after.find('>')?;
        let tag = &after[..=end];
        rest = &after[end..];
        let boundary =
            tag[open.len()..].chars().next().is_some_and(|c| c.is_whitespace() || c == '>');
        if boundary {
            return Some(tag);
        }
    })
}

/// The action of the `<form data-prompt="PROMPT">`.
fn form_action(html: &str, prompt: &str) -> Option<String> {
    tags(html, "form")
        .find(|tag| attribute(tag, "data-prompt").as_deref() == Some(prompt))
        .and_then(|tag| attribute(tag, "action"))
}

/// The hidden inputs (`name`, `value`) inside the `<form data-prompt="PROMPT">`.
fn form_hidden_fields(html: &str, prompt: &str) -> Vec<(String, String)> {
    let needle = format!("data-prompt=\"{prompt}\"");
    let Some(at) = html.find(&needle) else { return Vec::new() };
    let start = html[..at].rfind("<form").unwrap_or(at);
    let end = html[at..].find("</form>").map_or(html.len(), |e| at + e);
    hidden_inputs(&html[start..end])
}

fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    tags(html, "input")
        .filter(|t| attribute(t, "type").as_deref() == Some("hidden"))
        .filter_map(|t| Some((attribute(t, "name")?, attribute(t, "value").unwrap_or_default())))
        .collect()
}

fn error_text(html: &str) -> Option<String> {
    tags(html, "p").chain(tags(html, "span")).find_map(|tag| attribute(tag, "data-error")).map(
        |e| {
            let desc = tags(html, "p").find_map(|t| attribute(t, "data-error-description"));
            match desc {
                Some(d) if !d.is_empty() => format!("{e}: {d}"),
                _ => e,
            }
        },
    )
}

impl Browser {
    /// A browser with an empty cookie jar.
    pub fn new() -> Result<Browser, HarnessError> {
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Browser { client })
    }

    async fn send(&self, step: &Step) -> Result<reqwest::Response, HarnessError> {
        let req = match step {
            Step::Get(url) => self.client.get(url.clone()),
            Step::Post(url, form) => self.client.post(url.clone()).form(form),
        };
        Ok(req.send().await?)
    }

    /// Opens `authorization_url`, logs in as `opts.user`, approves or denies consent, and
    /// returns the redirect to the app (with `code`, `state`, `iss`, or `error`), without
    /// requesting it.
    pub async fn login(
        &self,
        authorization_url: &str,
        opts: &BrowserLogin,
    ) -> Result<String, HarnessError> {
        let start = parse_loopback(authorization_url)?;
        let provider_origin = start.origin();
        let mut step = Step::Get(start);

        for _ in 0..opts.max_steps {
            let url = step.url().clone();
            let was_login_post = matches!(&step, Step::Post(u, _) if u.path().ends_with("/login"));
            let resp = self.send(&step).await?;
            let status = resp.status();

            if status.is_redirection() {
                let location = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| HarnessError::UnexpectedResponse {
                        url: url.to_string(),
                        status: status.as_u16(),
                        body: "redirect without a Location".into(),
                    })?
                    .to_string();
                let next = url.join(&location).map_err(|e| HarnessError::Url {
                    url: location.clone(),
                    reason: e.to_string(),
                })?;
                let text = next.to_string();
                let leaves_http = !matches!(next.scheme(), "http" | "https");
                let to_app = if opts.redirect_prefix.is_empty() {
                    next.origin() != provider_origin
                } else {
                    text.starts_with(&opts.redirect_prefix)
                };
                if leaves_http || to_app {
                    return Ok(text);
                }
                check_loopback(&next)?;
                step = Step::Get(next);
                continue;
            }

            let body = resp.text().await.unwrap_or_default();
            if status.as_u16() == 200 {
                if let Some(action) = form_action(&body, "login") {
                    // The login page again in answer to our login: the user was rejected.
                    if was_login_post {
                        return Err(HarnessError::LoginRejected {
                            user: opts.user.clone(),
                            message: error_text(&body).unwrap_or_else(|| truncate(&body, 500)),
                        });
                    }
                    let target = url.join(&action).map_err(|e| HarnessError::Url {
                        url: action.clone(),
                        reason: e.to_string(),
                    })?;
                    check_loopback(&target)?;
                    let mut fields = form_hidden_fields(&body, "login");
                    fields.push(("login".into(), opts.user.clone()));
                    step = Step::Post(target, fields);
                    continue;
                }
                if form_action(&body, "consent").is_some() {
                    let prompt = if opts.approve { "consent" } else { "abort" };
                    let action = form_action(&body, prompt).ok_or_else(|| {
                        HarnessError::UnexpectedResponse {
                            url: url.to_string(),
                            status: 200,
                            body: format!("consent page without a {prompt} form"),
                        }
                    })?;
                    let target = url.join(&action).map_err(|e| HarnessError::Url {
                        url: action.clone(),
                        reason: e.to_string(),
                    })?;
                    check_loopback(&target)?;
                    let field = if opts.approve { "approve" } else { "deny" };
                    let mut fields = form_hidden_fields(&body, prompt);
                    fields.push((field.into(), "yes".into()));
                    step = Step::Post(target, fields);
                    continue;
                }
            }
            return Err(HarnessError::UnexpectedResponse {
                url: url.to_string(),
                status: status.as_u16(),
                body: error_text(&body).unwrap_or_else(|| truncate(&body, 2000)),
            });
        }
        Err(HarnessError::TooManySteps { steps: opts.max_steps, last_url: step.url().to_string() })
    }

    /// RP-initiated logout in this browser: opens `end_session_url` (the provider's
    /// end_session endpoint with `id_token_hint`, `post_logout_redirect_uri`, `state`...),
    /// confirms "sign me out", and returns the final redirect (the app's post-logout redirect
    /// URI) or, without one, the URL of the provider's "signed out" page.
    pub async fn end_session(&self, end_session_url: &str) -> Result<String, HarnessError> {
        let start = parse_loopback(end_session_url)?;
        let provider_origin = start.origin();
        let mut step = Step::Get(start);
        for _ in 0..DEFAULT_MAX_STEPS {
            let url = step.url().clone();
            let resp = self.send(&step).await?;
            let status = resp.status();
            if status.is_redirection() {
                let location = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let next = url.join(&location).map_err(|e| HarnessError::Url {
                    url: location.clone(),
                    reason: e.to_string(),
                })?;
                if !matches!(next.scheme(), "http" | "https") || next.origin() != provider_origin {
                    return Ok(next.to_string());
                }
                step = Step::Get(next);
                continue;
            }
            let body = resp.text().await.unwrap_or_default();
            if status.as_u16() == 200 && body.contains("data-signed-out=\"yes\"") {
                return Ok(url.to_string());
            }
            if status.as_u16() == 200 {
                let form = tags(&body, "form")
                    .find(|t| attribute(t, "id").as_deref() == Some("op.logoutForm"));
                if let Some(form) = form {
                    let action = attribute(form, "action").unwrap_or_default();
                    let target = url.join(&action).map_err(|e| HarnessError::Url {
                        url: action.clone(),
                        reason: e.to_string(),
                    })?;
                    check_loopback(&target)?;
                    let mut fields = hidden_inputs(&body);
                    fields.push(("logout".into(), "yes".into()));
                    step = Step::Post(target, fields);
                    continue;
                }
            }
            return Err(HarnessError::UnexpectedResponse {
                url: url.to_string(),
                status: status.as_u16(),
                body: error_text(&body).unwrap_or_else(|| truncate(&body, 2000)),
            });
        }
        Err(HarnessError::TooManySteps {
            steps: DEFAULT_MAX_STEPS,
            last_url: step.url().to_string(),
        })
    }
}

/// Logs in with a fresh browser (empty cookie jar); see [`Browser::login`].
pub async fn login(authorization_url: &str, opts: &BrowserLogin) -> Result<String, HarnessError> {
    Browser::new()?.login(authorization_url, opts).await
}

/// GETs the final redirect URL (for an app listening on a loopback port) and returns its
/// answer. Redirects in the app's answer are not followed.
pub async fn deliver(redirect_url: &str) -> Result<Delivery, HarnessError> {
    let url = parse_loopback(redirect_url)?;
    let client = crate::loopback_client(Duration::from_secs(30))?;
    let resp = client.get(url).send().await?;
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    Ok(Delivery { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_form_actions_and_errors() {
        let html = r#"<p class="error" data-error="unknown user: carol">x</p>
<form method="post" action="/interaction/abc/login" data-prompt="login"><input name="login"></form>
<form method="post" action="/interaction/abc/abort" data-prompt="abort"></form>"#;
        assert_eq!(form_action(html, "login").as_deref(), Some("/interaction/abc/login"));
        assert_eq!(form_action(html, "abort").as_deref(), Some("/interaction/abc/abort"));
        assert_eq!(form_action(html, "consent"), None);
        assert_eq!(error_text(html).as_deref(), Some("unknown user: carol"));
    }

    #[test]
    fn posts_the_hidden_inputs_of_the_chosen_form_only() {
        let html = r#"<form method="post" action="/login" data-prompt="login">
<input type="hidden" name="csrfmiddlewaretoken" value="tok&amp;1">
<input type="hidden" name="next" value="/authorize/?a=1">
<input name="login"></form>
<form method="post" action="/x" data-prompt="abort"><input type="hidden" name="other" value="no"></form>"#;
        assert_eq!(
            form_hidden_fields(html, "login"),
            vec![
                ("csrfmiddlewaretoken".to_string(), "tok&1".to_string()),
                ("next".to_string(), "/authorize/?a=1".to_string())
            ]
        );
        assert_eq!(form_hidden_fields(html, "abort"), vec![("other".into(), "no".into())]);
        assert!(form_hidden_fields(html, "consent").is_empty());
    }

    #[test]
    fn refuses_non_loopback() {
        assert!(parse_loopback("http://127.0.0.1:1/x").is_ok());
        assert!(parse_loopback("http://localhost/x").is_ok());
        assert!(parse_loopback("http://[::1]:8/x").is_ok());
        assert!(matches!(parse_loopback("http://example.com/"), Err(HarnessError::NotLoopback(_))));
        assert!(matches!(parse_loopback("http://10.0.0.1/"), Err(HarnessError::NotLoopback(_))));
        assert!(matches!(parse_loopback("myapp:/cb"), Err(HarnessError::NotLoopback(_))));
    }
}
