//! Storage: the [`Store`] trait of application operations, and its two implementations, SQLite
//! and PostgreSQL, which decode what they read through the same `rows` functions. This is the
//! only place SQL lives.
//!
//! All writes go through [`Store::execute`], one write path that queues commands and commits
//! them in batches, one transaction per batch and a savepoint per command, so each command
//! succeeds or fails on its own while many share one durable commit (group commit).

pub mod pg_hosts;
pub mod postgres;
mod rows;
pub mod sqlite;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::domain::{
    CatalogItem, Command, ExchangeReceipt, MasterChangeRecord, Receipt, Rejection, Role,
    StoreError, Subject, TopUpReceipt, VoucherStatus,
};
use crate::fees::statement::Statement;
use crate::ledger::{audit, AccountId, AccountType, EntryKind, VerifyReport};
use crate::money::Amount;
use crate::policy::PolicyRef;
use crate::voucher::{KeyRing, VoucherCode};

/// Fault injection for the crash tests (tests/multiprocess.rs): with `HONGXIN_CRASH_AT` set to
/// `point:n`, the process aborts, as `kill -9` would stop it, the n-th time a writer reaches
/// `point`. Points: `persist_entries` (a batch's entries written, the rest not yet),
/// `before_commit`, `before_reply` (committed, nobody answered). Unset, it costs one load.
pub(crate) fn crash_point(point: &str) {
    static AT: std::sync::OnceLock<Option<(String, u64)>> = std::sync::OnceLock::new();
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let at = AT.get_or_init(|| {
        let spec = std::env::var("HONGXIN_CRASH_AT").ok()?;
        let (name, n) = spec.split_once(':')?;
        Some((name.to_string(), n.parse().ok()?))
    });
    if let Some((name, n)) = at {
        if name == point && SEEN.fetch_add(1, Ordering::Relaxed) + 1 == *n {
            eprintln!("HONGXIN_CRASH_AT: aborting at {point}");
            std::process::abort();
        }
    }
}

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
    /// The digest releases before canonical fingerprints took of the same request (over its
    /// raw bytes), so a retry sent across that upgrade still replays instead of being refused.
    pub raw_fingerprint: Option<String>,
}

impl Idempotency {
    /// Whether a stored fingerprint is this request's.
    pub fn matches(&self, stored: &str) -> bool {
        stored == self.fingerprint || self.raw_fingerprint.as_deref() == Some(stored)
    }
}

/// What the idempotency table keeps of a command's outcome. A voucher code is a bearer
/// instrument, so it is never stored: the receipt is kept with the code blanked, beside the
/// code's key id and serial, and a replay signs the serial again with the key ring
/// ([`VoucherCode::reissue`]) to answer with the identical code. Both stores go through
/// [`outcome_to_store`] and [`outcome_from_store`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredOutcome {
    result: Result<Receipt, Rejection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    voucher: Option<SealedCode>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedCode {
    key_id: u8,
    serial: u64,
}

/// The text stored for an outcome: the receipt without any voucher code in it.
pub(crate) fn outcome_to_store(
    result: &Result<Receipt, Rejection>,
    ring: &KeyRing,
) -> Result<String, StoreError> {
    let mut result = result.clone();
    let voucher = match &mut result {
        Ok(Receipt::TopUp(TopUpReceipt {
            voucher: Some(v), ..
        }))
        | Ok(Receipt::Exchanged(ExchangeReceipt { voucher: v, .. })) => {
            let code = VoucherCode::verify(ring, &v.code)
                .map_err(|e| StoreError(format!("a receipt's voucher code: {e}")))?;
            v.code = String::new();
            Some(SealedCode {
                key_id: code.key_id(),
                serial: code.serial(),
            })
        }
        _ => None,
    };
    serde_json::to_string(&StoredOutcome { result, voucher })
        .map_err(|e| StoreError(format!("storing an outcome: {e}")))
}

/// What breakage took from voucher `?` (paid, bonus): the debits to its accounts by expiry
/// entries (the first expiry rule's, or `breakage_after_months`'). `?` is the one parameter.
pub(crate) const VOUCHER_BREAKAGE_SQL: &str =
    "SELECT CAST(COALESCE(SUM(CASE WHEN a.name = 'paid' THEN p.amount ELSE 0 END), 0) AS BIGINT),
            CAST(COALESCE(SUM(CASE WHEN a.name = 'bonus' THEN p.amount ELSE 0 END), 0) AS BIGINT)
     FROM postings p
     JOIN accounts a ON a.id = p.account_id
     JOIN entries e ON e.id = p.entry_id
     WHERE a.owner_kind = 'voucher' AND a.owner_id = ? AND e.kind = 'voucher_expiry'";

/// A SQL condition that finds the outcomes stored before codes were taken out of them: a bare
/// top-up receipt that issued a voucher. (New outcomes start with `{"result":`.)
pub(crate) const OUTCOMES_WITH_CODES: &str =
    "outcome LIKE '{\"Ok\":{\"kind\":\"top_up\"%' AND outcome NOT LIKE '%\"voucher\":null%'";

/// An outcome stored with its voucher code in clear, rewritten as [`outcome_to_store`] writes it;
/// `None` when there is nothing to rewrite, or when the code no longer verifies (its key was
/// retired: the code is spent as a credential and is left to the retention prune).
pub(crate) fn outcome_without_code(text: &str, ring: &KeyRing) -> Option<String> {
    if serde_json::from_str::<StoredOutcome>(text).is_ok() {
        return None;
    }
    let legacy = serde_json::from_str::<Result<Receipt, Rejection>>(text).ok()?;
    match outcome_to_store(&legacy, ring) {
        Ok(sealed) => Some(sealed),
        Err(e) => {
            tracing::warn!(error = %e, "an old idempotency outcome keeps its voucher code until it is pruned");
            None
        }
    }
}

/// The outcome a replay answers with, its voucher code signed again from the stored serial.
/// Rows written before codes were taken out (the bare `Result`) are still read.
pub(crate) fn outcome_from_store(
    text: &str,
    ring: &KeyRing,
) -> Result<Result<Receipt, Rejection>, StoreError> {
    let unreadable = |e: serde_json::Error| StoreError(format!("stored outcome unreadable: {e}"));
    let stored: StoredOutcome = match serde_json::from_str(text) {
        Ok(s) => s,
        Err(_) => {
            return serde_json::from_str::<Result<Receipt, Rejection>>(text).map_err(unreadable)
        }
    };
    let mut result = stored.result;
    match (&mut result, stored.voucher) {
        (
            Ok(Receipt::TopUp(TopUpReceipt {
                voucher: Some(v), ..
            }))
            | Ok(Receipt::Exchanged(ExchangeReceipt { voucher: v, .. })),
            Some(sealed),
        ) => {
            v.code = VoucherCode::reissue(ring, sealed.key_id, sealed.serial)
                .ok_or_else(|| {
                    StoreError(format!(
                        "the voucher key {} of a stored receipt is retired or unknown",
                        sealed.key_id
                    ))
                })?
                .encode();
        }
        (_, None) => {}
        (_, Some(_)) => {
            return Err(StoreError(
                "stored outcome unreadable: a sealed code without a voucher".into(),
            ))
        }
    }
    Ok(result)
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
    /// 楼栋 and 网格, where the household carries them.
    pub building: Option<String>,
    pub grid: Option<String>,
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
    /// Failed PIN attempts in a row, and the end of the PIN's lockout.
    pub pin_failures: i64,
    pub pin_locked_until: Option<chrono::DateTime<chrono::Utc>>,
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

/// How long a token read from the database is trusted without reading it again. Revocations
/// made through this process's writer (and, on PostgreSQL, any process's: `NOTIFY`) reach the
/// cache at once; this bounds what nothing can announce (a revocation by the command line on
/// an SQLite file a server has open, a lost notification connection).
pub const TOKEN_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);
/// Tokens held at most; the cache starts over when it is full.
const TOKEN_CACHE_CAPACITY: usize = 100_000;

/// The tokens requests were authenticated with, by hash, so that a request does not wait for a
/// database read to know who sent it. Unknown hashes are never cached. A revocation empties
/// the cache once it is committed ([`TokenCache::invalidate`]); a read that began before it
/// cannot put the old record back (the generation it began with no longer holds).
#[derive(Debug, Default)]
pub struct TokenCache {
    entries:
        std::sync::RwLock<std::collections::HashMap<String, (TokenRecord, std::time::Instant)>>,
    generation: AtomicU64,
}

