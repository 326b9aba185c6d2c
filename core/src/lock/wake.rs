//! A waiter's sleep that ends early when the coordination file changes.
//!
//! Between two reads of the lease row ([`super::poll`]) a waiter sleeps. Where the platform
//! tells a process that a file was written without `unsafe` code — inotify on Linux and
//! Android, through `rustix` — the sleep also ends as soon as any process writes the
//! database's write-ahead log, which every commit does: the release of the lease among
//! them. The waiter then reads at once instead of at the end of a backed-off interval, so a
//! release after a hold of seconds is seen within about a millisecond while the wait itself
//! stays at a few reads per second. Each commit of another process (the holder's renewal
//! about once a second, its journal writes) wakes the waiter too; that costs a read each.
//!
//! The watch is an accelerator, never needed for correctness: where it cannot be set up
//! (another platform, the inotify limits reached, no `-wal` file yet) or an event is missed,
//! the schedule's timed reads still find the release.

use std::path::Path;
use std::time::Duration;

/// One wait's watch on the coordination file's write-ahead log.
#[derive(Debug)]
pub(crate) struct Wake {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fd: Option<rustix::fd::OwnedFd>,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl Wake {
    /// Watches `<db>-wal` for writes; a watch that cannot be set up is no watch.
    pub(crate) fn watch(db: &Path) -> Wake {
        use rustix::fs::inotify;

        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
            .and_then(|fd| {
                inotify::add_watch(&fd, Path::new(&wal), inotify::WatchFlags::MODIFY)?;
                Ok(fd)
            });
        match fd {
            Ok(fd) => Wake { fd: Some(fd) },
            Err(e) => {
                tracing::debug!(error = %e, "no change notification for the lease wait; polling only");
                Wake { fd: None }
            }
        }
    }

    /// Whether the watch is set up.
    #[cfg(test)]
    pub(crate) fn is_watching(&self) -> bool {
        self.fd.is_some()
    }

    /// Sleeps for `delay`, or until the file was written; `true` if a write ended it.
    pub(crate) fn sleep(&mut self, delay: Duration) -> bool {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};

        let Some(fd) = &self.fd else {
            std::thread::sleep(delay);
            return false;
        };
        let timeout = Timespec {
            tv_sec: i64::try_from(delay.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(delay.subsec_nanos()),
        };
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) => false,
            Ok(_) => {
                self.drain();
                true
            }
            Err(e) => {
                // EINTR or worse: give up the watch and sleep the rest as a plain poll.
                tracing::debug!(error = %e, "change notification failed; polling only");
                self.fd = None;
                std::thread::sleep(delay);
                false
            }
        }
    }

    /// Reads the queued events (their content does not matter: any write is a reason to
    /// read the row). Bounded: the queue is read until it is empty or 16 buffers.
    fn drain(&mut self) {
        let Some(fd) = &self.fd else { return };
        let mut buf = [0u8; 1024];
        for _ in 0..16 {
            match rustix::io::read(fd, &mut buf) {
                Ok(n) if n > 0 => continue,
                _ => break,
            }
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl Wake {
    /// No change notification on this platform: the wait polls only.
    pub(crate) fn watch(_db: &Path) -> Wake {
        Wake {}
    }

    /// Always `false` here.
    #[cfg(test)]
    pub(crate) fn is_watching(&self) -> bool {
        false
    }

    /// Sleeps for `delay`; never ended early here.
    pub(crate) fn sleep(&mut self, delay: Duration) -> bool {
        std::thread::sleep(delay);
        false
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use std::time::{Duration, Instant};

    use super::Wake;

    #[test]
    fn a_write_to_the_log_ends_the_sleep_and_no_write_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("coordination.sqlite");
        let writer = rusqlite::Connection::open(&db).unwrap();
        writer.pragma_update(None, "journal_mode", "WAL").unwrap();
        writer.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let mut wake = Wake::watch(&db);
        assert!(wake.is_watching(), "no -wal watch");
        // Nothing written: the sleep runs its course.
        let t = Instant::now();
        assert!(!wake.sleep(Duration::from_millis(30)));
        assert!(t.elapsed() >= Duration::from_millis(25));
        // A commit from another thread ends a long sleep.
        let path = db.clone();
        let committer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute("INSERT INTO t VALUES (1)", []).unwrap();
        });
        assert!(wake.sleep(Duration::from_secs(30)), "the commit did not end the sleep");
        committer.join().unwrap();
        // Events of that commit still arriving are read; then the watch goes quiet again.
        for _ in 0..10 {
            if !wake.sleep(Duration::from_millis(5)) {
                break;
            }
        }
        assert!(!wake.sleep(Duration::from_millis(20)), "woken with nothing written");
    }

    #[test]
    fn no_log_file_means_no_watch_and_a_plain_sleep() {
        let dir = tempfile::tempdir().unwrap();
        let mut wake = Wake::watch(&dir.path().join("missing.sqlite"));
        assert!(!wake.is_watching());
        assert!(!wake.sleep(Duration::from_millis(1)));
    }
}
