//! No token value leaves Latchkey except through the calls that return it: a whole flow
//! (registration, login, refresh, userinfo, failures, logout) against the test provider
//! with every log at TRACE captured, and every value, error and `Debug` output searched for
//! each access, refresh, ID and registration access token the flow saw. Files are 0600 and
//! the coordination database holds hashes only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use latchkey::internals::Coordinator;
use latchkey::CoordinatorConfig;
use latchkey::{Error, LogoutOptions, Session, SystemClock};
use latchkey_e2e::flow::{file_client, register, sign_in, test_config};
use latchkey_e2e::op::{ProviderOptions, TestProvider};

/// A `MakeWriter` appending to a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

fn tokens_of(s: &Session) -> Vec<String> {
    let mut t = vec![s.access_token.expose().to_string()];
    t.extend(s.refresh_token.iter().map(|r| r.expose().to_string()));
    t.extend(s.id_token.iter().map(|r| r.expose().to_string()));
    t
}

#[cfg(unix)]
fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_flow_at_trace_level_leaks_no_token() {
    let logs = Capture::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .init();

    let op =
        TestProvider::start(ProviderOptions { access_token_ttl_secs: 60, ..Default::default() })
            .await
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = file_client(test_config(op.issuer(), dir.path(), "app"), dir.path()).unwrap();
    let mut shown = Vec::<String>::new();
    let mut secrets = Vec::<String>::new();

    let reg = register(&client, None).await.unwrap();
    if let Some(rat) = &reg.registration_access_token {
        secrets.push(rat.expose().to_string());
    }
    shown.push(format!("{reg:?}"));
    let session = sign_in(&client, "alice").await.unwrap();
    secrets.extend(tokens_of(&session));
    shown.push(format!("{session:?} {session}"));
    shown.push(format!("{client:?}"));

    let outcome = client.refresh().await.unwrap();
    shown.push(format!("{outcome:?}"));
    let refreshed = client.session().unwrap();
    secrets.extend(tokens_of(&refreshed));
    shown.push(format!("{refreshed:?} {refreshed}"));
    let claims = client.userinfo().await.unwrap();
    assert_eq!(claims["sub"], refreshed.subject.as_str());

    // Failures: their errors are searched too.
    let id_token = refreshed.id_token.clone().unwrap();
    let access = client.access_token().await.unwrap();
    secrets.push(access.expose().to_string());
    shown.push(format!("{access:?}"));
    let errors = vec![
        client.handle_backchannel_logout(id_token.expose()).await.unwrap_err(),
        client
            .finish_login(&format!("dev.latchkey.test:/callback?code={}&state=x", access.expose()))
            .await
            .unwrap_err(),
        client
            .finish_login(&format!(
                "dev.latchkey.test:/callback?code={0}&code={0}&state=x",
                access.expose()
            ))
            .await
            .unwrap_err(),
    ];
    for e in &errors {
        shown.push(format!("{e:?} {e}"));
    }

    // Files: the session 0600, the database and its WAL files 0600; hashes only inside.
    #[cfg(unix)]
    for name in ["session.json", "lock.db", "lock.db-wal", "lock.db-shm"] {
        let p = dir.path().join(name);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{name}");
        }
    }
    let coordinator = Coordinator::open(
        dir.path().join("lock.db"),
        CoordinatorConfig::default(),
        Arc::new(SystemClock),
    )
    .unwrap();
    let record = coordinator.generation("default").await.unwrap().unwrap();
    let hash = record.token_hash.clone().unwrap();
    assert_eq!(hash, refreshed.token_hash());
    assert!(hash.len() >= 32 && hash.bytes().all(|b| b.is_ascii_hexdigit()), "{hash}");
    let mut db = Vec::new();
    for name in ["lock.db", "lock.db-wal"] {
        if let Ok(b) = std::fs::read(dir.path().join(name)) {
            db.extend_from_slice(&b);
        }
    }
    let db = String::from_utf8_lossy(&db).into_owned();

    let outcome = client
        .logout(LogoutOptions {
            post_logout_redirect_uri: Some("dev.latchkey.test:/logged-out".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    shown.push(format!("{outcome:?}"));
    let after = client.access_token().await.unwrap_err();
    assert!(matches!(after, Error::LoggedOut));
    shown.push(format!("{after:?} {after}"));

    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(logs.contains("TRACE") || logs.contains("DEBUG"), "nothing was logged");
    secrets.sort();
    secrets.dedup();
    assert!(secrets.len() >= 5, "{} secrets", secrets.len());
    for s in &secrets {
        assert!(s.len() >= 16, "a token value too short to search for");
        assert!(!logs.contains(s.as_str()), "a token value is in the logs");
        assert!(!db.contains(s.as_str()), "a token value is in the coordination database");
        for text in &shown {
            assert!(!text.contains(s.as_str()), "a token value is shown: {text}");
        }
    }
}