impl TokenCache {
    /// The token with this hash, when read within [`TOKEN_CACHE_TTL`].
    pub fn get(&self, hash: &str) -> Option<TokenRecord> {
        let entries = self.entries.read().ok()?;
        let (record, read_at) = entries.get(hash)?;
        (read_at.elapsed() < TOKEN_CACHE_TTL).then(|| record.clone())
    }

    /// The generation to hand to [`TokenCache::put`]: taken before the database read.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps a token read from the database, unless a revocation came since `generation`.
    pub fn put(&self, hash: &str, record: TokenRecord, generation: u64) {
        if let Ok(mut entries) = self.entries.write() {
            if self.generation.load(Ordering::Acquire) != generation {
                return;
            }
            if entries.len() >= TOKEN_CACHE_CAPACITY {
                entries.clear();
            }
            entries.insert(hash.to_string(), (record, std::time::Instant::now()));
        }
    }

    /// Forgets every token: a revocation has been committed.
    pub fn invalidate(&self) {
        if let Ok(mut entries) = self.entries.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            entries.clear();
        }
    }

    /// Reads through the cache: `read` is the database read.
    pub async fn read_through<F>(
        &self,
        hash: &str,
        read: F,
    ) -> Result<Option<TokenRecord>, StoreError>
    where
        F: std::future::Future<Output = Result<Option<TokenRecord>, StoreError>>,
    {
        if let Some(record) = self.get(hash) {
            return Ok(Some(record));
        }
        let generation = self.generation();
        let found = read.await?;
        if let Some(record) = &found {
            self.put(hash, record.clone(), generation);
        }
        Ok(found)
    }
}

/// A policy as an entry names it, `id@version`, split into its id and version; `None` for a
/// name without a version (nothing to record in `policy_applications`).
pub(crate) fn policy_version(name: &str) -> Result<Option<(&str, i64)>, StoreError> {
    let Some((id, version)) = name.rsplit_once('@') else {
        return Ok(None);
    };
    let version = version
        .parse::<i64>()
        .map_err(|e| StoreError(format!("bad policy version in {name:?}: {e}")))?;
    Ok(Some((id, version)))
}

/// Whether a batch holds a command that revokes tokens (a household's new card link ends its
/// residents' sessions): its commit empties the token caches.
pub fn revokes_tokens(command: &Command) -> bool {
    matches!(
        command,
        Command::RevokeToken { .. } | Command::RotateHouseholdLink { .. } | Command::MoveOut(_)
    )
}

/// The cooperative codes in a household's wallet account names (`wallet:{coop}:paid`).
pub(crate) fn wallet_coops(names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter_map(|n| n.strip_prefix("wallet:")?.strip_suffix(":paid"))
        .map(str::to_owned)
        .collect()
}

/// The right to run housekeeping (voucher expiry, pruning) for every process on a database.
/// SQLite has one serving process, so it always holds it. On PostgreSQL it is a session-level
/// advisory lock on a connection of its own: held while that connection lives, released by
/// PostgreSQL when the process dies or the connection breaks, so exactly one of several
/// processes runs housekeeping and another takes over within one interval of its death.
pub enum Lease {
    Local,
    Postgres(sqlx::PgConnection),
}

/// The advisory lock key of the housekeeping lease: the first 8 bytes of
/// SHA-256("hongxin housekeeping"), fixed so every version of hongxin agrees on it.
pub const HOUSEKEEPING_LOCK: i64 = 0x6b1f_5e2c_0d4a_7731;

impl Lease {
    /// Whether the lease is still held: its connection answers.
    pub async fn still_held(&mut self) -> bool {
        match self {
            Lease::Local => true,
            Lease::Postgres(conn) => sqlx::query("SELECT 1").execute(&mut *conn).await.is_ok(),
        }
    }
}

/// The application's storage, one implementation per backend.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The one write path: runs the command in the next batch and answers once that batch is
    /// durably committed. A rejection is an `Ok(Outcome)` too, remembered with its key.
    async fn execute(&self, envelope: Envelope) -> Result<Outcome, StoreError>;

    async fn head(&self) -> Result<Head, StoreError>;
    /// Tries to take the housekeeping [`Lease`]; `None` while another process holds it.
    async fn try_housekeeping_lease(&self) -> Result<Option<Lease>, StoreError>;
    /// Whether anyone has used this database: a token exists or an entry was posted. `hongxin
    /// init` refuses such a database.
    async fn holds_data(&self) -> Result<bool, StoreError>;
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
    /// Unrevoked tokens with this label (of this cooperative, when given), oldest first, at
    /// most `limit`; expired ones included (the caller knows the time).
    async fn tokens_labelled(
        &self,
        label: &str,
        cooperative: Option<&str>,
        limit: u32,
    ) -> Result<Vec<TokenRecord>, StoreError>;
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
    /// A company's numbered fee receipt, for reprinting; `None` when there is none.
    async fn fee_receipt(
        &self,
        company: &str,
        number: i64,
    ) -> Result<Option<crate::fees::FeeReceiptView>, StoreError>;
    /// A household's unpaid bills, oldest first: (month, amount, settled); with `company`, only
    /// those owed to that company (a moved compound's households may owe two).
    async fn open_bills(
        &self,
        household: &str,
        company: Option<&str>,
    ) -> Result<Vec<(String, Amount, Amount)>, StoreError>;
    /// Every stored month close with its inputs and shares (household code, weight, cap,
    /// amount), and what its entry actually credited each household, for audit.
    async fn close_runs(&self) -> Result<Vec<CloseRun>, StoreError>;

    /// A stored close's candidates recomputed for `verify`: every eligible household with its
    /// fees and credit spending as of the end of `month`, read on one snapshot by the same
    /// function as the close's own read ([`crate::domain::Tx::close_candidates`]), from the
    /// entries up to the close's own (`entry_seq`) only, so that what was posted since (bills
    /// for the month generated later, another close) does not count.
    async fn close_candidates(
        &self,
        coop: i64,
        month: &str,
        entry_seq: i64,
    ) -> Result<Vec<crate::domain::Candidate>, StoreError>;

    /// Every closed month: (cooperative, month), oldest first. Cheap, unlike [`Self::close_runs`].
    async fn closed_months(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// The code of the company a household's compound is with on `day` (the rule of the write
    /// path's `household_company_on`, [`rows::company_on`]); `None` for an unknown household.
    async fn household_company_on(
        &self,
        household: &str,
        day: NaiveDate,
    ) -> Result<Option<String>, StoreError>;

    /// One household's fee balance with each company of a compound that moved: (company code,
    /// balance, positive = owed); empty when its compound never moved.
    async fn household_fee_positions(
        &self,
        household: &str,
    ) -> Result<Vec<(String, Amount)>, StoreError>;

    /// One household's fee-account movements summed by service month and entry kind:
    /// (month, kind, amount on the account's normal side), oldest month first. What a
    /// resident's fee view reads instead of whole-company statements
    /// ([`crate::fees::statement::household_months`] turns them into the statement's lines).
    async fn household_fee_movements(
        &self,
        household: &str,
    ) -> Result<Vec<(String, String, Amount)>, StoreError>;

    /// What month closes credited toward one household's fees, read from the closes' own
    /// postings to its fee account: (cooperative, month, amount), newest month first.
    async fn household_close_credits(
        &self,
        household: &str,
    ) -> Result<Vec<(String, String, Amount)>, StoreError>;

    /// Every unpaid bill of a company's households, by household code and then oldest first:
    /// (household, month, amount, settled); `None` for an unknown company. The arrears report
    /// ages them.
    async fn company_open_bills(
        &self,
        company: &str,
    ) -> Result<Option<Vec<(String, String, Amount, Amount)>>, StoreError>;

    // Reading the journal for export and reports (src/export, src/reports). Read-only.

    /// Every account with its owner's code, its stored balance and the business date of its
    /// first posting, in id order.
    async fn accounts(&self) -> Result<Vec<AccountInfo>, StoreError>;
    /// Up to `limit` (at most [`MAX_JOURNAL_CHUNK`]) entries with sequence above `after`, in
    /// sequence order, each with its postings in order.
    async fn journal_chunk(&self, after: i64, limit: u32) -> Result<Vec<JournalEntry>, StoreError>;
    /// Every shop with its cooperative, by code.
    async fn shops(&self) -> Result<Vec<ShopInfo>, StoreError>;
    /// The names of the cooperatives, companies and compounds, by code: what pages, receipts
    /// and statements show beside (or instead of) the codes.
    async fn names(&self) -> Result<Names, StoreError>;
    /// What passed over a shop's till on a business date; `None` for an unknown shop.
    async fn till_figures(
        &self,
        shop: &str,
        date: NaiveDate,
    ) -> Result<Option<TillFigures>, StoreError>;
    /// The top-ups a shop's till took on a business date, newest first (at most
    /// [`MAX_SHOP_TOPUPS`]), voided ones included and marked; `None` for an unknown shop.
    async fn shop_topups(
        &self,
        shop: &str,
        date: NaiveDate,
    ) -> Result<Option<Vec<ShopTopUp>>, StoreError>;
    /// Outstanding prepaid credit of a cooperative: from stored balances, or with `as_of`
    /// recomputed from the postings of entries dated on or before it. Vouchers past their
    /// validity on the report date (`as_of`, else `today`) are also counted apart, and the
    /// breakage recognised to that date is summed. `None` for an unknown cooperative.
    async fn prepaid_figures(
        &self,
        cooperative: &str,
        today: NaiveDate,
        as_of: Option<NaiveDate>,
    ) -> Result<Option<PrepaidFigures>, StoreError>;

    /// Bonus granted to a household by top-ups dated in `month` (`YYYY-MM`), into its wallets
    /// or onto its vouchers: what the monthly bonus cap weighs (the till's top-up preview), read
    /// by the same query the top-up itself runs. `None` for an unknown household.
    async fn bonus_in_month(
        &self,
        household: &str,
        month: &str,
    ) -> Result<Option<Amount>, StoreError>;

    /// A cooperative's catalogue, by SKU, at most [`MAX_CATALOG`] items (what a till sells
    /// from); `None` for an unknown cooperative.
    async fn catalog(&self, cooperative: &str) -> Result<Option<Vec<CatalogItem>>, StoreError>;

    /// The programme's figures for the alliance's reports ([`crate::reports::alliance`]), read
    /// on one snapshot from the tables the write path maintains per month (`programme_months`,
    /// `coop_months`, migration 0015), the stored closes' results, settlements and master
    /// data: thousands of rows however long the journal is. No personal data.
    async fn programme_figures(&self) -> Result<ProgrammeFigures, StoreError>;

    /// Whether the household's compound is in the programme on `day` (master data changes
    /// switch it from a day); `None` for an unknown household.
    async fn eligible_on(
        &self,
        household: &str,
        day: NaiveDate,
    ) -> Result<Option<bool>, StoreError>;

    /// The master data changes, oldest first, optionally of one subject (and code): the
    /// journal's record of old and new values.
    async fn master_changes(
        &self,
        subject: Option<Subject>,
        code: Option<&str>,
    ) -> Result<Vec<MasterChangeRecord>, StoreError>;

    /// A cooperative's paid credit moved per month, oldest first (`paid_credit_months`,
    /// migration 0022): what the custody deposit sums. `None` for an unknown cooperative.
    async fn paid_credit_months(
        &self,
        cooperative: &str,
    ) -> Result<Option<Vec<PaidCreditMonth>>, StoreError>;
}

