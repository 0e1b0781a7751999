//! The application's operations: master data, top-ups under spend-50-get-55, sales and their
//! refunds, refunds of unused credit, vouchers, expenses and stock receipts.
//!
//! Each operation is an async function over [`Tx`], the transaction a store opens for it, so the
//! rules live here once and every backend runs them the same way. An operation either returns
//! a [`Receipt`] or a [`Rejection`] that names the cause and field; a rejected operation leaves
//! nothing behind (the store rolls its savepoint back).

mod credit;
mod master;
pub use master::{area_text, FACT_ROWS};
mod move_out;
mod sale;
mod topup;
mod types;
mod vouchers;

pub use types::*;

pub(crate) use master::check_text as master_check_text;
pub use sale::{line_qty, pinyin_initials, price_line, MAX_LINES};
pub(crate) use sale::{refund_split, split_paid_bonus, verify_voucher, wallet_refund, MAX_TENDERS};
pub(crate) use topup::overflow;
pub use topup::{top_up_terms, TopUpFacts, TopUpTerms};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::ledger::{AccountId, AccountSpec, EntryDraft, EntryHeader, EntryKind};
use crate::money::Amount;
use crate::policy::PolicySet;
use crate::voucher::KeyRing;

/// A business refusal: stable `code`, the field at fault when there is one, and a message.
/// Serializable because rejections are remembered with their idempotency key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Rejection {
    #[error("{field}: {reason}")]
    InvalidAmount { field: String, reason: String },
    #[error("{field}: {reason}")]
    InvalidInput { field: String, reason: String },
    #[error("{field}: top-ups are whole units of {unit}")]
    NotWholeUnits { field: String, unit: Amount },
    #[error("{field}: {cap} cap of {limit} would be exceeded ({available} left)")]
    CapExceeded {
        field: String,
        cap: String,
        limit: Amount,
        available: Amount,
    },
    #[error("{field}: insufficient funds ({available} available)")]
    InsufficientFunds { field: String, available: Amount },
    #[error("{field}: no {what} {key}")]
    NotFound {
        field: String,
        what: String,
        key: String,
    },
    #[error("{field}: {what} {key} already exists")]
    AlreadyExists {
        field: String,
        what: String,
        key: String,
    },
    #[error("household {household} is not eligible for {policy}")]
    NotEligible { household: String, policy: String },
    #[error("{field}: {method} is not accepted here")]
    MethodNotAccepted { field: String, method: String },
    #[error("{field}: the tenders add up to {tendered}, the sale is {total}")]
    TenderMismatch {
        field: String,
        total: Amount,
        tendered: Amount,
    },
    /// Unknown, forged, spent, void and expired codes all get this one answer.
    #[error("{field}: voucher not valid")]
    VoucherInvalid { field: String },
    #[error("{field}: the check character does not match; the code was probably mistyped")]
    VoucherTypo { field: String },
    /// A genuine code whose voucher was exchanged for a new one (换新券): the holder is told
    /// to use the new code, which a forger without the code cannot learn anything from.
    #[error("{field}: this voucher was exchanged for a new one; its code no longer works")]
    VoucherExchanged { field: String },
    /// An exchange asked for a voucher that cannot be exchanged: not yet expired, or nothing
    /// left on it.
    #[error("{field}: {reason}")]
    VoucherNotExchangeable { field: String, reason: String },
    #[error("{reason}")]
    NotRefundable { reason: String },
    /// A top-up that cannot be voided (already voided, its credit spent, past the till's day).
    #[error("{field}: {reason}")]
    NotVoidable { field: String, reason: String },
    #[error("no {kind} policy is in effect on {date}")]
    NoPolicy { kind: String, date: NaiveDate },
    /// A move-out while the household owes property fees, unless they are carried.
    #[error("{field}: the household owes {owed} in property fees; settle them first, or carry them (fees: carry)")]
    ArrearsOutstanding { field: String, owed: Amount },
    #[error("the month {month} is closed")]
    PeriodClosed { month: String },
    #[error("the import has {} bad rows; nothing was imported", errors.len())]
    ImportFailed { errors: Vec<LineError> },
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    #[error("forbidden")]
    Forbidden,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LineError {
    pub line: u64,
    pub reason: String,
}

