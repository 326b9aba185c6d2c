//! The renewer: one task per [`Coordinator`](super::Coordinator), alive only while this
//! process holds leases, that extends each held lease about once per `renew_every`.
//!
//! It ticks every `renew_every` and renews the leases not written for at least half a
//! period, so a lease is renewed 0.5–1.5 periods after its acquisition and then once per
//! period: at most one write per second per held lease with the defaults, and no timer at
//! all in a process that holds nothing. A renewal that finds the row taken by another
//! acquisition marks the lease lost. A lease held longer than `max_hold` is no longer
//! renewed: a stuck holder (a hung app callback) cannot block every other process.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::coordinator::Inner;
use super::lease::renew_row;

/// Starts the renewer unless it runs already. Call after registering a live lease.
pub(crate) fn ensure_renewer(inner: &Arc<Inner>) {
    if !inner.renewer_running.swap(true, Ordering::SeqCst) {
        tokio::spawn(renewer(Arc::clone(inner)));
    }
}

/// Clears the running flag if the renewer's task is dropped unfinished (its runtime shut
/// down), so the next acquisition, maybe on another runtime, starts a new one.
struct Armed(Option<Arc<Inner>>);

impl Drop for Armed {
    fn drop(&mut self) {
        if let Some(inner) = self.0.take() {
            inner.renewer_running.store(false, Ordering::SeqCst);
        }
    }
}

async fn renewer(inner: Arc<Inner>) {
    let mut armed = Armed(Some(Arc::clone(&inner)));
    let every = inner.config.renew_every.max(Duration::from_millis(1));
    loop {
        tokio::time::sleep(every).await;
        let live = inner.live_leases();
        if live.is_empty() {
            // Stop, unless a lease was registered after the snapshot and its
            // `ensure_renewer` saw this task still running. Either way the flag is settled
            // here, not by the guard.
            armed.0 = None;
            inner.renewer_running.store(false, Ordering::SeqCst);
            if inner.live_leases().is_empty() || inner.renewer_running.swap(true, Ordering::SeqCst)
            {
                return;
            }
            armed.0 = Some(Arc::clone(&inner));
            continue;
        }
        let max_hold = inner.config.max_hold;
        let due: Vec<_> = live
            .into_iter()
            .filter(|s| !s.is_released() && !s.is_lost() && s.renewed_age() >= every / 2)
            .filter(|s| {
                let stuck = s.held_for() > max_hold;
                if stuck {
                    tracing::warn!(account = %s.account, fence = s.fence, "lease held longer than max_hold; no longer renewed");
                }
                !stuck
            })
            .collect();
        if due.is_empty() {
            continue;
        }
        let renewed = inner
            .blocking(move |inner, conn| {
                let expires = inner.now_stamp().after_millis(inner.lease_ms());
                due.into_iter()
                    .map(|s| renew_row(conn, &s, &expires).map(|ok| (s, ok)))
                    .collect::<crate::error::Result<Vec<_>>>()
            })
            .await;
        match renewed {
            Ok(results) => {
                for (shared, ok) in results {
                    if ok {
                        shared.touch();
                    } else if !shared.is_released() {
                        tracing::warn!(account = %shared.account, fence = shared.fence, "lease lost: another holder took it after it expired");
                        shared.mark_lost();
                    }
                }
            }
            // Transient (busy, I/O, paused): try again at the next tick; with the default
            // timings a lease survives one missed renewal.
            Err(e) => tracing::debug!(error = %e, "lease renewal failed; retrying"),
        }
    }
}