/// [`Store::eligible_on`]: one body for both backends.
pub(crate) async fn eligible_on_in<DB>(
    pool: &sqlx::Pool<DB>,
    household: &str,
    day: NaiveDate,
) -> Result<Option<bool>, StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (bool,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let sql = format!(
        "SELECT {} FROM households h JOIN compounds c ON c.id = h.compound_id WHERE h.code = $1",
        rows::eligible_on("$2")
    );
    let row: Option<(bool,)> = sqlx::query_as::<DB, (bool,)>(&sql)
        .bind(household)
        .bind(day.to_string())
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|r| r.0))
}

/// `id, entry, subject, field, old, new, effective from, entry's time, actor, subject's code,
/// actor's label (a web session's: the staff token's it was made from) and role`.
type ChangeHistoryRow = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    Option<i64>,
    String,
    Option<String>,
    Option<String>,
);

/// [`Store::master_changes`]: one body for both backends. Changes are few (people make them by
/// hand), so they are filtered here rather than in SQL.
pub(crate) async fn master_changes_in<DB>(
    pool: &sqlx::Pool<DB>,
    subject: Option<Subject>,
    code: Option<&str>,
) -> Result<Vec<MasterChangeRecord>, StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    ChangeHistoryRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    (i64, String): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let rows: Vec<ChangeHistoryRow> = sqlx::query_as::<DB, ChangeHistoryRow>(
        "SELECT m.id, m.entry_id, m.subject, m.field, m.old_value, m.new_value, m.effective_from,
                e.created_at, e.actor_token_id, COALESCE(co.code, s.code, k.code, c.code, h.code, ''),
                CASE WHEN p.id IS NULL THEN t.label ELSE p.label END, t.role
         FROM master_changes m JOIN entries e ON e.id = m.entry_id
         LEFT JOIN tokens t ON t.id = e.actor_token_id
         LEFT JOIN tokens p ON p.id = t.parent_id
         LEFT JOIN cooperatives co ON m.subject = 'cooperative' AND co.id = m.subject_id
         LEFT JOIN shops s ON m.subject = 'shop' AND s.id = m.subject_id
         LEFT JOIN companies k ON m.subject = 'company' AND k.id = m.subject_id
         LEFT JOIN compounds c ON m.subject = 'compound' AND c.id = m.subject_id
         LEFT JOIN households h ON m.subject = 'household' AND h.id = m.subject_id
         ORDER BY m.id",
    )
    .fetch_all(pool)
    .await?;
    let companies: BTreeMap<i64, String> =
        sqlx::query_as::<DB, (i64, String)>("SELECT id, code FROM companies")
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect();
    let shown = |field: &str, value: String| match field {
        "company" => value
            .parse::<i64>()
            .ok()
            .and_then(|id| companies.get(&id).cloned())
            .unwrap_or(value),
        "area" => value
            .parse::<i64>()
            .map(crate::domain::area_text)
            .unwrap_or(value),
        _ => value,
    };
    let mut out = Vec::new();
    for (id, entry, subj, field, old, new, from, at, actor, subject_code, label, role) in rows {
        let Some(subj) = Subject::parse(&subj) else {
            continue;
        };
        if subject.is_some_and(|s| s != subj) || code.is_some_and(|c| c != subject_code) {
            continue;
        }
        out.push(MasterChangeRecord {
            id,
            entry,
            subject: subj,
            code: subject_code,
            old: old.map(|o| shown(&field, o)),
            new: shown(&field, new),
            field: if field == "area" {
                "area_m2".into()
            } else {
                field
            },
            effective_from: rows::date(&from)?,
            recorded_at: at,
            actor,
            actor_label: label,
            actor_role: role.as_deref().and_then(Role::parse),
        });
    }
    Ok(out)
}

/// A compound as the alliance sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CompoundInfo {
    pub code: String,
    pub name: String,
    pub company: String,
    pub eligible: bool,
    /// The day its company took it over (接管).
    pub taken_over_on: Option<NaiveDate>,
    /// Its moves between companies, in date order: the month each took effect (`YYYY-MM`) and
    /// the company it was with before. Its company in a month is the one before the first move
    /// after that month, else `company`.
    pub moves: Vec<(String, String)>,
}

impl CompoundInfo {
    /// The company the compound was with in `month` (`YYYY-MM`).
    pub fn company_in(&self, month: &str) -> &str {
        self.moves
            .iter()
            .find(|(from, _)| from.as_str() > month)
            .map_or(self.company.as_str(), |(_, before)| before.as_str())
    }
}

/// Households of one compound, grid and building (empty text where households carry none)
/// now, and how many of them hold wallet credit or an active voucher with a balance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlaceCount {
    pub compound: String,
    pub grid: String,
    pub building: String,
    pub households: u64,
    pub holders: u64,
}

/// One row of `programme_months`: a compound, grid and building in a month (see migration
/// 0015 for what each figure counts). Amounts in fen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProgrammeMonth {
    pub compound: String,
    pub grid: String,
    pub building: String,
    pub month: String,
    pub bills: u64,
    pub billed: Amount,
    pub collected_in_month: Amount,
    pub collected_late: Amount,
    pub paid: Amount,
    pub allocated: Amount,
    pub topups: u64,
    pub topup_households: u64,
    pub credit_sold: Amount,
    pub bonus_granted: Amount,
    pub credit_spent: Amount,
    pub spend_households: u64,
}

/// A cooperative's sales of a month by how they were paid, net of refunds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CoopMonth {
    pub cooperative: String,
    pub month: String,
    pub credit_sales: Amount,
    pub cash_sales: Amount,
}