impl Rejection {
    /// The stable machine-readable code of SPEC §9.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::InvalidAmount { .. } => "invalid_amount",
            Rejection::InvalidInput { .. } => "invalid_input",
            Rejection::NotWholeUnits { .. } => "not_whole_units",
            Rejection::CapExceeded { .. } => "cap_exceeded",
            Rejection::InsufficientFunds { .. } => "insufficient_funds",
            Rejection::NotFound { .. } => "not_found",
            Rejection::AlreadyExists { .. } => "already_exists",
            Rejection::NotEligible { .. } => "not_eligible",
            Rejection::MethodNotAccepted { .. } => "method_not_accepted",
            Rejection::TenderMismatch { .. } => "tender_mismatch",
            Rejection::VoucherInvalid { .. } => "voucher_invalid",
            Rejection::VoucherTypo { .. } => "voucher_typo",
            Rejection::VoucherExchanged { .. } => "voucher_exchanged",
            Rejection::VoucherNotExchangeable { .. } => "voucher_not_exchangeable",
            Rejection::NotRefundable { .. } => "not_refundable",
            Rejection::NotVoidable { .. } => "not_voidable",
            Rejection::NoPolicy { .. } => "no_policy",
            Rejection::PeriodClosed { .. } => "period_closed",
            Rejection::ImportFailed { .. } => "import_failed",
            Rejection::ArrearsOutstanding { .. } => "arrears_outstanding",
            Rejection::IdempotencyKeyReused => "idempotency_key_reused",
            Rejection::Forbidden => "forbidden",
        }
    }

    /// The request field at fault, if one is.
    pub fn field(&self) -> Option<&str> {
        match self {
            Rejection::InvalidAmount { field, .. }
            | Rejection::InvalidInput { field, .. }
            | Rejection::NotWholeUnits { field, .. }
            | Rejection::CapExceeded { field, .. }
            | Rejection::InsufficientFunds { field, .. }
            | Rejection::NotFound { field, .. }
            | Rejection::AlreadyExists { field, .. }
            | Rejection::MethodNotAccepted { field, .. }
            | Rejection::TenderMismatch { field, .. }
            | Rejection::NotVoidable { field, .. }
            | Rejection::VoucherInvalid { field }
            | Rejection::VoucherTypo { field }
            | Rejection::VoucherExchanged { field }
            | Rejection::VoucherNotExchangeable { field, .. }
            | Rejection::ArrearsOutstanding { field, .. } => Some(field),
            Rejection::NotEligible { .. } => Some("household"),
            _ => None,
        }
    }

    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Rejection {
        Rejection::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn bad_amount(field: impl Into<String>, reason: impl Into<String>) -> Rejection {
        Rejection::InvalidAmount {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn not_found(field: &str, what: &str, key: impl Into<String>) -> Rejection {
        Rejection::NotFound {
            field: field.into(),
            what: what.into(),
            key: key.into(),
        }
    }

    pub fn exists(field: &str, what: &str, key: impl Into<String>) -> Rejection {
        Rejection::AlreadyExists {
            field: field.into(),
            what: what.into(),
            key: key.into(),
        }
    }
}

/// A failure of the store itself (I/O, a broken database): not remembered, safe to retry.
#[derive(Debug, thiserror::Error)]
#[error("store failure: {0}")]
pub struct StoreError(pub String);

/// Why the store could not work, when the cause is outside hongxin and passes: the clients
/// are told 503 with this code and retry with their Idempotency-Key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// The database cannot be reached: connection refused or cut, a server restarting or
    /// shutting down, a pool that timed out.
    Database,
    /// No space left for the write (SQLite `SQLITE_FULL`, PostgreSQL `53100 disk_full`).
    StorageFull,
    /// The disk failed a read or write (SQLite `SQLITE_IOERR`).
    StorageIo,
}

impl Unavailable {
    /// The problem code clients see.
    pub fn code(self) -> &'static str {
        match self {
            Unavailable::Database => "database_unavailable",
            Unavailable::StorageFull => "storage_full",
            Unavailable::StorageIo => "storage_io_error",
        }
    }

    const ALL: [Unavailable; 3] = [
        Unavailable::Database,
        Unavailable::StorageFull,
        Unavailable::StorageIo,
    ];

    /// The cause of a database error, when it is one of these.
    pub fn of_sqlx(e: &sqlx::Error) -> Option<Unavailable> {
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Some(Unavailable::Database),
            sqlx::Error::Database(db) => {
                let code = db.code()?;
                // SQLite reports its (extended) result code in decimal; the primary code is
                // the low byte. PostgreSQL's SQLSTATEs are five characters, many of them all
                // digits (53100, 08006): told apart by the driver, not by the text.
                if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    return code
                        .parse::<i32>()
                        .ok()
                        .and_then(Unavailable::of_sqlite_code);
                }
                match code.as_ref() {
                    "53100" => Some(Unavailable::StorageFull),
                    "57P01" | "57P02" | "57P03" => Some(Unavailable::Database),
                    c if c.starts_with("08") => Some(Unavailable::Database),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn of_sqlite_code(code: i32) -> Option<Unavailable> {
        match code & 0xff {
            13 => Some(Unavailable::StorageFull), // SQLITE_FULL
            10 => Some(Unavailable::StorageIo),   // SQLITE_IOERR
            _ => None,
        }
    }

    pub fn of_rusqlite(e: &rusqlite::Error) -> Option<Unavailable> {
        match e {
            rusqlite::Error::SqliteFailure(f, _) => Unavailable::of_sqlite_code(f.extended_code),
            _ => None,
        }
    }

    /// The marker a [`StoreError`]'s message carries for this cause. A store error is a
    /// message (it is logged, never sent), so the cause travels inside it, through whatever
    /// context is added on the way.
    fn marker(self) -> String {
        format!("[{}]", self.code())
    }
}

impl StoreError {
    /// Whether the failure is one of the passing, outside causes of [`Unavailable`].
    pub fn unavailable(&self) -> Option<Unavailable> {
        Unavailable::ALL
            .into_iter()
            .find(|u| self.0.contains(&u.marker()))
    }

    /// The database cannot be reached now (answered 503 `database_unavailable`).
    pub fn unavailable_database(message: &str) -> StoreError {
        StoreError::with_cause(message.to_string(), Some(Unavailable::Database))
    }

    fn with_cause(message: String, cause: Option<Unavailable>) -> StoreError {
        match cause {
            Some(u) => StoreError(format!("{} {message}", u.marker())),
            None => StoreError(message),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::with_cause(e.to_string(), Unavailable::of_sqlx(&e))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::with_cause(e.to_string(), Unavailable::of_rusqlite(&e))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for OpError {
    fn from(e: sqlx::Error) -> Self {
        OpError::Store(e.into())
    }
}

pub type OpResult<T> = Result<T, OpError>;

/// What an operation needs besides the database: the policies, the voucher keys, and the
/// business date and time it runs at.
pub struct Ctx<'a> {
    pub policies: &'a PolicySet,
    pub keys: &'a KeyRing,
    /// The business date (Asia/Shanghai), already clamped so it never runs backwards.
    pub today: NaiveDate,
    pub now: DateTime<Utc>,
    pub actor: Option<i64>,
    pub idempotency_key: Option<&'a str>,
}

impl Ctx<'_> {
    pub fn header(&self, kind: EntryKind) -> EntryHeader {
        EntryHeader {
            kind,
            business_date: self.today,
            created_at: self.now,
            actor: self.actor,
            policy: None,
            idempotency_key: self.idempotency_key.map(str::to_owned),
            memo: None,
            reverses: None,
            facts: None,
        }
    }

    /// `YYYY-MM` of the business date.
    pub fn month(&self) -> String {
        month_of(self.today)
    }
}

/// The business date a command run now is given: the clock's day, never before the journal's
/// last business date. The write path dates entries by it and the till's top-up quote previews
/// with it, so a quote weighs the same month as the top-up it announces.
pub fn business_date(journal: Option<NaiveDate>, clock: NaiveDate) -> NaiveDate {
    journal.map_or(clock, |d| d.max(clock))
}

pub fn month_of(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

/// A master data row as a change finds it: its id and the values a change may replace (the
/// latest recorded; `None` where the subject has no such field).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubjectRow {
    pub id: i64,
    pub name: Option<String>,
    pub eligible: Option<bool>,
    pub company: Option<i64>,
    pub company_code: Option<String>,
    pub area_dm2: Option<i64>,
}

/// The latest months a change may not reach back into: the latest effective date of a change of
/// the same field of the same row (changes are in date order), the latest month billed for the
/// row (a household, or any household of a compound), the latest month closed by any
/// cooperative.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeBounds {
    pub last_effective: Option<NaiveDate>,
    pub last_billed: Option<String>,
    pub last_closed: Option<String>,
}

/// A change as stored: values as text, the field as the column it writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredChange {
    pub subject: Subject,
    pub subject_id: i64,
    /// `name`, `eligible`, `company`, `area`.
    pub field: &'static str,
    pub old: Option<String>,
    pub new: String,
    pub effective_from: NaiveDate,
}

/// An entry as posted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posted {
    pub id: i64,
    pub hash: String,
    pub business_date: NaiveDate,
}

