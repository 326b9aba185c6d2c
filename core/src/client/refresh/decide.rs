//! The refresh decision: given everything a lease holder can see — its own session, the
//! committed generation, what the app's store holds, the journal of the last refresh and
//! the clock — what to do next. A pure function over [`Situation`], unit-tested over a
//! table of every case below; the effects (SQLite, store, network) live in the sibling
//! files and only carry the decision out.
//!
//! This table is the one in `docs/adr/0002-generations-and-journal.md` ("What the next
//! holder concludes"); change both together.
//!
//! | # | situation (checked in this order)                                   | decision |
//! |---|----------------------------------------------------------------------|----------|
//! | 0 | no committed record; the store holds nothing newer than ours         | `Register` (then decide again) |
//! | 1 | committed record ended at or above our generation                    | `Ended` |
//! | 2 | store ahead of the committed generation, journal names its hash      | `CommitStored` (roll forward an interrupted commit) |
//! | 3 | store ahead, journal names another hash for that generation          | `StoreMismatch` |
//! | 4 | store ahead, nothing contradicts it (power loss rolled the database back) | `CommitStored` |
//! | 5 | store at the committed generation with another hash, or behind it, or empty, or foreign: we hold the committed tokens | `RepairStore` |
//! | 6 | … and we do not                                                      | `StoreMismatch` (never refresh with an older token) |
//! | 7 | store holds the committed generation, newer than ours                | `Adopt` |
//! | 8 | our tokens are the unsaved successor of the committed generation     | `PersistUnsaved` |
//! | 9 | ours newer than committed otherwise                                  | `StoreMismatch` |
//! | 10 | not forced and still fresh                                          | `StillFresh` |
//! | 11 | journal of another acquisition, `answered`/`saving` from our generation, inside the provider's reuse interval | `Refresh` (resend: recovers) |
//! | 12 | … access token valid                                                | `KeepValid` |
//! | 13 | … entry younger than the answered limit                             | `Wait` |
//! | 14 | … older                                                             | `Lost` (the refresh token is consumed, its successor lost: never send it) |
//! | 15 | journal `request_sent` of another acquisition from our generation, inside the reuse interval | `Refresh` (resend) |
//! | 16 | … access token valid                                                | `KeepValid` |
//! | 17 | … entry younger than the in-doubt wait (its holder may still commit) | `Wait` |
//! | 18 | … older                                                             | `Refresh` (try the old token once; a refusal is re-checked, I4) |
//! | 19 | no refresh token, access token valid                                | `KeepValid` |
//! | 20 | no refresh token                                                    | `NoRefreshToken` |
//! | 21 | otherwise                                                           | `Refresh` |
//!
//! A journal entry of an older generation than the committed one is settled (its refresh
//! committed) and ignored. One written by this client is its own finished attempt: rows 16
//! and 18 apply to a `request_sent` of ours without the wait of row 17 (nobody else can
//! still commit it).

use std::time::Duration;

use crate::lock::{JournalPhase, SessionState};

/// The committed generation as the coordination database records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Committed {
    pub generation: u64,
    pub hash: Option<String>,
    pub state: SessionState,
}

/// What the app's store holds for this account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stored {
    /// Nothing.
    Empty,
    /// A session of this account and issuer.
    Holds { generation: u64, hash: String },
    /// A session of another account or issuer (a store not keyed as configured).
    Foreign,
}

/// The journal entry, as far as the decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Journal {
    /// Written by this client: its own earlier refresh, settled or failed, never one to
    /// wait for.
    pub ours: bool,
    pub from_generation: u64,
    pub phase: JournalPhase,
    pub new_hash: Option<String>,
    /// Time since the entry was last written; `None` when unknown (written before a
    /// reboot, or by a clock that cannot be compared): counts as old.
    pub age: Option<Duration>,
}