/// Everything [`Store::programme_figures`] reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProgrammeFigures {
    /// Company codes and names, by code.
    pub companies: Vec<(String, String)>,
    /// Cooperative codes, sorted.
    pub cooperatives: Vec<String>,
    pub compounds: Vec<CompoundInfo>,
    pub places: Vec<PlaceCount>,
    pub months: Vec<ProgrammeMonth>,
    pub coop_months: Vec<CoopMonth>,
    /// Each stored close: cooperative, month and its result (a `CloseReceipt` as JSON).
    pub closes: Vec<(String, String, String)>,
    /// Settlements summed by cooperative, company and month of their business date.
    pub settlements: Vec<(String, String, String, Amount)>,
    /// The paid part of the prepaid liability moved per cooperative and month
    /// (`paid_credit_months`, migration 0022), by cooperative and month.
    pub paid_credit: Vec<PaidCreditMonth>,
    /// Fee payments to a company other than the one the compound was with in the month of the
    /// payment (a moved compound's old company taking its arrears): the company the compound
    /// was with, the company paid, the month and the sum. The per-compound tables count them
    /// under the former; they are the latter's.
    pub paid_elsewhere: Vec<(String, String, String, Amount)>,
}

/// How much the paid part of a cooperative's prepaid liability (the residents' own money in
/// wallets and vouchers) grew in a month: credits less debits of its paid-credit accounts by
/// entries dated in the month. The balance at a month's end is the sum over that month and
/// every earlier one (`paid_credit_months`, migration 0022).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PaidCreditMonth {
    pub cooperative: String,
    pub month: String,
    pub wallet_paid: Amount,
    pub voucher_paid: Amount,
}

/// The paid credit outstanding at the end of `month` (`YYYY-MM`) in wallets and in vouchers,
/// from a cooperative's [`PaidCreditMonth`] rows.
pub fn paid_credit_at(rows: &[PaidCreditMonth], month: &str) -> Option<(Amount, Amount)> {
    rows.iter().filter(|r| r.month.as_str() <= month).try_fold(
        (Amount::ZERO, Amount::ZERO),
        |(w, v), r| {
            Some((
                w.checked_add(r.wallet_paid)?,
                v.checked_add(r.voucher_paid)?,
            ))
        },
    )
}

/// The most catalogue items [`Store::catalog`] returns.
pub const MAX_CATALOG: u32 = 5_000;

/// The most entries one [`Store::journal_chunk`] returns.
pub const MAX_JOURNAL_CHUNK: u32 = 10_000;

/// An account as the export and reports see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccountInfo {
    pub id: AccountId,
    /// `cooperative`, `company`, `household` or `voucher`.
    pub owner_kind: String,
    /// The owner's code; a voucher's serial in decimal.
    pub owner_code: String,
    /// e.g. `cash:wechat`, `wallet:COOP:paid`, `fees`.
    pub name: String,
    pub kind: AccountType,
    /// On the account's normal side.
    pub balance: Amount,
    /// Business date of its first posting; `None` if it has none.
    pub first_posted: Option<NaiveDate>,
}

impl AccountInfo {
    /// `owner_kind:owner_code:name`, as [`Store::balances`] names accounts.
    pub fn path(&self) -> String {
        format!("{}:{}:{}", self.owner_kind, self.owner_code, self.name)
    }
}

/// A journal entry as the export reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalEntry {
    pub seq: i64,
    pub kind: EntryKind,
    pub business_date: NaiveDate,
    pub memo: Option<String>,
    /// `id@version` of the policy applied.
    pub policy: Option<String>,
    /// The entry's chain hash, lowercase hex.
    pub hash: String,
    /// The sequence of the entry this one reverses or refunds.
    pub reverses: Option<i64>,
    /// In fen, positive = debit, in posting order.
    pub postings: Vec<(AccountId, i64)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Names {
    pub cooperatives: BTreeMap<String, String>,
    pub companies: BTreeMap<String, String>,
    pub compounds: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ShopInfo {
    pub code: String,
    pub name: String,
    pub cooperative: String,
}

/// Top-ups taken at a till by one payment method.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TopupFigures {
    pub method: String,
    pub count: u64,
    pub paid: Amount,
    pub bonus: Amount,
    /// How many of them were delivered as bearer vouchers, and their paid and bonus credit.
    pub vouchers: u64,
    pub voucher_paid: Amount,
    pub voucher_bonus: Amount,
}

/// Sale tenders of one type at a till.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TenderFigures {
    /// `wallet`, `voucher`, `cash`, `wechat` or `alipay`.
    pub tender: String,
    /// Tenders (a split sale counts once per tender).
    pub count: u64,
    pub amount: Amount,
    /// Of a wallet or voucher tender, what came from paid and from bonus credit.
    pub paid: Amount,
    pub bonus: Amount,
    /// Distinct vouchers among them.
    pub vouchers: u64,
}

/// One shop's till on one business date: top-ups and sales by their own dates, refunds by the
/// date of the refund entry (of sales made at the shop).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TillFigures {
    pub topups: Vec<TopupFigures>,
    pub sales: u64,
    pub sales_total: Amount,
    pub tenders: Vec<TenderFigures>,
    pub refunds: u64,
    pub refunds_total: Amount,
    /// What the refunds gave back, by where it went: `wallet`, `voucher`, a cash method, or
    /// `forfeited` (bonus of a voucher that can no longer take it back).
    pub refunded: Vec<(String, Amount)>,
}

/// The most top-ups [`Store::shop_topups`] lists: a till's busiest day stays well below it.
pub const MAX_SHOP_TOPUPS: u32 = 1000;

/// SQL of [`Store::shop_topups`] with `shop` and `date` as its two parameters (`?` or `$n`).
pub(crate) fn shop_topups_sql(shop: &str, date: &str) -> String {
    format!(
        "SELECT t.entry_id, h.code, t.method, t.paid, t.bonus, t.voucher_id, e.created_at,
                t.void_entry_id
         FROM topups t
         JOIN households h ON h.id = t.household_id
         JOIN entries e ON e.id = t.entry_id
         WHERE t.shop_id = {shop} AND t.business_date = {date}
         ORDER BY t.entry_id DESC LIMIT {MAX_SHOP_TOPUPS}"
    )
}

/// A top-up as the till lists its day: no personal data beyond the household's code (a voucher
/// top-up shows no voucher code: the code is a bearer credential).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ShopTopUp {
    /// The top-up's entry: its receipt number, what `POST /v1/topups/{topup}/void` names.
    pub topup: i64,
    pub household: String,
    /// Into the wallet, or onto a bearer voucher.
    pub deliver: crate::domain::Delivery,
    pub method: crate::domain::PayMethod,
    pub paid: Amount,
    pub bonus: Amount,
    /// When it was taken.
    pub at: chrono::DateTime<chrono::Utc>,
    /// Voided (作废) since.
    pub voided: bool,
    /// The void's entry, when voided.
    pub void_entry: Option<i64>,
}

/// A row of [`shop_topups_sql`].
pub(crate) type ShopTopUpRow = (
    i64,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    String,
    Option<i64>,
);

pub(crate) fn shop_topup(row: ShopTopUpRow) -> Result<ShopTopUp, StoreError> {
    let (topup, household, method, paid, bonus, voucher, at, void_entry) = row;
    Ok(ShopTopUp {
        topup,
        household,
        deliver: if voucher.is_some() {
            crate::domain::Delivery::Voucher
        } else {
            crate::domain::Delivery::Wallet
        },
        method: crate::domain::PayMethod::parse(&method)
            .ok_or_else(|| StoreError(format!("bad top-up method {method:?}")))?,
        paid: Amount::from_fen(paid),
        bonus: Amount::from_fen(bonus),
        at: chrono::DateTime::parse_from_rfc3339(&at)
            .map_err(|e| StoreError(format!("bad timestamp {at:?}: {e}")))?
            .to_utc(),
        voided: void_entry.is_some(),
        void_entry,
    })
}

/// Outstanding credit of one kind (wallets or vouchers) at a cooperative.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CreditFigures {
    /// Wallets (households) or vouchers with a positive balance.
    pub holders: u64,
    pub paid: Amount,
    pub bonus: Amount,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PrepaidFigures {
    pub wallets: CreditFigures,
    /// Every voucher with credit left, expired or not…
    pub vouchers: CreditFigures,
    /// …of which those past their validity (`expires_on` before the report date, marked
    /// expired by the expiry run or not yet): still owed, exchangeable.
    pub expired: CreditFigures,
    /// Breakage recognised to the report date on the cooperative's vouchers, net of what
    /// exchanges reinstated: paid credit taken to breakage income, bonus forfeited.
    pub breakage_paid: Amount,
    pub breakage_bonus: Amount,
}