/// The transaction an operation runs in. Stores implement it; each method is one step of the
/// application, not generic CRUD.
#[allow(async_fn_in_trait)]
pub trait Tx: Send {
    async fn cooperative(&mut self, code: &str) -> OpResult<Option<CoopRef>>;
    async fn shop(&mut self, code: &str) -> OpResult<Option<ShopRef>>;
    async fn company(&mut self, code: &str) -> OpResult<Option<i64>>;
    async fn compound(&mut self, code: &str) -> OpResult<Option<(i64, i64)>>;
    async fn household(&mut self, code: &str) -> OpResult<Option<HouseholdRef>>;
    async fn catalog_item(&mut self, coop: i64, sku: &str) -> OpResult<Option<CatalogItem>>;
    /// The SKU of the cooperative's item that carries `barcode`, if one does.
    async fn catalog_sku_by_barcode(
        &mut self,
        coop: i64,
        barcode: &str,
    ) -> OpResult<Option<String>>;

    async fn insert_cooperative(&mut self, c: &NewCooperative) -> OpResult<i64>;
    async fn insert_shop(&mut self, s: &NewShop, coop: i64) -> OpResult<i64>;
    async fn insert_company(&mut self, c: &NewCompany) -> OpResult<i64>;
    async fn insert_compound(&mut self, c: &NewCompound, company: i64) -> OpResult<i64>;
    async fn insert_household(
        &mut self,
        h: &NewHousehold,
        compound: i64,
        area_dm2: i64,
    ) -> OpResult<i64>;
    /// Inserts or updates by (cooperative, sku); true when it was new.
    async fn upsert_catalog_item(&mut self, coop: i64, item: &CatalogItemInput) -> OpResult<bool>;
    async fn insert_token(&mut self, t: &NewToken, scope: &TokenScopeIds) -> OpResult<i64>;
    /// Marks a token revoked; false when there is no such live token.
    async fn revoke_token(&mut self, id: i64) -> OpResult<bool>;
    /// Sets the PIN hash and clears its failure count and lockout.
    async fn set_pin(&mut self, household: i64, pin_hash: Option<&str>) -> OpResult<()>;
    /// A master data row by code, for a change ([`Command::ChangeMasterData`]): its id and
    /// current values.
    async fn master_subject(
        &mut self,
        subject: Subject,
        code: &str,
    ) -> OpResult<Option<SubjectRow>>;
    /// What bounds when a change of `field` (as stored: `eligible`, `company`, `area`) of row
    /// `id` may take effect.
    async fn master_change_bounds(&mut self, field: &str, id: i64) -> OpResult<ChangeBounds>;
    /// Stores a change recorded by entry `entry` and writes its new value into the master
    /// table's column (which holds the latest value); returns the change's id.
    async fn insert_master_change(&mut self, entry: i64, change: &StoredChange) -> OpResult<i64>;
    /// Sets or clears a compound's takeover date.
    async fn set_compound_takeover(
        &mut self,
        compound: i64,
        taken_over_on: Option<NaiveDate>,
    ) -> OpResult<()>;
    /// The PIN's failed attempts in a row and the end of its lockout.
    async fn pin_failures(&mut self, household: i64) -> OpResult<(i64, Option<DateTime<Utc>>)>;
    async fn set_pin_failures(
        &mut self,
        household: i64,
        failures: i64,
        locked_until: Option<DateTime<Utc>>,
    ) -> OpResult<()>;
    /// Codes of the cooperatives at which the household has a wallet (ever credited).
    async fn household_wallet_coops(&mut self, household: i64) -> OpResult<Vec<String>>;
    /// Records the household's occupant name (`None`: none known); returns the one before.
    async fn replace_occupant(
        &mut self,
        household: i64,
        name: Option<&str>,
    ) -> OpResult<Option<String>>;
    /// Increments the household's link version and returns the new one.
    async fn rotate_link(&mut self, household: i64) -> OpResult<i64>;
    /// Deletes idempotency records created before `before`; returns how many.
    async fn prune_idempotency(&mut self, before: DateTime<Utc>) -> OpResult<u64>;
    /// Deletes residents' sessions and pairing codes that expired before `before` with no
    /// session made from them, at most `limit` of them (see [`Command::PruneExpiredSessions`]);
    /// returns how many. Staff sessions stay: entries name them as their actor.
    async fn prune_sessions(&mut self, before: DateTime<Utc>, limit: u32) -> OpResult<u64>;

