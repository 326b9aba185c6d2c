//! A [`SessionStore`] on plain files: one JSON file per account, written atomically with
//! mode 0600. For command-line tools, desktop apps and tests; mobile apps use the keychain.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{SessionBlob, SessionStore, StoreError};

/// Stores each account's session in `DIR/session.json` (account `default`) or
/// `DIR/session-<encoded account>.json`, replacing it atomically (write to a temporary file, fsync,
/// rename) so a reader in another process sees the old or the new file, never a torn one.
///
/// The account name is encoded reversibly: ASCII letters, digits and `-` stay as they are,
/// every other byte becomes `_` and two upper-case hex digits (`a.b` → `a_2Eb`, `a_b` →
/// `a_5Fb`), so two accounts never share a file, and files of names made only of letters,
/// digits and `-` keep the name earlier versions gave them. A name whose encoding exceeds
/// the file system's limit on file names (255 bytes on most) fails to save with a
/// permanent [`StoreError`].
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
            self.dir.join(format!("session-{}.json", encode_account(account)))
        }
    }
}

/// Encodes an account name into file-name characters, reversibly (see [`FileSessionStore`]).
fn encode_account(account: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(account.len());
    for b in account.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "_{b:02X}");
        }
    }
    out
}

/// The account whose file name is `session-<encoded>.json`: the inverse of
/// [`encode_account`]. `None` for anything [`encode_account`] does not produce.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn decode_account(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'_' {
            let hex = encoded.get(i + 1..i + 3)?;
            if hex.bytes().any(|h| h.is_ascii_lowercase()) {
                return None;
            }
            let v = u8::from_str_radix(hex, 16).ok()?;
            if v.is_ascii_alphanumeric() || v == b'-' {
                return None;
            }
            out.push(v);
            i += 3;
        } else if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(b);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

fn io_err(e: std::io::Error) -> StoreError {
    let retryable = !matches!(
        e.kind(),
        std::io::ErrorKind::PermissionDenied
            | std::io::ErrorKind::InvalidData
            | std::io::ErrorKind::InvalidFilename
    );
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
    // The rename is durable only once the directory is: a power loss must not bring back
    // the previous session after `save` returned (the refresh path relies on it, ADR 0006).
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
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
    async fn similar_account_names_get_their_own_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileSessionStore::new(dir.path());
        let names = [
            "a.b", "a_b", "a@b", "a b", "a/b", "a\\b", "a_2Eb", "A.B", "ab", "a-b", "é", "",
            "default",
        ];
        for (i, name) in names.iter().enumerate() {
            let blob = SessionBlob::new(i as u64 + 1, 1, format!("{{\"n\":{i}}}").into_bytes());
            store.save(name, &blob).await.unwrap();
        }
        let mut paths = std::collections::HashSet::new();
        for (i, name) in names.iter().enumerate() {
            let back = store.load(name).await.unwrap().unwrap();
            assert_eq!(back.generation(), i as u64 + 1, "{name:?}");
            let path = store.path_for(name);
            assert_eq!(path.parent(), Some(dir.path()), "{name:?} stays in the directory");
            assert!(paths.insert(path), "{name:?} shares a file");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), names.len());
        store.clear("a.b").await.unwrap();
        assert!(store.load("a.b").await.unwrap().is_none());
        assert_eq!(store.load("a_b").await.unwrap().unwrap().generation(), 2);
    }

    #[test]
    fn account_encoding_is_reversible_and_keeps_plain_names() {
        let store = FileSessionStore::new("/s");
        assert_eq!(store.path_for("default"), Path::new("/s/session.json"));
        assert_eq!(store.path_for("work-2"), Path::new("/s/session-work-2.json"));
        assert_eq!(store.path_for("a.b"), Path::new("/s/session-a_2Eb.json"));
        assert_eq!(store.path_for("a_b"), Path::new("/s/session-a_5Fb.json"));
        assert_eq!(store.path_for("../x"), Path::new("/s/session-_2E_2E_2Fx.json"));
        for name in ["a.b", "a_b", "a@b", "", "_", "__", "é€", "a\u{0}b", "x".repeat(50).as_str()]
        {
            let enc = encode_account(name);
            assert!(enc.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert_eq!(decode_account(&enc).as_deref(), Some(name));
        }
        for bad in ["_", "_2", "_2e", "_41", "a.b", "_ZZ", "_FF"] {
            assert_eq!(decode_account(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn files_written_before_the_encoding_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = br#"{"generation":3,"format":1,"session":{"a":1}}"#;
        std::fs::write(dir.path().join("session.json"), legacy).unwrap();
        std::fs::write(dir.path().join("session-work-2.json"), legacy).unwrap();
        let store = FileSessionStore::new(dir.path());
        assert_eq!(store.load("default").await.unwrap().unwrap().generation(), 3);
        assert_eq!(store.load("work-2").await.unwrap().unwrap().generation(), 3);
    }

    #[tokio::test]
    async fn over_long_account_name_is_a_permanent_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileSessionStore::new(dir.path());
        let name = ".".repeat(200);
        let e = store.save(&name, &SessionBlob::new(1, 1, b"{}".to_vec())).await.unwrap_err();
        assert!(!e.retryable, "{e:?}");
        assert!(!store.load(&name).await.unwrap_err().retryable);
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