/// Everything the holder knows when it decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Situation {
    pub force: bool,
    /// Our session's generation and token hash.
    pub generation: u64,
    pub hash: String,
    /// Fresh for the refresh margin / the caller's minimum lifetime.
    pub fresh: bool,
    /// Not expired (and not reported rejected by the app).
    pub valid: bool,
    pub has_refresh_token: bool,
    /// Our session is newer than the store's: its save failed.
    pub unsaved: bool,
    /// `None`: no record (a new database, or one rolled back to empty).
    pub committed: Option<Committed>,
    pub stored: Stored,
    pub journal: Option<Journal>,
    /// The provider's reuse interval for a consumed refresh token, when configured.
    pub reuse_interval: Option<Duration>,
    /// How long a `request_sent` entry of another holder is waited for.
    pub in_doubt_wait: Duration,
    /// How long an `answered`/`saving` entry whose tokens are not in the store is waited for
    /// before the session is declared lost.
    pub answered_limit: Duration,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// No committed record and the store is not ahead of us: our session becomes the
    /// committed generation (register), then decide again.
    Register,
    /// Another process ended the session.
    Ended(SessionState),
    /// The store holds a newer session than the committed one: commit it by CAS
    /// (`expected` → `generation`) and adopt it.
    CommitStored {
        expected: Option<u64>,
        generation: u64,
        hash: String,
    },
    /// Take the committed generation from the store.
    Adopt {
        generation: u64,
    },
    /// The store lost or never had the committed session, which we hold: save it again.
    RepairStore,
    /// The store cannot be reconciled with the committed generation; retryable, and never
    /// a refresh with an older token.
    StoreMismatch {
        generation: u64,
    },
    /// Our unsaved tokens succeed the committed generation: save and commit them.
    PersistUnsaved,
    StillFresh,
    /// Keep the still-valid access token: a refresh now could resend a consumed token.
    KeepValid,
    /// Another holder's refresh may still complete: wait for it.
    Wait,
    /// The refresh token is consumed and its successor lost: end the session without
    /// sending it.
    Lost,
    /// No refresh token and the access token has expired.
    NoRefreshToken,
    /// Send the refresh. `resend`: the token may be consumed, but the provider's reuse
    /// interval still accepts it.
    Refresh {
        resend: bool,
    },
}