    /// Balance of an account on its normal side; zero if it was never used.
    async fn balance(&mut self, account: &AccountSpec) -> OpResult<Amount>;
    /// Posts a balanced entry: resolves accounts, moves balances, refuses to take a bounded
    /// account below zero (as `insufficient_funds` on `field`), extends the hash chain.
    async fn post(&mut self, entry: EntryDraft, field: &str) -> OpResult<Posted>;
    /// Postings of one entry with their accounts, for reversals.
    async fn entry_postings(
        &mut self,
        entry: i64,
    ) -> OpResult<Option<(EntryKind, Vec<(AccountSpec, i64)>)>>;
    async fn is_reversed(&mut self, entry: i64) -> OpResult<bool>;
    /// A top-up by the id of its entry (what its receipt names), locked against a second void
    /// running beside this one.
    async fn topup(&mut self, entry: i64) -> OpResult<Option<TopupOnFile>>;
    /// The first entry after `after` that debited (drew on) any of these accounts, if one did.
    async fn first_debit_after(
        &mut self,
        accounts: &[AccountSpec],
        after: i64,
    ) -> OpResult<Option<i64>>;
    /// Marks a top-up voided by the entry `void_entry`.
    async fn mark_topup_voided(&mut self, topup: i64, void_entry: i64) -> OpResult<()>;
    async fn voucher_by_id(&mut self, id: i64) -> OpResult<Option<VoucherRecord>>;

