use std::path::PathBuf;

/// Everything the harness can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// File or process I/O.
    #[error("I/O error: {context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `npm ci` in tests/op failed.
    #[error("`npm ci` in {dir} failed ({status}):\n{output}")]
    NpmCi {
        /// The tests/op directory.
        dir: PathBuf,
        /// Exit status as text.
        status: String,
        /// Tail of its output.
        output: String,
    },
    /// node_modules of tests/op does not match package-lock.json and `LATCHKEY_OP_NO_NPM`
    /// forbids installing it here (scripts/test.sh installs it once per run).
    #[error(
        "node_modules in {0} does not match package-lock.json and LATCHKEY_OP_NO_NPM is set: run `npm ci` there (scripts/test.sh does)"
    )]
    NpmNotInstalled(PathBuf),
    /// Another process held the npm install lock for too long.
    #[error("timed out waiting for another `npm ci` in {0} (lock file)")]
    NpmLockTimeout(PathBuf),
    /// The provider exited (or closed stdout) before its ready line, printed a bad one, or
    /// printed none within the start timeout while alive; after one retry.
    #[error("test provider did not start: {reason}\n--- provider stderr (tail) ---\n{stderr}")]
    ProviderStart {
        /// Why.
        reason: String,
        /// Last lines the provider printed on stderr.
        stderr: String,
    },
    /// An HTTP request failed at the transport level (connect, timeout, reset...).
    #[error("HTTP error: {0}")]
    Http(#[from] reqwest::Error),
    /// The admin API answered with an error.
    #[error("admin API {path} answered {status}: {body}")]
    Admin {
        /// Admin path.
        path: String,
        /// HTTP status.
        status: u16,
        /// Response body.
        body: String,
    },
    /// A URL could not be parsed.
    #[error("invalid URL {url}: {reason}")]
    Url {
        /// The URL text.
        url: String,
        /// Why.
        reason: String,
    },
    /// The browser driver refuses to leave the loopback interface.
    #[error("refusing non-loopback URL {0}")]
    NotLoopback(String),
    /// The login flow took more steps than allowed.
    #[error("login flow did not reach the app after {steps} steps (last URL {last_url})")]
    TooManySteps {
        /// Steps taken.
        steps: usize,
        /// Last URL requested.
        last_url: String,
    },
    /// The provider's login page rejected the user.
    #[error("login rejected for user {user:?}: {message}")]
    LoginRejected {
        /// The login name.
        user: String,
        /// The page's error text.
        message: String,
    },
    /// The provider answered something the driver does not understand.
    #[error("unexpected response {status} from {url}: {body}")]
    UnexpectedResponse {
        /// The URL requested.
        url: String,
        /// HTTP status.
        status: u16,
        /// Body (truncated).
        body: String,
    },
    /// Bad input to the harness.
    #[error("{0}")]
    Invalid(String),
}

impl HarnessError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        HarnessError::Io { context: context.into(), source }
    }
}
