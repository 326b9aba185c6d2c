//! The state directory (lock.db, registration.json, session.json) and building a client
//! over it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use latchkey::SessionState;
use latchkey::{Client, ClientConfig, ClientRegistration, Error, FileSessionStore, Session};

use crate::cli::Global;
use crate::error::{self, CliError, EXIT_PROTOCOL, EXIT_REAUTH};

/// The registration file's name in the state directory.
pub const REGISTRATION_FILE: &str = "registration.json";
/// The coordination database's name in the state directory.
pub const LOCK_DB_FILE: &str = "lock.db";

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    pub fn new(dir: &Path) -> Self {
        StateDir { dir: dir.to_path_buf() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Creates the directory (mode 0700) when missing.
    pub fn ensure(&self) -> Result<(), CliError> {
        if self.dir.is_dir() {
            return Ok(());
        }
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(&self.dir).map_err(|e| {
            CliError::io(format!("cannot create the state directory {}", self.dir.display()), &e)
        })
    }

    pub fn registration_path(&self) -> PathBuf {
        self.dir.join(REGISTRATION_FILE)
    }

    pub fn lock_db(&self) -> PathBuf {
        self.dir.join(LOCK_DB_FILE)
    }

    /// The saved registration, if any.
    pub fn load_registration(&self) -> Result<Option<ClientRegistration>, CliError> {
        let path = self.registration_path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CliError::io(format!("cannot read {}", path.display()), &e)),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            CliError::new(
                EXIT_PROTOCOL,
                "state",
                format!(
                    "{} is not a registration (line {} column {}); register again",
                    path.display(),
                    e.line(),
                    e.column()
                ),
            )
        })
    }

    /// The saved registration, or the "not registered" error.
    pub fn require_registration(&self) -> Result<ClientRegistration, CliError> {
        self.load_registration()?.ok_or_else(|| self.not_registered())
    }

    /// The error for a state directory without registration.json (exit 2).
    pub fn not_registered(&self) -> CliError {
        CliError::new(
            EXIT_REAUTH,
            "not_registered",
            format!(
                "no registration in {}; register with `latchkey register` or sign in with \
                 `latchkey login --issuer URL`",
                self.dir.display()
            ),
        )
    }

    /// Saves the registration atomically with mode 0600 (it may hold a
    /// registration_access_token).
    pub fn save_registration(&self, reg: &ClientRegistration) -> Result<(), CliError> {
        self.ensure()?;
        let mut bytes = serde_json::to_vec_pretty(reg).map_err(|e| {
            CliError::new(EXIT_PROTOCOL, "internal", format!("cannot encode the registration: {e}"))
        })?;
        bytes.push(b'\n');
        let path = self.registration_path();
        latchkey::write_private_file(&path, &bytes)
            .map_err(|e| CliError::io(format!("cannot write {}", path.display()), &e))
    }
}

/// Refuses `--insecure-loopback` for anything but an http issuer on 127.0.0.0/8 or ::1
/// (the library refuses the others too; this names the flag in the message).
fn check_insecure_issuer(issuer: &str, allow: bool) -> Result<(), CliError> {
    let Ok(u) = url::Url::parse(issuer) else { return Ok(()) };
    if u.scheme() != "http" || !allow {
        return Ok(());
    }
    let ip_loopback = match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    };
    if ip_loopback {
        Ok(())
    } else {
        Err(CliError::new(
            EXIT_PROTOCOL,
            "insecure_url",
            format!("--insecure-loopback allows http only on 127.0.0.1 or ::1, not `{issuer}`"),
        ))
    }
}

/// A client for `issuer` over the state directory.
pub fn client(global: &Global, state: &StateDir, issuer: &str) -> Result<Client, CliError> {
    check_insecure_issuer(issuer, global.insecure_loopback)?;
    state.ensure()?;
    let mut config = ClientConfig::new(issuer, state.lock_db());
    config.account = global.account.clone();
    config.holder = global.holder.clone();
    config.http.allow_insecure_loopback = global.insecure_loopback;
    config.resources = global.resources.clone();
    let store = Arc::new(FileSessionStore::new(state.path()));
    Client::new(config, store).map_err(|e| match &e {
        Error::InsecureUrl { reason } if reason.contains("allow insecure loopback") => {
            CliError::new(
                EXIT_PROTOCOL,
                error::kind(&e),
                format!(
                    "the issuer `{issuer}` uses http; pass --insecure-loopback to use a local \
                     test provider"
                ),
            )
        }
        Error::InsecureUrl { .. } => {
            CliError::lib(&format!("cannot use the issuer `{issuer}`"), &e)
        }
        _ => CliError::lib("cannot set up the client", &e),
    })
}

/// A client with the saved registration restored.
pub fn registered_client(
    global: &Global,
    state: &StateDir,
) -> Result<(Client, ClientRegistration), CliError> {
    let reg = state.require_registration()?;
    let client = client(global, state, &reg.issuer)?;
    client.restore_registration(reg.clone()).map_err(|e| CliError::lib("registration.json", &e))?;
    Ok((client, reg))
}

/// A client with the saved registration and session restored; fails when there is no
/// session (exit 2).
pub async fn session_client(global: &Global) -> Result<(Client, Session), CliError> {
    let state = StateDir::new(&global.state_dir);
    let (client, _) = registered_client(global, &state)?;
    match client.restore_session().await {
        Ok(Some(s)) => Ok((client, s)),
        Ok(None) => Err(no_session_error(global, &state).await),
        Err(e) => Err(CliError::lib("cannot restore the session", &e)),
    }
}

/// Why there is no session in the store: ended for every process (logged out or
/// reauthentication required, as the coordination database records it), or never signed in.
pub async fn ended_state(global: &Global, state: &StateDir) -> Option<SessionState> {
    let reg = state.load_registration().ok()??;
    let client = client(global, state, &reg.issuer).ok()?;
    client.recorded_end().await.ok()?
}

/// The error for an empty store (exit 2), naming how the session ended when it did.
pub async fn no_session_error(global: &Global, state: &StateDir) -> CliError {
    match ended_state(global, state).await {
        Some(SessionState::LoggedOut) => CliError::lib("", &Error::LoggedOut),
        Some(_) => CliError::lib(
            "",
            &Error::ReauthRequired { reason: "the provider no longer accepts the session".into() },
        ),
        None => CliError::new(
            EXIT_REAUTH,
            error::kind(&Error::NoSession),
            format!(
                "no session for account `{}` in {}; sign in with `latchkey login`",
                global.account,
                state.path().display()
            ),
        ),
    }
}