    async fn voucher(&mut self, serial: u64) -> OpResult<Option<VoucherRecord>>;
    async fn set_voucher_status(&mut self, id: i64, status: VoucherStatus) -> OpResult<()>;
    async fn vouchers_expiring_before(
        &mut self,
        date: NaiveDate,
        limit: u32,
    ) -> OpResult<Vec<VoucherRecord>>;
    /// Expired vouchers whose validity ended before `date` with credit still on them (breakage
    /// not yet recognised), at most `limit`.
    async fn vouchers_for_breakage(
        &mut self,
        date: NaiveDate,
        limit: u32,
    ) -> OpResult<Vec<VoucherRecord>>;
    /// What breakage took from a voucher (paid, bonus): its accounts' debits by expiry entries.
    async fn voucher_breakage(&mut self, voucher: i64) -> OpResult<(Amount, Amount)>;
    /// Inserts a voucher issued outside the till's batch (an exchange); returns its id.
    async fn insert_voucher(
        &mut self,
        v: &NewVoucher,
        exchanged_from: Option<i64>,
    ) -> OpResult<i64>;

    // ---- property fees and month close ----
    /// Households of the company's compounds without a bill for `month`.
    async fn households_to_bill(&mut self, company: i64, month: &str) -> OpResult<Vec<BillingRow>>;
    /// Fee balances (positive = owes) of these households; absent ones are zero.
    async fn fee_balances(
        &mut self,
        households: &[i64],
    ) -> OpResult<std::collections::HashMap<i64, Amount>>;
    async fn insert_fee_bills(
        &mut self,
        entry: i64,
        company: i64,
        month: &str,
        bills: &[(i64, Amount, Amount)],
    ) -> OpResult<()>;
    /// Per household of a compound that has moved between companies, what its fee account
    /// holds for companies other than `company` (the movements that belong to them: docs/
    /// architecture.md, "A compound's move: whose figures are whose"). A household's fee
    /// balance at `company` is its account's balance less this; absent households hold
    /// nothing elsewhere.
    async fn fees_elsewhere(
        &mut self,
        company: i64,
    ) -> OpResult<std::collections::HashMap<i64, Amount>>;
    /// The company a household's compound is with on `day` (the latest company unless a move
    /// dated after `day` is recorded).
    async fn household_company_on(&mut self, household: i64, day: NaiveDate) -> OpResult<i64>;
    /// A household's bills of `company` not yet fully settled, oldest first.
    async fn open_bills(&mut self, household: i64, company: i64) -> OpResult<Vec<OpenBill>>;
    /// Adds to bills' settled amounts: (bill id, amount).
    async fn settle_bills(&mut self, settled: &[(i64, Amount)]) -> OpResult<()>;
    /// Applies credits to many households' open bills at once, oldest bill first (what a
    /// month close does for every household it covers): (household, company, amount); a credit
    /// settles only that company's bills.
    async fn settle_bills_for(&mut self, credits: &[(i64, i64, Amount)]) -> OpResult<()>;
    /// Records payments or allocations: (household, amount, method, reference).
    async fn insert_fee_credits(
        &mut self,
        entry: i64,
        kind: &str,
        rows: &[(i64, Amount, Option<String>, Option<String>)],
    ) -> OpResult<()>;
    /// The next number of the company's fee receipt sequence (1 when it has none) and the
    /// company's code. Called by the single writer inside the payment's transaction; the
    /// PostgreSQL store also takes the company's receipt lock, so writers in several processes
    /// never give one number twice.
    async fn next_fee_receipt(&mut self, company: i64) -> OpResult<(i64, String)>;
    async fn insert_fee_receipt(&mut self, row: &FeeReceiptRow) -> OpResult<()>;
    /// The stored result of a closed month.
    async fn month_close(&mut self, coop: i64, month: &str) -> OpResult<Option<String>>;
    /// The latest closed month of a cooperative and its stored result.
    async fn latest_close(&mut self, coop: i64) -> OpResult<Option<(String, String)>>;
    async fn coop_month_totals(
        &mut self,
        coop: i64,
        from: NaiveDate,
        to: NaiveDate,
    ) -> OpResult<MonthTotals>;
    /// Every eligible household with its fee balance and its credit spending at the
    /// cooperative between the dates, both as of `to`, the last day of the month closed: what
    /// a month close weighs, the same whenever the close runs. The fee balance is the balance
    /// now less what moved it after `to` that is not for that month or an earlier one (later
    /// months' bills, payments dated after the month, and every close of that month or a later
    /// one, whichever cooperative's): the balance at the month's end by service month, before
    /// any close of it. Credit spending is the month's wallet and voucher tenders net of the
    /// refunds dated by `to`. Each backend reads it with one function, which `verify` also
    /// calls on its snapshot ([`crate::store::Store::close_candidates`]).
    async fn close_candidates(
        &mut self,
        coop: i64,
        from: NaiveDate,
        to: NaiveDate,
    ) -> OpResult<Vec<Candidate>>;
    /// Stores a closed month: its inputs, its result, and every household's share as one
    /// document ([`crate::fees::shares_document`]).
    async fn insert_month_close(
        &mut self,
        coop: i64,
        month: &str,
        entry: Option<i64>,
        inputs: &str,
        result: &str,
        shares: &str,
    ) -> OpResult<()>;
    async fn insert_settlement(
        &mut self,
        entry: i64,
        coop: i64,
        company: i64,
        amount: Amount,
        reference: &str,
    ) -> OpResult<()>;
}

