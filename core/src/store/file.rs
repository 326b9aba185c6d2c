//! A [`SessionStore`] on plain files: one JSON file per account, written atomically with
//! mode 0600. For command-line tools, desktop apps and tests; mobile apps use the keychain.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{SessionBlob, SessionStore, StoreError};

/// Stores each account's session in `DIR/session.json` (account `default`) or
/// `DIR/session-<account>.json`, replacing it atomically (write to a temporary file, fsync,
/// rename) so a reader in another process sees the old or the new file, never a torn one.
#[derive(Debug, Clone)]
pub struct FileSessionStore {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    generation: u64,
    format: u32,
    session: serde_json::Value,
}

impl FileSessionStore {
    /// A store in `dir` (created on first save with mode 0700).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileSessionStore { dir: dir.into() }
    }

    /// The file that holds `account`'s session.
    pub fn path_for(&self, account: &str) -> PathBuf {
        if account == "default" {
            self.dir.join("session.json")
        } else {
            let safe: String = account
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
                .collect();
            self.dir.join(format!("session-{safe}.json"))
        }
    }
}

fn io_err(e: std::io::Error) -> StoreError {
    let retryable =
        !matches!(e.kind(), std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::InvalidData);
    StoreError { message: format!("file store: {}", e.kind()), retryable }
}

/// Replaces `path` with `bytes` atomically (temporary file with mode 0600, fsync, rename), so
/// a reader in another process sees the old or the new content, never a torn one. Creates
/// the parent directory when missing. Used for session files and other private state.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("session"),
        std::process::id()
    ));
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[async_trait]
impl SessionStore for FileSessionStore {
    async fn save(&self, account: &str, blob: &SessionBlob) -> Result<(), StoreError> {
        let session: serde_json::Value = serde_json::from_slice(blob.data())
            .map_err(|_| StoreError::permanent("file store: session data is not JSON"))?;
        let on_disk = OnDisk { generation: blob.generation(), format: blob.format(), session };
        let bytes = serde_json::to_vec_pretty(&on_disk)
            .map_err(|_| StoreError::permanent("file store: cannot encode"))?;
        let path = self.path_for(account);
        tokio::task::spawn_blocking(move || write_private_file(&path, &bytes))
            .await
            .map_err(|_| StoreError::transient("file store: writer task failed"))?
            .map_err(io_err)
    }

    async fn load(&self, account: &str) -> Result<Option<SessionBlob>, StoreError> {
        let path = self.path_for(account);
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(e)),
        };
        let on_disk: OnDisk = serde_json::from_slice(&bytes)
            .map_err(|_| StoreError::permanent("file store: session file is corrupt"))?;
        let data = serde_json::to_vec(&on_disk.session)
            .map_err(|_| StoreError::permanent("file store: cannot encode"))?;
        Ok(Some(SessionBlob::new(on_disk.generation, on_disk.format, data)))
    }

    async fn clear(&self, account: &str) -> Result<(), StoreError> {
        match tokio::fs::remove_file(self.path_for(account)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn save_load_clear_with_0600() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileSessionStore::new(dir.path().join("state"));
        assert!(store.load("default").await.unwrap().is_none());
        let blob = SessionBlob::new(7, 1, br#"{"a":1}"#.to_vec());
        store.save("default", &blob).await.unwrap();
        let back = store.load("default").await.unwrap().unwrap();
        assert_eq!(back.generation(), 7);
        assert_eq!(serde_json::from_slice::<serde_json::Value>(back.data()).unwrap()["a"], 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path_for("default")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir_mode =
                std::fs::metadata(dir.path().join("state")).unwrap().permissions().mode();
            assert_eq!(dir_mode & 0o777, 0o700);
        }
        store.clear("default").await.unwrap();
        store.clear("default").await.unwrap();
        assert!(store.load("default").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn corrupt_file_is_permanent_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileSessionStore::new(dir.path());
        std::fs::write(store.path_for("x"), b"{not json").unwrap();
        let e = store.load("x").await.unwrap_err();
        assert!(!e.retryable);
    }
}