/// Breakage recognised on a cooperative's vouchers, net of what exchanges gave back (paid,
/// bonus): the sum of the postings to its vouchers' accounts by `voucher_expiry` entries (debits:
/// what breakage took) and by `voucher_exchange` entries (an exchange debits the old voucher what
/// was left and credits the new one that plus what breakage had taken, so it nets to minus the
/// reinstated part). No other entry kind is read, so top-ups, sales, refunds and voids drop out.
/// `{coop}` is the parameter of the cooperative's id, `{date}` the one of the business date
/// where `dated`.
pub(crate) fn breakage_sql(coop: &str, date: &str, dated: bool) -> String {
    let dated = if dated {
        format!(" AND e.business_date <= {date}")
    } else {
        String::new()
    };
    format!(
        "SELECT CAST(COALESCE(SUM(CASE WHEN a.name = 'paid' THEN p.amount ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN a.name = 'bonus' THEN p.amount ELSE 0 END), 0) AS BIGINT)
         FROM accounts a
         JOIN postings p ON p.account_id = a.id
         JOIN entries e ON e.id = p.entry_id
         WHERE a.owner_kind = 'voucher'
           AND a.owner_id IN (SELECT id FROM vouchers WHERE cooperative_id = {coop})
           AND e.kind IN ('voucher_expiry', 'voucher_exchange'){dated}"
    )
}

/// A stored month close, as `hongxin verify` re-checks it.
#[derive(Clone, Debug)]
pub struct CloseRun {
    pub cooperative: String,
    pub cooperative_id: i64,
    pub month: String,
    /// The place of its entry in the chain.
    pub entry_seq: Option<i64>,
    pub inputs: String,
    /// The stored result (a `CloseReceipt` as JSON), which the next close reads back.
    pub result: String,
    pub shares: Vec<(String, i64, Option<Amount>, Amount)>,
    /// Per household code, the fee credit posted by the close's entry.
    pub posted: BTreeMap<String, Amount>,
}

/// The three reads of `verify`'s till check that name an entry by its place in the chain: on
/// SQLite an entry's id is its place, on PostgreSQL the place is `entries.seq`.
pub(crate) struct TillSql {
    pub sales: &'static str,
    pub lines: &'static str,
    pub topups: &'static str,
    /// `master_changes` with each row's entry's place in the chain ([`audit::ChangeTableRow`]).
    pub changes: &'static str,
}

/// A company's numbered fee receipt (see [`Store::fee_receipt`]): one body for both backends.
pub(crate) async fn fee_receipt_row<DB>(
    pool: &sqlx::Pool<DB>,
    company: &str,
    number: i64,
) -> Result<Option<crate::fees::FeeReceiptView>, StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    FeeReceiptSqlRow: for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let row: Option<FeeReceiptSqlRow> = sqlx::query_as::<DB, FeeReceiptSqlRow>(
        "SELECT c.code, c.name, r.number, h.code, r.amount, r.method, o.code, o.name, s.code,
                e.business_date, r.entry_id
         FROM fee_receipts r JOIN companies c ON c.id = r.company_id
         JOIN households h ON h.id = r.household_id
         JOIN entries e ON e.id = r.entry_id
         LEFT JOIN cooperatives o ON o.id = r.cooperative_id
         LEFT JOIN shops s ON s.id = r.shop_id
         WHERE c.code = $1 AND r.number = $2",
    )
    .bind(company)
    .bind(number)
    .fetch_optional(pool)
    .await?;
    let Some((
        company,
        company_name,
        number,
        household,
        amount,
        method,
        coop,
        coop_name,
        shop,
        date,
        entry,
    )) = row
    else {
        return Ok(None);
    };
    let business_date = chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d")
        .map_err(|e| StoreError(e.to_string()))?;
    let amount = Amount::from_fen(amount);
    Ok(Some(crate::fees::FeeReceiptView {
        company,
        company_name,
        number,
        printed_number: crate::fees::receipt_number_text(number),
        household,
        amount,
        amount_in_words: crate::fees::amount_in_chinese(amount),
        method,
        cooperative: coop,
        cooperative_name: coop_name,
        shop,
        business_date,
        entry,
    }))
}

/// The columns [`fee_receipt_row`] reads.
pub(crate) type FeeReceiptSqlRow = (
    String,
    String,
    i64,
    String,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    i64,
);

/// One household's fee-account movements summed by service month and entry kind (see
/// [`Store::household_fee_movements`]), or with `closes` its month closes' credits by
/// cooperative (see [`Store::household_close_credits`]): one body for both backends.
pub(crate) async fn household_fee_rows<DB>(
    pool: &sqlx::Pool<DB>,
    household: &str,
    closes: bool,
) -> Result<Vec<(String, String, Amount)>, StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (String, String, i64): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    const FEES: &str = "FROM households h
         JOIN accounts a ON a.owner_kind = 'household' AND a.owner_id = h.id AND a.name = 'fees'
         JOIN postings p ON p.account_id = a.id";
    let sql = if closes {
        format!(
            "SELECT c.code, e.service_month, -p.amount {FEES}
             JOIN entry_months e ON e.entry_id = p.entry_id AND e.kind = 'profit_allocation'
             JOIN month_closes m ON m.entry_id = p.entry_id
             JOIN cooperatives c ON c.id = m.cooperative_id
             WHERE h.code = $1 ORDER BY e.service_month DESC, c.code"
        )
    } else {
        format!(
            "SELECT e.service_month, e.kind, CAST(SUM(p.amount) AS BIGINT) {FEES}
             JOIN entry_months e ON e.entry_id = p.entry_id
             WHERE h.code = $1
             GROUP BY e.service_month, e.kind ORDER BY e.service_month, e.kind"
        )
    };
    let rows: Vec<(String, String, i64)> = sqlx::query_as::<DB, (String, String, i64)>(&sql)
        .bind(household)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(a, b, fen)| (a, b, Amount::from_fen(fen)))
        .collect())
}

async fn rows_of<DB, T>(conn: &mut DB::Connection, sql: &'static str) -> Result<Vec<T>, StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    T: Send + Unpin + for<'r> sqlx::FromRow<'r, DB::Row>,
{
    Ok(sqlx::query_as::<DB, T>(sql).fetch_all(&mut *conn).await?)
}

/// The till's records (a sale's shop, household and lines, a top-up's shop) held to their
/// entries' facts, the policies applied, and the master data tables to the master data facts
/// ([`crate::ledger::audit::check_till`], `check_policies`, `check_master`): one body for both
/// backends, read in `verify`'s snapshot.
pub(crate) async fn master_problem<DB>(
    conn: &mut DB::Connection,
    summary: &crate::ledger::ChainSummary,
    till: &TillSql,
) -> Result<Option<String>, StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    (i64, String): for<'r> sqlx::FromRow<'r, DB::Row>,
    (i64, i64): for<'r> sqlx::FromRow<'r, DB::Row>,
    audit::ShopTableRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    audit::CompoundTableRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    audit::HouseholdTableRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    audit::CatalogTableRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    audit::ChangeTableRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    audit::SaleTillRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    audit::SaleLineTableRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    audit::PolicyTableRow: for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let sales: Vec<audit::SaleTillRow> = rows_of::<DB, _>(conn, till.sales).await?;
    let lines: Vec<audit::SaleLineTableRow> = rows_of::<DB, _>(conn, till.lines).await?;
    let topups: Vec<(i64, i64)> = rows_of::<DB, _>(conn, till.topups).await?;
    if let Some(p) = audit::check_till(summary, &sales, &lines, &topups) {
        return Ok(Some(p));
    }
    let policies: Vec<audit::PolicyTableRow> = rows_of::<DB, _>(
        conn,
        "SELECT policy_id, version, hash FROM policy_applications ORDER BY policy_id, version",
    )
    .await?;
    if let Some(p) = audit::check_policies(summary, &policies) {
        return Ok(Some(p));
    }
    let cooperatives: Vec<(i64, String)> =
        rows_of::<DB, _>(conn, "SELECT id, code FROM cooperatives ORDER BY id").await?;
    let shops: Vec<audit::ShopTableRow> = rows_of::<DB, _>(
        conn,
        "SELECT id, code, cooperative_id FROM shops ORDER BY id",
    )
    .await?;
    let companies: Vec<(i64, String)> =
        rows_of::<DB, _>(conn, "SELECT id, code FROM companies ORDER BY id").await?;
    let compounds: Vec<audit::CompoundTableRow> = rows_of::<DB, _>(
        conn,
        "SELECT id, code, company_id, eligible FROM compounds ORDER BY id",
    )
    .await?;
    let households: Vec<audit::HouseholdTableRow> = rows_of::<DB, _>(
        conn,
        "SELECT id, code, compound_id, area_dm2 FROM households ORDER BY id",
    )
    .await?;
    let catalog: Vec<audit::CatalogTableRow> = rows_of::<DB, _>(
        conn,
        "SELECT id, cooperative_id, sku, price, cost FROM catalog_items ORDER BY id",
    )
    .await?;
    let changes: Vec<audit::ChangeTableRow> = rows_of::<DB, _>(conn, till.changes).await?;
    Ok(audit::check_master(
        summary,
        &audit::MasterRows {
            cooperatives: &cooperatives,
            shops: &shops,
            companies: &companies,
            compounds: &compounds,
            households: &households,
            catalog: &catalog,
            changes: &changes,
        },
    ))
}