/// Refuses an amount above the ceiling in force ([`PolicySet::max_amount`]) as `invalid_amount`
/// naming the field.
pub(crate) fn within_ceiling(ctx: &Ctx<'_>, field: &str, amount: Amount) -> Result<(), Rejection> {
    amount_within_ceiling(ctx.policies, ctx.today, field, amount)
}

/// The ceiling check on its own, for what previews a command (the top-up quote) so that the
/// preview refuses what the command would.
pub fn amount_within_ceiling(
    policies: &PolicySet,
    date: NaiveDate,
    field: &str,
    amount: Amount,
) -> Result<(), Rejection> {
    let max = policies.max_amount(date);
    if amount > max {
        return Err(Rejection::bad_amount(
            field,
            format!("is more than {max}, the most any single amount may be"),
        ));
    }
    Ok(())
}

/// Every amount a command carries, checked against the ceiling before anything is read or
/// written. (A sale's line totals, which the command does not carry, are checked where they are
/// priced.)
pub(crate) fn amounts_within_ceiling(ctx: &Ctx<'_>, command: &Command) -> Result<(), Rejection> {
    match command {
        Command::TopUp(t) => within_ceiling(ctx, "paid", t.paid),
        Command::Sale(s) => {
            if let Some(amount) = s.amount {
                within_ceiling(ctx, "amount", amount)?;
            }
            for (i, t) in s.tenders.iter().enumerate() {
                within_ceiling(ctx, &format!("tenders[{i}].amount"), t.amount)?;
            }
            Ok(())
        }
        Command::RefundSale(r) => r
            .amount
            .map_or(Ok(()), |a| within_ceiling(ctx, "amount", a)),
        Command::Expense(e) => within_ceiling(ctx, "amount", e.amount),
        Command::StockReceipt(s) => within_ceiling(ctx, "amount", s.amount),
        Command::PayFee(p) => within_ceiling(ctx, "amount", p.amount),
        Command::Settle(s) => within_ceiling(ctx, "amount", s.amount),
        _ => Ok(()),
    }
}