/// Decides; see the module table.
pub(crate) fn decide(s: &Situation) -> Decision {
    use Decision as D;
    if let Some(c) = &s.committed {
        if c.state != SessionState::Active && c.generation >= s.generation {
            return D::Ended(c.state); // 1
        }
    }
    let committed_gen = s.committed.as_ref().map(|c| c.generation);
    let committed_hash = s.committed.as_ref().and_then(|c| c.hash.clone());
    if committed_gen.is_none() {
        // A new (or rolled back to empty) database: the newest of ours and the store's
        // becomes the committed generation.
        return match &s.stored {
            Stored::Holds { generation, hash } if *generation >= s.generation => {
                D::CommitStored { expected: None, generation: *generation, hash: hash.clone() }
            }
            _ => D::Register, // 0
        };
    }
    // 2–4: the store is ahead of the database.
    if let Stored::Holds { generation, hash } = &s.stored {
        if committed_gen.is_none_or(|c| *generation > c) {
            let contradicted = s.journal.as_ref().is_some_and(|j| {
                Some(j.from_generation) == committed_gen
                    && *generation == j.from_generation + 1
                    && j.new_hash.as_ref().is_some_and(|h| h != hash)
            });
            if contradicted {
                return D::StoreMismatch { generation: *generation }; // 3
            }
            return D::CommitStored {
                expected: committed_gen,
                generation: *generation,
                hash: hash.clone(),
            }; // 2, 4
        }
    }
    let Some(c) = committed_gen else {
        return D::Register;
    };
    // 5–7: the store against the committed generation.
    let store_has_committed = matches!(&s.stored,
        Stored::Holds { generation, hash } if *generation == c && Some(hash) == committed_hash.as_ref());
    if !store_has_committed {
        let we_hold_it = s.generation == c && committed_hash.as_deref() == Some(s.hash.as_str());
        let we_hold_successor = s.unsaved && s.generation == c + 1;
        return if we_hold_it {
            D::RepairStore // 5
        } else if we_hold_successor
            && matches!(&s.stored, Stored::Holds { generation, .. } if *generation == c)
        {
            // The store holds the committed generation under another hash: not ours to
            // overwrite with a successor of a session we cannot see.
            D::StoreMismatch { generation: c }
        } else if we_hold_successor {
            D::PersistUnsaved
        } else {
            D::StoreMismatch { generation: c } // 6
        };
    }
    if s.generation < c {
        return D::Adopt { generation: c }; // 7
    }
    if s.generation > c {
        return if s.unsaved && s.generation == c + 1 {
            D::PersistUnsaved // 8
        } else {
            D::StoreMismatch { generation: c } // 9
        };
    }
    if !s.force && s.fresh {
        return D::StillFresh; // 10
    }
    if let Some(j) = s.journal.as_ref().filter(|j| j.ours && j.from_generation == c) {
        // Our own earlier attempt whose outcome is unknown (a broken connection, a timeout):
        // nobody else can commit it, so there is nothing to wait for; but while the access
        // token is valid it is not worth the risk of a reuse.
        if j.phase == JournalPhase::RequestSent && s.valid {
            return D::KeepValid; // 16
        }
    }
    if let Some(j) = s.journal.as_ref().filter(|j| !j.ours && j.from_generation == c) {
        let within = |limit: Duration| j.age.is_some_and(|a| a < limit);
        let in_reuse = s.reuse_interval.is_some_and(within);
        match j.phase {
            JournalPhase::RequestSent => {
                if in_reuse && s.has_refresh_token {
                    return D::Refresh { resend: true }; // 15
                }
                if s.valid {
                    return D::KeepValid; // 16
                }
                if within(s.in_doubt_wait) {
                    return D::Wait; // 17
                }
                // 18: fall through to a normal refresh with the old token.
            }
            _ => {
                if in_reuse && s.has_refresh_token {
                    return D::Refresh { resend: true }; // 11
                }
                if s.valid {
                    return D::KeepValid; // 12
                }
                if within(s.answered_limit) {
                    return D::Wait; // 13
                }
                return D::Lost; // 14
            }
        }
    }
    if !s.has_refresh_token {
        return if s.valid { D::KeepValid } else { D::NoRefreshToken }; // 19, 20
    }
    D::Refresh { resend: false } // 21
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision as D;

    const G: u64 = 5;

    fn base() -> Situation {
        Situation {
            force: false,
            generation: G,
            hash: "h5".into(),
            fresh: false,
            valid: false,
            has_refresh_token: true,
            unsaved: false,
            committed: Some(Committed {
                generation: G,
                hash: Some("h5".into()),
                state: SessionState::Active,
            }),
            stored: Stored::Holds { generation: G, hash: "h5".into() },
            journal: None,
            reuse_interval: None,
            in_doubt_wait: Duration::from_secs(30),
            answered_limit: Duration::from_secs(600),
        }
    }

    fn journal(phase: JournalPhase, age_s: Option<u64>, hash: Option<&str>) -> Option<Journal> {
        Some(Journal {
            ours: false,
            from_generation: G,
            phase,
            new_hash: hash.map(String::from),
            age: age_s.map(Duration::from_secs),
        })
    }

    fn committed(generation: u64, hash: Option<&str>, state: SessionState) -> Option<Committed> {
        Some(Committed { generation, hash: hash.map(String::from), state })
    }

    fn holds(generation: u64, hash: &str) -> Stored {
        Stored::Holds { generation, hash: hash.into() }
    }

    /// Every row of the module table, and the edges between rows.
    #[test]
    fn decision_table() {
        type Case = (&'static str, fn(&mut Situation), Decision);
        let cases: Vec<Case> = vec![
            (
                "1 logged out elsewhere",
                |s| s.committed = committed(6, None, SessionState::LoggedOut),
                D::Ended(SessionState::LoggedOut),
            ),
            (
                "1 reauth at our generation",
                |s| s.committed = committed(G, None, SessionState::ReauthRequired),
                D::Ended(SessionState::ReauthRequired),
            ),
            (
                "1 ended below us is not ours",
                |s| {
                    s.committed = committed(G - 1, None, SessionState::LoggedOut);
                    s.stored = holds(G, "h5");
                },
                D::CommitStored { expected: Some(G - 1), generation: G, hash: "h5".into() },
            ),
            (
                "2 roll forward an interrupted commit",
                |s| {
                    s.stored = holds(G + 1, "h6");
                    s.journal = journal(JournalPhase::Saving, Some(1), Some("h6"));
                },
                D::CommitStored { expected: Some(G), generation: G + 1, hash: "h6".into() },
            ),
            (
                "2 roll forward from answered",
                |s| {
                    s.stored = holds(G + 1, "h6");
                    s.journal = journal(JournalPhase::Answered, Some(1), Some("h6"));
                },
                D::CommitStored { expected: Some(G), generation: G + 1, hash: "h6".into() },
            ),
            (
                "2 store two ahead (committed g+1, saved g+2)",
                |s| {
                    s.generation = G - 1;
                    s.hash = "h4".into();
                    s.stored = holds(G + 1, "h6");
                    s.journal = journal(JournalPhase::Saving, Some(1), Some("h6"));
                },
                D::CommitStored { expected: Some(G), generation: G + 1, hash: "h6".into() },
            ),
            (
                "3 journal names another hash",
                |s| {
                    s.stored = holds(G + 1, "h6");
                    s.journal = journal(JournalPhase::Saving, Some(1), Some("other"));
                },
                D::StoreMismatch { generation: G + 1 },
            ),
            (
                "4 power loss: store ahead, no journal",
                |s| s.stored = holds(G + 2, "h7"),
                D::CommitStored { expected: Some(G), generation: G + 2, hash: "h7".into() },
            ),
            (
                "4 empty database, store holds a session",
                |s| {
                    s.committed = None;
                    s.stored = holds(G, "h5");
                },
                D::CommitStored { expected: None, generation: G, hash: "h5".into() },
            ),
            (
                "0 empty database, store behind us",
                |s| {
                    s.committed = None;
                    s.stored = holds(G - 1, "h4");
                },
                D::Register,
            ),
            (
                "0 empty database, empty store",
                |s| {
                    s.committed = None;
                    s.stored = Stored::Empty;
                },
                D::Register,
            ),
            ("5 store lost our committed tokens", |s| s.stored = Stored::Empty, D::RepairStore),
            (
                "5 store holds another hash at our committed generation",
                |s| s.stored = holds(G, "x"),
                D::RepairStore,
            ),
            (
                "5 store behind, we hold the committed",
                |s| s.stored = holds(G - 1, "h4"),
                D::RepairStore,
            ),
            (
                "5 foreign store, we hold the committed",
                |s| s.stored = Stored::Foreign,
                D::RepairStore,
            ),
            (
                "6 store behind a newer committed",
                |s| {
                    s.committed = committed(G + 1, Some("h6"), SessionState::Active);
                },
                D::StoreMismatch { generation: G + 1 },
            ),
            (
                "6 store empty, committed newer",
                |s| {
                    s.committed = committed(G + 1, Some("h6"), SessionState::Active);
                    s.stored = Stored::Empty;
                },
                D::StoreMismatch { generation: G + 1 },
            ),
            (
                "6 same generation, other hash everywhere",
                |s| {
                    s.committed = committed(G, Some("x"), SessionState::Active);
                    s.stored = holds(G, "y");
                },
                D::StoreMismatch { generation: G },
            ),
            (
                "7 adopt the committed from the store",
                |s| {
                    s.committed = committed(G + 1, Some("h6"), SessionState::Active);
                    s.stored = holds(G + 1, "h6");
                },
                D::Adopt { generation: G + 1 },
            ),
            (
                "7 adopt even when forced",
                |s| {
                    s.force = true;
                    s.committed = committed(G + 1, Some("h6"), SessionState::Active);
                    s.stored = holds(G + 1, "h6");
                },
                D::Adopt { generation: G + 1 },
            ),
            (
                "8 unsaved successor",
                |s| {
                    s.generation = G + 1;
                    s.hash = "h6".into();
                    s.unsaved = true;
                },
                D::PersistUnsaved,
            ),
            (
                "8 unsaved successor, store lost the committed",
                |s| {
                    s.generation = G + 1;
                    s.hash = "h6".into();
                    s.unsaved = true;
                    s.stored = Stored::Empty;
                },
                D::PersistUnsaved,
            ),
            (
                "8 unsaved successor of a committed we cannot see",
                |s| {
                    s.generation = G + 1;
                    s.hash = "h6".into();
                    s.unsaved = true;
                    s.stored = holds(G, "x");
                },
                D::StoreMismatch { generation: G },
            ),
            (
                "8 unsaved but not the successor",
                |s| {
                    s.generation = G + 2;
                    s.hash = "h7".into();
                    s.unsaved = true;
                },
                D::StoreMismatch { generation: G },
            ),
            (
                "9 ahead of committed, saved",
                |s| {
                    s.generation = G + 1;
                    s.hash = "h6".into();
                },
                D::StoreMismatch { generation: G },
            ),
            (
                "10 still fresh",
                |s| {
                    s.fresh = true;
                    s.valid = true;
                },
                D::StillFresh,
            ),
            (
                "10 forced skips freshness",
                |s| {
                    s.force = true;
                    s.fresh = true;
                    s.valid = true;
                },
                D::Refresh { resend: false },
            ),
            (
                "11 answered, inside the reuse interval",
                |s| {
                    s.reuse_interval = Some(Duration::from_secs(10));
                    s.journal = journal(JournalPhase::Answered, Some(2), Some("h6"));
                },
                D::Refresh { resend: true },
            ),
            (
                "11 answered, outside the reuse interval",
                |s| {
                    s.reuse_interval = Some(Duration::from_secs(10));
                    s.journal = journal(JournalPhase::Answered, Some(20), Some("h6"));
                },
                D::Wait,
            ),
            (
                "12 answered, valid token",
                |s| {
                    s.valid = true;
                    s.journal = journal(JournalPhase::Saving, Some(2), Some("h6"));
                },
                D::KeepValid,
            ),
            (
                "12 answered, valid token, forced",
                |s| {
                    s.force = true;
                    s.valid = true;
                    s.fresh = true;
                    s.journal = journal(JournalPhase::Answered, Some(2), Some("h6"));
                },
                D::KeepValid,
            ),
            (
                "13 answered, expired, recent",
                |s| s.journal = journal(JournalPhase::Answered, Some(2), Some("h6")),
                D::Wait,
            ),
            (
                "14 answered, expired, old",
                |s| s.journal = journal(JournalPhase::Answered, Some(3600), Some("h6")),
                D::Lost,
            ),
            (
                "14 answered before a reboot",
                |s| s.journal = journal(JournalPhase::Saving, None, Some("h6")),
                D::Lost,
            ),
            (
                "15 request sent, inside the reuse interval",
                |s| {
                    s.reuse_interval = Some(Duration::from_secs(10));
                    s.journal = journal(JournalPhase::RequestSent, Some(1), None);
                },
                D::Refresh { resend: true },
            ),
            (
                "16 request sent, valid token",
                |s| {
                    s.valid = true;
                    s.journal = journal(JournalPhase::RequestSent, Some(1), None);
                },
                D::KeepValid,
            ),
            (
                "17 request sent, expired, recent",
                |s| s.journal = journal(JournalPhase::RequestSent, Some(1), None),
                D::Wait,
            ),
            (
                "18 request sent, expired, old",
                |s| s.journal = journal(JournalPhase::RequestSent, Some(60), None),
                D::Refresh { resend: false },
            ),
            (
                "18 request sent before a reboot",
                |s| s.journal = journal(JournalPhase::RequestSent, None, None),
                D::Refresh { resend: false },
            ),
            (
                "journal of an older generation is settled",
                |s| {
                    s.journal = journal(JournalPhase::Answered, Some(1), Some("h5"));
                    s.journal.as_mut().unwrap().from_generation = G - 1;
                },
                D::Refresh { resend: false },
            ),
            (
                "our own journal entry",
                |s| {
                    s.journal = journal(JournalPhase::RequestSent, Some(1), None);
                    s.journal.as_mut().unwrap().ours = true;
                },
                D::Refresh { resend: false },
            ),
            (
                "19 no refresh token, valid",
                |s| {
                    s.has_refresh_token = false;
                    s.valid = true;
                },
                D::KeepValid,
            ),
            ("20 no refresh token, expired", |s| s.has_refresh_token = false, D::NoRefreshToken),
            (
                "no refresh token inside the reuse interval",
                |s| {
                    s.has_refresh_token = false;
                    s.reuse_interval = Some(Duration::from_secs(10));
                    s.journal = journal(JournalPhase::RequestSent, Some(1), None);
                },
                D::Wait,
            ),
            ("21 refresh", |_| {}, D::Refresh { resend: false }),
        ];
        for (name, edit, want) in cases {
            let mut s = base();
            edit(&mut s);
            assert_eq!(decide(&s), want, "case `{name}`: {s:?}");
        }
    }

    /// A consumed refresh token is never sent (outside a configured reuse interval): over
    /// every combination of journal phase, age, validity and store view, `Refresh` comes
    /// only when no journal of another holder says the token may be consumed, or when the
    /// request_sent entry is old enough that its holder cannot still commit.
    #[test]
    fn never_resends_a_consumed_token() {
        let phases = [JournalPhase::RequestSent, JournalPhase::Answered, JournalPhase::Saving];
        let ages = [None, Some(0), Some(5), Some(29), Some(31), Some(599), Some(601)];
        for phase in phases {
            for age in ages {
                for valid in [false, true] {
                    for force in [false, true] {
                        let mut s = base();
                        s.valid = valid;
                        s.fresh = valid;
                        s.force = force;
                        s.journal = journal(phase, age, Some("h6"));
                        let d = decide(&s);
                        if let D::Refresh { .. } = d {
                            assert_eq!(phase, JournalPhase::RequestSent, "{s:?}");
                            assert!(!valid, "a valid token is kept: {s:?}");
                            assert!(age.is_none_or(|a| a >= 30), "{s:?}");
                        }
                    }
                }
            }
        }
    }
}