type PlaceMonth = (i64, String, String, String);
type FourFigures = (i64, String, String, String, i64, i64, i64, i64);
type StoredProgramme = (
    i64,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
);

/// The figures of `programme_months` that `verify` proves, in this order.
const PROGRAMME_FIGURES: [&str; 11] = [
    "bills",
    "billed",
    "collected (in month + late)",
    "paid",
    "allocated",
    "topups",
    "topup_households",
    "credit_sold",
    "bonus_granted",
    "credit_spent",
    "spend_households",
];

/// `programme_months` and `coop_months` (migration 0015) and `paid_credit_months` (0022) held
/// to what they summarise, for
/// `verify`: bills and how much of them is settled from `fee_bills`; payments and each close's
/// allocations from the journal's postings to households' fee accounts; top-ups and wallet
/// spending from the till's records; sales by tender, less refunds by the refund's date. The
/// split of what was collected between "in the month" and "late" depends on the order the money
/// came in and is not recomputed; their sum is. The paid credit moved per month from every
/// posting to a wallet's or voucher's paid account. One body for both backends, in `verify`'s
/// snapshot.
pub(crate) async fn programme_problem<DB>(
    conn: &mut DB::Connection,
) -> Result<Option<String>, StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    FourFigures: for<'r> sqlx::FromRow<'r, DB::Row>,
    StoredProgramme: for<'r> sqlx::FromRow<'r, DB::Row>,
    (i64, String, i64, i64): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    const PLACE: &str = "h.compound_id, COALESCE(h.grid, ''), COALESCE(h.building, '')";
    let mut want: BTreeMap<PlaceMonth, [i64; 11]> = BTreeMap::new();
    let mut add = |rows: Vec<FourFigures>, slots: [Option<usize>; 4]| {
        for (c, g, b, m, v0, v1, v2, v3) in rows {
            let figures = want.entry((c, g, b, m)).or_default();
            for (slot, v) in slots.iter().zip([v0, v1, v2, v3]) {
                if let Some(i) = slot {
                    figures[*i] += v;
                }
            }
        }
    };
    let zero = "CAST(0 AS BIGINT)";
    add(
        rows_of_dynamic::<DB, _>(
            conn,
            format!(
                "SELECT {PLACE}, b.month, COUNT(*), CAST(SUM(b.amount) AS BIGINT),
                    CAST(SUM(b.settled) AS BIGINT), {zero}
                 FROM fee_bills b JOIN households h ON h.id = b.household_id
                 GROUP BY {PLACE}, b.month"
            ),
        )
        .await?,
        [Some(0), Some(1), Some(2), None],
    );
    add(
        rows_of_dynamic::<DB, _>(
            conn,
            format!(
                "SELECT {PLACE}, substr(e.business_date, 1, 7), CAST(SUM(-p.amount) AS BIGINT),
                    {zero}, {zero}, {zero}
                 FROM entries e JOIN postings p ON p.entry_id = e.id
                 JOIN accounts a ON a.id = p.account_id JOIN households h ON h.id = a.owner_id
                 WHERE e.kind = 'fee_payment' AND a.owner_kind = 'household' AND a.name = 'fees'
                 GROUP BY {PLACE}, substr(e.business_date, 1, 7)"
            ),
        )
        .await?,
        [Some(3), None, None, None],
    );
    add(
        rows_of_dynamic::<DB, _>(
            conn,
            format!(
                "SELECT {PLACE}, m.month, CAST(SUM(-p.amount) AS BIGINT), {zero}, {zero}, {zero}
                 FROM month_closes m JOIN postings p ON p.entry_id = m.entry_id
                 JOIN accounts a ON a.id = p.account_id JOIN households h ON h.id = a.owner_id
                 WHERE a.owner_kind = 'household' AND a.name = 'fees'
                 GROUP BY {PLACE}, m.month"
            ),
        )
        .await?,
        [Some(4), None, None, None],
    );
    add(
        rows_of_dynamic::<DB, _>(
            conn,
            format!(
                "SELECT {PLACE}, t.month, COUNT(*), COUNT(DISTINCT t.household_id),
                    CAST(SUM(t.paid) AS BIGINT), CAST(SUM(t.bonus) AS BIGINT)
                 FROM topups t JOIN households h ON h.id = t.household_id
                 WHERE t.void_entry_id IS NULL
                 GROUP BY {PLACE}, t.month"
            ),
        )
        .await?,
        [Some(5), Some(6), Some(7), Some(8)],
    );
    add(
        rows_of_dynamic::<DB, _>(
            conn,
            format!(
                "SELECT {PLACE}, substr(s.business_date, 1, 7), CAST(SUM(t.amount) AS BIGINT),
                    COUNT(DISTINCT t.household_id), {zero}, {zero}
                 FROM sale_tenders t JOIN sales s ON s.id = t.sale_id
                 JOIN households h ON h.id = t.household_id
                 WHERE t.type = 'wallet'
                 GROUP BY {PLACE}, substr(s.business_date, 1, 7)"
            ),
        )
        .await?,
        [Some(9), Some(10), None, None],
    );
    let stored: Vec<StoredProgramme> = rows_of::<DB, _>(
        conn,
        "SELECT compound_id, grid, building, month, bills, billed,
            collected_in_month + collected_late, paid, allocated, topups, topup_households,
            credit_sold, bonus_granted, credit_spent, spend_households
         FROM programme_months",
    )
    .await?;
    let mut have: BTreeMap<PlaceMonth, [i64; 11]> = BTreeMap::new();
    for r in stored {
        have.insert(
            (r.0, r.1, r.2, r.3),
            [r.4, r.5, r.6, r.7, r.8, r.9, r.10, r.11, r.12, r.13, r.14],
        );
    }
    let keys: std::collections::BTreeSet<&PlaceMonth> = want.keys().chain(have.keys()).collect();
    for key in keys {
        let w = want.get(key).copied().unwrap_or_default();
        let h = have.get(key).copied().unwrap_or_default();
        if let Some(i) = (0..w.len()).find(|&i| w[i] != h[i]) {
            let (compound, grid, building, month) = key;
            return Ok(Some(format!(
                "programme_months: compound {compound}, grid {grid:?}, building {building:?}, \
                 {month}: {} is {} but the ledger says {}",
                PROGRAMME_FIGURES[i], h[i], w[i]
            )));
        }
    }

    let mut want: BTreeMap<(i64, String), [i64; 2]> = BTreeMap::new();
    for (sign, sql) in [
        (
            1,
            "SELECT s.cooperative_id, substr(s.business_date, 1, 7),
                CAST(SUM(CASE WHEN t.type IN ('wallet', 'voucher') THEN t.amount ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN t.type IN ('wallet', 'voucher') THEN 0 ELSE t.amount END) AS BIGINT)
             FROM sale_tenders t JOIN sales s ON s.id = t.sale_id
             GROUP BY s.cooperative_id, substr(s.business_date, 1, 7)",
        ),
        (
            -1,
            "SELECT s.cooperative_id, substr(e.business_date, 1, 7),
                CAST(SUM(CASE WHEN t.type IN ('wallet', 'voucher') THEN r.amount ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN t.type IN ('wallet', 'voucher') THEN 0 ELSE r.amount END) AS BIGINT)
             FROM sale_refund_tenders r JOIN sales s ON s.id = r.sale_id
             JOIN sale_tenders t ON t.sale_id = r.sale_id AND t.idx = r.idx
             JOIN entries e ON e.id = r.entry_id
             GROUP BY s.cooperative_id, substr(e.business_date, 1, 7)",
        ),
    ] {
        let rows: Vec<(i64, String, i64, i64)> = rows_of::<DB, _>(conn, sql).await?;
        for (coop, month, credit, cash) in rows {
            let w = want.entry((coop, month)).or_default();
            w[0] += sign * credit;
            w[1] += sign * cash;
        }
    }
    let stored: Vec<(i64, String, i64, i64)> = rows_of::<DB, _>(
        conn,
        "SELECT cooperative_id, month, credit_sales, cash_sales FROM coop_months",
    )
    .await?;
    let have: BTreeMap<(i64, String), [i64; 2]> = stored
        .into_iter()
        .map(|(c, m, credit, cash)| ((c, m), [credit, cash]))
        .collect();
    let keys: std::collections::BTreeSet<&(i64, String)> = want.keys().chain(have.keys()).collect();
    for key in keys {
        let w = want.get(key).copied().unwrap_or_default();
        let h = have.get(key).copied().unwrap_or_default();
        if w != h {
            return Ok(Some(format!(
                "coop_months: cooperative {}, {}: credit and cash sales are {} and {} but the \
                 till's records say {} and {}",
                key.0, key.1, h[0], h[1], w[0], w[1]
            )));
        }
    }

    // paid_credit_months: every posting to a paid-credit account, by its entry's month.
    let mut want: BTreeMap<(i64, String), [i64; 2]> = BTreeMap::new();
    for sql in [
        "SELECT c.id, substr(e.business_date, 1, 7), CAST(SUM(-p.amount) AS BIGINT), CAST(0 AS BIGINT)
         FROM cooperatives c JOIN accounts a ON a.owner_kind = 'household'
              AND a.name = 'wallet:' || c.code || ':paid'
         JOIN postings p ON p.account_id = a.id JOIN entries e ON e.id = p.entry_id
         GROUP BY c.id, substr(e.business_date, 1, 7)",
        "SELECT v.cooperative_id, substr(e.business_date, 1, 7), CAST(0 AS BIGINT), CAST(SUM(-p.amount) AS BIGINT)
         FROM vouchers v JOIN accounts a ON a.owner_kind = 'voucher' AND a.owner_id = v.id
              AND a.name = 'paid'
         JOIN postings p ON p.account_id = a.id JOIN entries e ON e.id = p.entry_id
         GROUP BY v.cooperative_id, substr(e.business_date, 1, 7)",
    ] {
        let rows: Vec<(i64, String, i64, i64)> = rows_of::<DB, _>(conn, sql).await?;
        for (coop, month, wallets, vouchers) in rows {
            let w = want.entry((coop, month)).or_default();
            w[0] += wallets;
            w[1] += vouchers;
        }
    }
    let stored: Vec<(i64, String, i64, i64)> = rows_of::<DB, _>(
        conn,
        "SELECT cooperative_id, month, wallet_paid, voucher_paid FROM paid_credit_months",
    )
    .await?;
    let have: BTreeMap<(i64, String), [i64; 2]> = stored
        .into_iter()
        .map(|(c, m, wallets, vouchers)| ((c, m), [wallets, vouchers]))
        .collect();
    let keys: std::collections::BTreeSet<&(i64, String)> = want.keys().chain(have.keys()).collect();
    for key in keys {
        let w = want.get(key).copied().unwrap_or_default();
        let h = have.get(key).copied().unwrap_or_default();
        if w != h {
            return Ok(Some(format!(
                "paid_credit_months: cooperative {}, {}: paid credit moved in wallets and \
                 vouchers is {} and {} but the journal's postings say {} and {}",
                key.0, key.1, h[0], h[1], w[0], w[1]
            )));
        }
    }
    Ok(None)
}