/// Expired sessions deleted by one [`Command::PruneExpiredSessions`], so one run never holds the
/// writer long; housekeeping repeats it until a run finds fewer.
pub const PRUNE_SESSIONS_BATCH: u32 = 5_000;

/// Runs one command. The caller (a store's write path) owns the transaction and savepoint.
pub async fn run<T: Tx>(tx: &mut T, ctx: &Ctx<'_>, command: &Command) -> OpResult<Receipt> {
    amounts_within_ceiling(ctx, command)?;
    Ok(match command {
        Command::CreateCooperative(c) => {
            Receipt::Created(master::create_cooperative(tx, ctx, c).await?)
        }
        Command::CreateShop(s) => Receipt::Created(master::create_shop(tx, ctx, s).await?),
        Command::CreateCompany(c) => Receipt::Created(master::create_company(tx, ctx, c).await?),
        Command::CreateCompound(c) => Receipt::Created(master::create_compound(tx, ctx, c).await?),
        Command::CreateHousehold(h) => {
            Receipt::Created(master::create_household(tx, ctx, h).await?)
        }
        Command::UpsertCatalogItem { cooperative, item } => {
            Receipt::Created(master::upsert_catalog_item(tx, ctx, cooperative, item).await?)
        }
        Command::ImportHouseholds { rows } => {
            Receipt::Imported(master::import_households(tx, ctx, rows).await?)
        }
        Command::ImportCatalog { cooperative, rows } => {
            Receipt::Imported(master::import_catalog(tx, ctx, cooperative, rows).await?)
        }
        Command::CreateToken(t) => Receipt::Created(master::create_token(tx, t).await?),
        Command::RevokeToken { id } => Receipt::Created(master::revoke_token(tx, *id).await?),
        Command::SetHouseholdPin {
            household,
            pin_hash,
        } => Receipt::Created(master::set_pin(tx, household, pin_hash.as_deref()).await?),
        Command::RecordPinAttempt { household, ok, at } => {
            Receipt::Created(master::record_pin_attempt(tx, household, *ok, *at).await?)
        }
        Command::RotateHouseholdLink { household } => {
            Receipt::Created(master::rotate_link(tx, household).await?)
        }
        Command::SetCompoundTakeover {
            compound,
            taken_over_on,
        } => Receipt::Created(master::set_compound_takeover(tx, compound, *taken_over_on).await?),
        Command::ChangeMasterData(c) => {
            Receipt::MasterChanged(master::change_master_data(tx, ctx, c).await?)
        }
        Command::PruneIdempotency { before } => Receipt::Imported(Imported {
            created: 0,
            updated: tx.prune_idempotency(*before).await?,
        }),
        Command::PruneExpiredSessions { before } => Receipt::Imported(Imported {
            created: 0,
            updated: tx.prune_sessions(*before, PRUNE_SESSIONS_BATCH).await?,
        }),
        Command::TopUp(_) | Command::Sale(_) | Command::RefundSale(_) => {
            return Err(StoreError(
                "top-ups, sales and sale refunds run in the write engine (crate::engine)".into(),
            )
            .into())
        }
        Command::RefundCredit(r) => Receipt::CreditRefund(credit::refund_credit(tx, ctx, r).await?),
        Command::VoidVoucher(v) => Receipt::CreditRefund(vouchers::void(tx, ctx, v).await?),
        Command::VoidTopUp(v) => Receipt::TopUpVoid(topup::void_top_up(tx, ctx, v).await?),
        Command::ExpireVouchers => Receipt::Expired(vouchers::expire(tx, ctx).await?),
        Command::ExchangeVoucher(x) => Receipt::Exchanged(vouchers::exchange(tx, ctx, x).await?),
        Command::Expense(e) => Receipt::Posted(credit::expense(tx, ctx, e).await?),
        Command::StockReceipt(s) => Receipt::Posted(credit::stock_receipt(tx, ctx, s).await?),
        Command::Reverse(r) => Receipt::Posted(credit::reverse(tx, ctx, r).await?),
        Command::GenerateBills(b) => Receipt::Bills(crate::fees::generate_bills(tx, ctx, b).await?),
        Command::PayFee(p) => Receipt::FeePayment(crate::fees::pay(tx, ctx, p).await?),
        Command::CloseMonth(c) => Receipt::MonthClose(crate::fees::close_month(tx, ctx, c).await?),
        Command::Settle(s) => Receipt::Settlement(crate::fees::settle(tx, ctx, s).await?),
        Command::MoveOut(m) => Receipt::MoveOut(move_out::move_out(tx, ctx, m).await?),
    })
}

/// The id a store gives a newly resolved account; kept here so receipts can name accounts.
pub type AccountIdOf = AccountId;
