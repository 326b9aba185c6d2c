//! Under the lease: read the situation (committed generation, store, journal, clock), ask
//! [`decide`](super::decide::decide), carry the decision out, and decide again when the
//! decision changed the situation (an adoption, a roll-forward, a repair). Bounded rounds.

use std::time::Duration;

use super::decide::{decide, Committed, Decision, Journal, Situation, Stored};
use super::no_lease;
use crate::client::login::ended_error;
use crate::client::Inner;
use crate::error::{Error, Result};
use crate::faults::{self, Step};
use crate::lock::{JournalEntry, Lease, SessionState};
use crate::session::events::RefreshOutcome;
use crate::session::lifecycle::LifecycleEvent;
use crate::session::Session;

/// Decisions that change the situation are followed by another round; four cover the
/// longest chain (register → commit a stored session → adopt → refresh).
const MAX_ROUNDS: usize = 4;

impl Inner {
    pub(super) async fn under_lease(
        &self,
        held: &mut Option<Lease>,
        mut force: bool,
        min_ttl: Duration,
    ) -> Result<RefreshOutcome> {
        let mut adopted: Option<u64> = None;
        for _ in 0..MAX_ROUNDS {
            let lease = held.as_ref().ok_or_else(no_lease)?;
            let current = self.ensure_session()?;
            let situation = self.read_situation(lease, &current, force, min_ttl).await?;
            let decision = decide(&situation);
            tracing::debug!(?decision, generation = current.generation, "refresh decision");
            match decision {
                Decision::Register => {
                    self.coordinator
                        .register(self.account(), current.generation, &current.token_hash())
                        .await?;
                }
                Decision::Ended(state) => {
                    self.forget();
                    let (err, ev) = ended_error(state);
                    self.event(ev, Some("ended by another process".into()));
                    return Err(err);
                }
                Decision::CommitStored { expected, generation, hash } => {
                    self.commit_stored(lease, &situation, expected, generation, &hash).await?;
                    adopted = Some(generation);
                    // Adopting is the answer to a forced refresh too (see `Client::refresh`).
                    force = false;
                }
                Decision::Adopt { generation } => {
                    let rec = self.coordinator.generation(self.account()).await?;
                    match rec {
                        Some(r) if r.generation == generation => match self.adopt(&r).await? {
                            Some(_) => {
                                adopted = Some(generation);
                                force = false;
                            }
                            None => return Err(Error::StoreMismatch { generation }),
                        },
                        // It moved meanwhile: decide again.
                        _ => {}
                    }
                }
                Decision::RepairStore => {
                    tracing::warn!(
                        generation = current.generation,
                        "the store lost the committed session; saving it again"
                    );
                    self.save_fenced(lease, &current).await?;
                }
                Decision::StoreMismatch { generation } => {
                    return Err(Error::StoreMismatch { generation });
                }
                Decision::PersistUnsaved => {
                    if let Some(o) = self.persist_unsaved(lease, &current).await? {
                        return Ok(o);
                    }
                }
                Decision::StillFresh => {
                    return Ok(match adopted {
                        Some(generation) => RefreshOutcome::Adopted { generation },
                        None => RefreshOutcome::StillFresh { generation: current.generation },
                    });
                }
                Decision::KeepValid => {
                    self.event(
                        LifecycleEvent::RefreshFailed,
                        Some("another process's refresh may have consumed the refresh token; keeping the valid access token".into()),
                    );
                    return Ok(RefreshOutcome::KeptValidToken { generation: current.generation });
                }
                Decision::Wait => return Err(Error::RefreshInDoubt),
                Decision::Lost => {
                    return self
                        .end_session(
                            SessionState::ReauthRequired,
                            "another process's refresh consumed the refresh token and its tokens were lost",
                            Some(lease),
                        )
                        .await;
                }
                Decision::NoRefreshToken => {
                    return self
                        .end_session(SessionState::ReauthRequired, "no refresh token", Some(lease))
                        .await;
                }
                Decision::Refresh { resend } => {
                    if resend {
                        tracing::info!("resending a refresh token inside the provider's reuse interval to recover an unfinished refresh");
                    }
                    return self.refresh_now(held, &current, force).await;
                }
            }
        }
        Err(Error::Internal { message: "the refresh decision did not settle".into() })
    }

