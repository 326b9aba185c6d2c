//! TEMPORARY STUB (replaced by the real implementation).
#![allow(missing_docs, unused)]
use crate::{Clock, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    pub lease: Duration,
    pub renew_every: Duration,
    pub acquire_timeout: Duration,
    pub busy_timeout: Duration,
}
impl Default for CoordinatorConfig {
    fn default() -> Self {
        todo!()
    }
}
#[derive(Clone, Debug)]
pub struct Coordinator {
    p: PathBuf,
}
#[derive(Debug)]
pub struct Lease;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionState {
    Active,
    LoggedOut,
    ReauthRequired,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JournalPhase {
    RequestSent,
    ResponseReceived,
    Saving,
}
#[derive(Debug, Clone)]
pub struct GenerationRecord {
    pub generation: u64,
    pub token_hash: Option<String>,
    pub state: SessionState,
    pub updated_at_ms: i64,
}
#[derive(Debug, Clone)]
pub struct JournalEntry {
    pub holder: String,
    pub fence: u64,
    pub from_generation: u64,
    pub phase: JournalPhase,
    pub new_token_hash: Option<String>,
    pub started_at_ms: i64,
    pub updated_at_ms: i64,
}
impl Coordinator {
    pub fn open(
        path: impl Into<PathBuf>,
        config: CoordinatorConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        todo!()
    }
    pub async fn acquire(&self, account: &str, holder: &str) -> Result<Lease> {
        todo!()
    }
    pub async fn acquire_within(
        &self,
        account: &str,
        holder: &str,
        timeout: Duration,
    ) -> Result<Lease> {
        todo!()
    }
    pub async fn try_acquire(&self, account: &str, holder: &str) -> Result<Option<Lease>> {
        todo!()
    }
    pub async fn generation(&self, account: &str) -> Result<Option<GenerationRecord>> {
        todo!()
    }
    pub async fn commit(
        &self,
        account: &str,
        expected: Option<u64>,
        new_generation: u64,
        token_hash: &str,
    ) -> Result<bool> {
        todo!()
    }
    pub async fn register(
        &self,
        account: &str,
        generation: u64,
        token_hash: &str,
    ) -> Result<GenerationRecord> {
        todo!()
    }
    pub async fn end(&self, account: &str, state: SessionState) -> Result<u64> {
        todo!()
    }
    pub async fn journal(&self, account: &str) -> Result<Option<JournalEntry>> {
        todo!()
    }
    pub async fn pause(&self) {
        todo!()
    }
    pub fn resume(&self) {
        todo!()
    }
    pub fn path(&self) -> &Path {
        todo!()
    }
}
impl Lease {
    pub fn fence(&self) -> u64 {
        todo!()
    }
    pub fn is_lost(&self) -> bool {
        todo!()
    }
    pub async fn journal_begin(&self, from_generation: u64) -> Result<()> {
        todo!()
    }
    pub async fn journal_phase(
        &self,
        phase: JournalPhase,
        new_token_hash: Option<&str>,
    ) -> Result<()> {
        todo!()
    }
    pub async fn journal_clear(&self) -> Result<()> {
        todo!()
    }
    pub async fn release(self) -> Result<()> {
        todo!()
    }
}