async fn rows_of_dynamic<DB, T>(
    conn: &mut DB::Connection,
    sql: String,
) -> Result<Vec<T>, StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    T: Send + Unpin + for<'r> sqlx::FromRow<'r, DB::Row>,
{
    Ok(sqlx::query_as::<DB, T>(&sql).fetch_all(&mut *conn).await?)
}

/// The row of `programme_months` as read: compound, grid, building, month and twelve figures.
type ProgrammeRow = (
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
);

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// [`Store::programme_figures`] for both backends, inside the caller's read snapshot. The SQL is
/// the same text on both: integer sums are cast back to integers (PostgreSQL sums to numeric),
/// `eligible` is read through a CASE (0/1 on SQLite, a boolean on PostgreSQL).
pub(crate) async fn programme_figures_in<DB>(
    conn: &mut DB::Connection,
) -> Result<ProgrammeFigures, StoreError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    (String, String): for<'r> sqlx::FromRow<'r, DB::Row>,
    (String,): for<'r> sqlx::FromRow<'r, DB::Row>,
    (String, String, String): for<'r> sqlx::FromRow<'r, DB::Row>,
    (String, String, String, i64, Option<String>): for<'r> sqlx::FromRow<'r, DB::Row>,
    (String, String, String, i64, i64): for<'r> sqlx::FromRow<'r, DB::Row>,
    (String, String, i64, i64): for<'r> sqlx::FromRow<'r, DB::Row>,
    (String, String, String, i64): for<'r> sqlx::FromRow<'r, DB::Row>,
    ProgrammeRow: for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let companies: Vec<(String, String)> =
        rows_of::<DB, _>(conn, "SELECT code, name FROM companies ORDER BY code").await?;
    let cooperatives: Vec<(String,)> =
        rows_of::<DB, _>(conn, "SELECT code FROM cooperatives ORDER BY code").await?;
    let compounds: Vec<(String, String, String, i64, Option<String>)> = rows_of::<DB, _>(
        conn,
        "SELECT c.code, c.name, k.code, CAST(CASE WHEN c.eligible THEN 1 ELSE 0 END AS BIGINT), c.taken_over_on
         FROM compounds c JOIN companies k ON k.id = c.company_id ORDER BY c.code",
    )
    .await?;
    // Holders now: a wallet with credit, or an active voucher of the household with a balance.
    let places: Vec<(String, String, String, i64, i64)> = rows_of::<DB, _>(
        conn,
        "SELECT c.code, COALESCE(h.grid, ''), COALESCE(h.building, ''), COUNT(*),
            CAST(SUM(CASE WHEN EXISTS (
                    SELECT 1 FROM accounts a WHERE a.owner_kind = 'household' AND a.owner_id = h.id
                      AND a.name LIKE 'wallet:%' AND a.balance > 0)
                 OR EXISTS (
                    SELECT 1 FROM vouchers v JOIN accounts va ON va.owner_kind = 'voucher' AND va.owner_id = v.id
                    WHERE v.household_id = h.id AND v.status = 'active' AND va.balance > 0)
                 THEN 1 ELSE 0 END) AS BIGINT)
         FROM households h JOIN compounds c ON c.id = h.compound_id
         GROUP BY c.code, COALESCE(h.grid, ''), COALESCE(h.building, '')
         ORDER BY 1, 2, 3",
    )
    .await?;
    let months: Vec<ProgrammeRow> = rows_of::<DB, _>(
        conn,
        "SELECT c.code, p.grid, p.building, p.month, p.bills, p.billed, p.collected_in_month,
            p.collected_late, p.paid, p.allocated, p.topups, p.topup_households, p.credit_sold,
            p.bonus_granted, p.credit_spent, p.spend_households
         FROM programme_months p JOIN compounds c ON c.id = p.compound_id
         ORDER BY c.code, p.month, p.grid, p.building",
    )
    .await?;
    let coop_months: Vec<(String, String, i64, i64)> = rows_of::<DB, _>(
        conn,
        "SELECT c.code, m.month, m.credit_sales, m.cash_sales
         FROM coop_months m JOIN cooperatives c ON c.id = m.cooperative_id ORDER BY 1, 2",
    )
    .await?;
    let moves: Vec<(String, String, String)> = rows_of::<DB, _>(
        conn,
        "SELECT c.code, substr(m.effective_from, 1, 7), k.code FROM master_changes m
         JOIN compounds c ON c.id = m.subject_id
         JOIN companies k ON CAST(k.id AS TEXT) = m.old_value
         WHERE m.subject = 'compound' AND m.field = 'company' ORDER BY m.id",
    )
    .await?;
    let in_force = rows::company_on("(substr(e.business_date, 1, 7) || '-01')");
    // Only households of a compound that moved can pay a company other than the one in force;
    // with no move there is nothing to read (and the fee receipts are every payment made).
    let paid_elsewhere: Vec<(String, String, String, i64)> = if moves.is_empty() {
        Vec::new()
    } else {
        rows_of_dynamic::<DB, _>(
            conn,
            format!(
            "SELECT k0.code, k1.code, substr(e.business_date, 1, 7), CAST(SUM(r.amount) AS BIGINT)
             FROM compounds c JOIN households h ON h.compound_id = c.id
             JOIN fee_receipts r ON r.household_id = h.id JOIN entries e ON e.id = r.entry_id
             JOIN companies k1 ON k1.id = r.company_id
             JOIN companies k0 ON k0.id = {in_force}
             WHERE {moved} AND r.company_id <> k0.id
             GROUP BY k0.code, k1.code, substr(e.business_date, 1, 7) ORDER BY 1, 2, 3",
            moved = rows::COMPOUND_MOVED
        ),
        )
        .await?
    };
    let closes: Vec<(String, String, String)> = rows_of::<DB, _>(
        conn,
        "SELECT c.code, m.month, m.result FROM month_closes m
         JOIN cooperatives c ON c.id = m.cooperative_id ORDER BY 1, 2",
    )
    .await?;
    let settlements: Vec<(String, String, String, i64)> = rows_of::<DB, _>(
        conn,
        "SELECT c.code, k.code, substr(s.business_date, 1, 7), CAST(SUM(s.amount) AS BIGINT)
         FROM settlements s JOIN cooperatives c ON c.id = s.cooperative_id
         JOIN companies k ON k.id = s.company_id
         GROUP BY c.code, k.code, substr(s.business_date, 1, 7) ORDER BY 1, 2, 3",
    )
    .await?;
    let paid_credit: Vec<(String, String, i64, i64)> = rows_of::<DB, _>(
        conn,
        "SELECT c.code, m.month, m.wallet_paid, m.voucher_paid
         FROM paid_credit_months m JOIN cooperatives c ON c.id = m.cooperative_id ORDER BY 1, 2",
    )
    .await?;
    let fen = Amount::from_fen;
    Ok(ProgrammeFigures {
        paid_elsewhere: paid_elsewhere
            .into_iter()
            .map(|(was, paid_to, month, sum)| (was, paid_to, month, fen(sum)))
            .collect(),
        companies,
        cooperatives: cooperatives.into_iter().map(|(c,)| c).collect(),
        compounds: compounds
            .into_iter()
            .map(|(code, name, company, eligible, taken)| {
                Ok(CompoundInfo {
                    moves: moves
                        .iter()
                        .filter(|(c, _, _)| *c == code)
                        .map(|(_, from, before)| (from.clone(), before.clone()))
                        .collect(),
                    code,
                    name,
                    company,
                    eligible: eligible != 0,
                    taken_over_on: taken
                        .map(|d| {
                            NaiveDate::parse_from_str(&d, "%Y-%m-%d")
                                .map_err(|e| StoreError(format!("takeover date {d:?}: {e}")))
                        })
                        .transpose()?,
                })
            })
            .collect::<Result<_, StoreError>>()?,
        places: places
            .into_iter()
            .map(
                |(compound, grid, building, households, holders)| PlaceCount {
                    compound,
                    grid,
                    building,
                    households: count(households),
                    holders: count(holders),
                },
            )
            .collect(),
        months: months
            .into_iter()
            .map(|r| ProgrammeMonth {
                compound: r.0,
                grid: r.1,
                building: r.2,
                month: r.3,
                bills: count(r.4),
                billed: fen(r.5),
                collected_in_month: fen(r.6),
                collected_late: fen(r.7),
                paid: fen(r.8),
                allocated: fen(r.9),
                topups: count(r.10),
                topup_households: count(r.11),
                credit_sold: fen(r.12),
                bonus_granted: fen(r.13),
                credit_spent: fen(r.14),
                spend_households: count(r.15),
            })
            .collect(),
        coop_months: coop_months
            .into_iter()
            .map(|(cooperative, month, credit, cash)| CoopMonth {
                cooperative,
                month,
                credit_sales: fen(credit),
                cash_sales: fen(cash),
            })
            .collect(),
        closes,
        settlements: settlements
            .into_iter()
            .map(|(c, k, m, a)| (c, k, m, fen(a)))
            .collect(),
        paid_credit: paid_credit
            .into_iter()
            .map(|(cooperative, month, wallets, vouchers)| PaidCreditMonth {
                cooperative,
                month,
                wallet_paid: fen(wallets),
                voucher_paid: fen(vouchers),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {

    fn token(id: i64) -> TokenRecord {
        TokenRecord {
            id,
            role: Role::Cashier,
            cooperative: None,
            shop: None,
            company: None,
            household: None,
            label: None,
            expires_at: None,
            revoked: false,
        }
    }

    #[test]
    fn the_token_cache_forgets_on_revocation_and_keeps_no_read_from_before_it() {
        let cache = TokenCache::default();
        let before = cache.generation();
        cache.put("a", token(1), before);
        assert_eq!(cache.get("a"), Some(token(1)));
        assert_eq!(cache.get("b"), None);
        // A read that began before a revocation committed cannot put what it read back.
        let reading = cache.generation();
        cache.invalidate();
        assert_eq!(cache.get("a"), None);
        cache.put("a", token(1), reading);
        assert_eq!(cache.get("a"), None);
        cache.put("a", token(2), cache.generation());
        assert_eq!(cache.get("a"), Some(token(2)));
    }

    #[test]
    fn a_cached_token_is_read_again_after_its_lifetime() {
        let cache = TokenCache::default();
        cache.put("a", token(1), cache.generation());
        if let Ok(mut entries) = cache.entries.write() {
            if let Some(entry) = entries.get_mut("a") {
                entry.1 = std::time::Instant::now() - TOKEN_CACHE_TTL;
            }
        }
        assert_eq!(cache.get("a"), None);
    }
    use super::*;
    use crate::domain::{IssuedVoucher, PayMethod, WalletBalance};

    fn top_up(code: Option<String>) -> Result<Receipt, Rejection> {
        Ok(Receipt::TopUp(TopUpReceipt {
            entry: 7,
            household: "H1".into(),
            paid: Amount::from_yuan(100),
            bonus: Amount::from_yuan(10),
            credited: Amount::from_yuan(110),
            method: PayMethod::Cash,
            wallet: WalletBalance {
                paid: Amount::ZERO,
                bonus: Amount::ZERO,
                total: Amount::ZERO,
            },
            voucher: code.map(|code| IssuedVoucher {
                code,
                balance: Amount::from_yuan(110),
                expires_on: NaiveDate::from_ymd_opt(2029, 11, 16).unwrap(),
            }),
            policy: "spend-50-get-55@1".into(),
            business_date: NaiveDate::from_ymd_opt(2026, 11, 16).unwrap(),
        }))
    }

    #[test]
    fn a_stored_outcome_holds_no_code_and_restores_the_same_one() {
        let ring = KeyRing::from_secrets(vec![(1, [7; 32], false), (2, [9; 32], false)]).unwrap();
        let code = VoucherCode::issue(&ring, 0x1234_5678_9abc).encode();
        let result = top_up(Some(code.clone()));
        let stored = outcome_to_store(&result, &ring).unwrap();
        assert!(!stored.contains(&code), "{stored}");
        assert!(!stored.contains(&code.replace('-', "")), "{stored}");
        assert_eq!(outcome_from_store(&stored, &ring).unwrap(), result);

        // Without a voucher, and a rejection, nothing changes but the envelope.
        for r in [top_up(None), Err(Rejection::IdempotencyKeyReused)] {
            let stored = outcome_to_store(&r, &ring).unwrap();
            assert_eq!(outcome_from_store(&stored, &ring).unwrap(), r);
            assert_eq!(outcome_without_code(&stored, &ring), None);
        }

        // An outcome stored the old way (the bare result) is still read, and is rewritten.
        let old = serde_json::to_string(&result).unwrap();
        assert!(old.contains(&code));
        assert_eq!(outcome_from_store(&old, &ring).unwrap(), result);
        let rewritten = outcome_without_code(&old, &ring).unwrap();
        assert!(!rewritten.contains(&code));
        assert_eq!(outcome_from_store(&rewritten, &ring).unwrap(), result);

        // A code that does not verify is never stored as if it did.
        assert!(outcome_to_store(&top_up(Some("NOT-A-CODE".into())), &ring).is_err());
    }
}