    /// Everything the decision needs, read under the lease.
    async fn read_situation(
        &self,
        lease: &Lease,
        current: &Session,
        force: bool,
        min_ttl: Duration,
    ) -> Result<Situation> {
        let committed = self.coordinator.generation(self.account()).await?.map(|r| Committed {
            generation: r.generation,
            hash: r.token_hash,
            state: r.state,
        });
        let journal = self.coordinator.journal(self.account()).await?.map(|j| Journal {
            // Written by this client (any of its acquisitions): its refresh is over, so there
            // is no other holder to wait for.
            ours: j.holder == lease.holder(),
            age: self.journal_age(&j),
            from_generation: j.from_generation,
            phase: j.phase,
            new_hash: j.new_token_hash,
        });
        let stored = match self.load_with_retry().await? {
            None => Stored::Empty,
            Some(blob) => match Session::from_blob(&blob) {
                Ok(s) if self.is_ours(&s) => {
                    Stored::Holds { generation: s.generation, hash: s.token_hash() }
                }
                Ok(_) => Stored::Foreign,
                Err(e) => {
                    tracing::warn!(error = %e, "the stored session is unreadable");
                    Stored::Foreign
                }
            },
        };
        let unsaved = self.slot().unsaved;
        Ok(Situation {
            force,
            generation: current.generation,
            hash: current.token_hash(),
            fresh: self.is_fresh(current, min_ttl),
            valid: self.is_valid(current),
            has_refresh_token: current.refresh_token.is_some(),
            unsaved,
            committed,
            stored,
            journal,
            reuse_interval: self.config.reuse_interval,
            in_doubt_wait: self.config.in_doubt_wait(),
            answered_limit: self.config.answered_limit,
        })
    }

    /// Time since the journal entry was last written, by the boot clock when the entry was
    /// written in this boot (a wall-clock jump cannot age it), by the wall clock when the
    /// boot is unknown; `None` for an entry written before a reboot (its writer is gone).
    fn journal_age(&self, j: &JournalEntry) -> Option<Duration> {
        j.age(&self.coordinator.now_stamp())
    }

    /// The store holds a session newer than the committed generation (an interrupted
    /// commit, or a database that lost its last commits): commit it and adopt it.
    async fn commit_stored(
        &self,
        lease: &Lease,
        situation: &Situation,
        expected: Option<u64>,
        generation: u64,
        hash: &str,
    ) -> Result<()> {
        let Some(s) = self.load_matching(generation, hash).await? else {
            // It changed since we looked: the next round reads it again.
            return Ok(());
        };
        faults::hit("rollforward::before_commit", Step::Database)?;
        let ended = situation.committed.as_ref().is_some_and(|c| c.state != SessionState::Active);
        let landed = if expected.is_none() || ended {
            let rec = self.coordinator.register(self.account(), generation, hash).await?;
            rec.generation == generation && rec.token_hash.as_deref() == Some(hash)
        } else {
            self.coordinator.commit(self.account(), expected, generation, hash).await?
        };
        if !landed {
            return Ok(());
        }
        if situation.journal.as_ref().is_some_and(|j| Some(j.from_generation) == expected) {
            lease.journal_clear().await?;
        }
        tracing::info!(generation, "committed the session the store holds ahead of the database");
        self.install(s, false);
        self.event(LifecycleEvent::Adopted, Some("completed an interrupted commit".into()));
        Ok(())
    }

    /// A previous save failed: the newest tokens live only in memory, and they succeed the
    /// committed generation (the decision checked). Save and commit them. `None` when the
    /// commit lost a race: decide again.
    async fn persist_unsaved(
        &self,
        lease: &Lease,
        current: &Session,
    ) -> Result<Option<RefreshOutcome>> {
        let base = current.generation.saturating_sub(1);
        self.save_fenced(lease, current).await?;
        let hash = current.token_hash();
        if !self.coordinator.commit(self.account(), Some(base), current.generation, &hash).await? {
            return Ok(None);
        }
        lease.journal_clear().await?;
        self.slot().unsaved = false;
        self.event(LifecycleEvent::Refreshed, Some("saved tokens kept in memory".into()));
        Ok(Some(RefreshOutcome::Refreshed { generation: current.generation }))
    }
}
