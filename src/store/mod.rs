//! Storage: the [`Store`] trait of application operations, and its SQLite implementation. This
//! is the only place SQL lives.
//!
//! All writes go through [`Store::execute`], one write path that queues commands and commits
//! them in batches, one transaction per batch and a savepoint per command, so each command
//! succeeds or fails on its own while many share one durable commit (group commit).

pub mod sqlite;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::domain::{Command, Receipt, Rejection, Role, StoreError, VoucherStatus};
use crate::fees::statement::Statement;
use crate::ledger::VerifyReport;
use crate::money::Amount;
use crate::policy::PolicyRef;

/// The most commands one write transaction takes.
pub const MAX_BATCH: usize = 512;
/// How many commands may wait for the writer before callers are slowed down.
pub const QUEUE_DEPTH: usize = 8192;

/// A command with who sent it and, for retries, its idempotency key.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// Token id, recorded on every entry; `None` for the operator's command line.
    pub actor: Option<i64>,
    pub idempotency: Option<Idempotency>,
    pub command: Command,
}

impl Envelope {
    /// A command from the operator's command line: no token, no idempotency key.
    pub fn operator(command: Command) -> Envelope {
        Envelope {
            actor: None,
            idempotency: None,
            command,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idempotency {
    /// Keys are scoped to a token: two tills may use the same key.
    pub scope: String,
    pub key: String,
    /// A digest of the request; the same key with another request is refused.
    pub fingerprint: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub result: Result<Receipt, Rejection>,
    /// True when this is the remembered outcome of an earlier request with the same key.
    pub replayed: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
    pub business_date: Option<NaiveDate>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WalletView {
    pub cooperative: String,
    pub paid: Amount,
    pub bonus: Amount,
    pub total: Amount,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VoucherRow {
    pub id: i64,
    pub serial: u64,
    pub key_id: u8,
    pub cooperative: String,
    pub household: Option<String>,
    pub status: VoucherStatus,
    pub paid: Amount,
    pub bonus: Amount,
    pub balance: Amount,
    pub issued_on: NaiveDate,
    pub expires_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HouseholdView {
    pub id: i64,
    pub code: String,
    pub compound: String,
    pub company: String,
    pub eligible: bool,
    pub area_dm2: i64,
    pub name: Option<String>,
    pub link_version: i64,
    pub wallets: Vec<WalletView>,
    pub vouchers: Vec<VoucherRow>,
    /// Fee receivable: positive = owes, negative = prepaid.
    pub fees_balance: Amount,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HistoryItem {
    pub entry: i64,
    pub kind: String,
    pub business_date: NaiveDate,
    pub memo: Option<String>,
    /// The household's own accounts touched, with the change on each (positive = more credit
    /// for wallets and vouchers, more owed for fees).
    pub changes: Vec<(String, Amount)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HistoryPage {
    pub items: Vec<HistoryItem>,
    /// Pass as `before` for the next (older) page.
    pub next_before: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    pub id: i64,
    pub role: Role,
    /// The codes of what the token is bound to, as its role needs.
    pub cooperative: Option<String>,
    pub shop: Option<String>,
    pub company: Option<String>,
    pub household: Option<String>,
    pub label: Option<String>,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub revoked: bool,
}

/// What a resident's sign-in is checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HouseholdCredentials {
    pub id: i64,
    pub code: String,
    pub pin_hash: Option<String>,
    pub link_version: i64,
}

/// Figures of the write path, for metrics: how well group commit is batching.
#[derive(Debug, Default)]
pub struct WriteStats {
    pub batches: AtomicU64,
    pub commands: AtomicU64,
    pub largest: AtomicU64,
}

impl WriteStats {
    pub fn record(&self, batch: usize) {
        let n = batch as u64;
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.commands.fetch_add(n, Ordering::Relaxed);
        self.largest.fetch_max(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.batches.load(Ordering::Relaxed),
            self.commands.load(Ordering::Relaxed),
            self.largest.load(Ordering::Relaxed),
        )
    }
}

/// The application's storage, one implementation per backend.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The one write path: runs the command in the next batch and answers once that batch is
    /// durably committed. A rejection is an `Ok(Outcome)` too, remembered with its key.
    async fn execute(&self, envelope: Envelope) -> Result<Outcome, StoreError>;

    async fn head(&self) -> Result<Head, StoreError>;
    /// Recomputes the hash chain and every balance from postings.
    async fn verify(&self) -> Result<VerifyReport, StoreError>;
    async fn household(&self, code: &str) -> Result<Option<HouseholdView>, StoreError>;
    async fn history(
        &self,
        household: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Option<HistoryPage>, StoreError>;
    async fn voucher(&self, serial: u64) -> Result<Option<VoucherRow>, StoreError>;
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError>;
    async fn household_credentials(
        &self,
        code: &str,
    ) -> Result<Option<HouseholdCredentials>, StoreError>;
    /// Every account by path `owner_kind:owner_code:name`, with its balance.
    async fn balances(&self) -> Result<BTreeMap<String, Amount>, StoreError>;
    async fn applied_policies(&self) -> Result<Vec<PolicyRef>, StoreError>;
    fn write_stats(&self) -> &WriteStats;

    /// A company's statement for a month (`YYYY-MM`); `None` for an unknown company.
    async fn statement(&self, company: &str, month: &str) -> Result<Option<Statement>, StoreError>;
    /// A household's unpaid bills, oldest first: (month, amount, settled).
    async fn open_bills(&self, household: &str) -> Result<Vec<(String, Amount, Amount)>, StoreError>;
    /// Every stored month close with its inputs and shares (household code, weight, cap,
    /// amount), and what its entry actually credited each household, for audit.
    async fn close_runs(&self) -> Result<Vec<CloseRun>, StoreError>;
}

/// A stored month close, as `hongxin verify` re-checks it.
#[derive(Clone, Debug)]
pub struct CloseRun {
    pub cooperative: String,
    pub month: String,
    pub inputs: String,
    pub shares: Vec<(String, i64, Option<Amount>, Amount)>,
    /// Per household code, the fee credit posted by the close's entry.
    pub posted: BTreeMap<String, Amount>,
}
