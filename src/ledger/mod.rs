//! The double-entry journal: account identities and types, entries of balanced postings, the
//! SHA-256 hash chain over canonical entry bytes, and the verifier that recomputes the chain and
//! every balance from postings. No SQL and no HTTP here: stores persist what this module builds.
//!
//! Sign convention: a posting's amount is in fen, **positive for a debit, negative for a
//! credit**, so an entry balances when its postings sum to zero. An account's stored balance is
//! on its normal side (debit for assets and expenses, credit for the rest), so a wallet holding
//! 110.00 has balance 11000.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::money::Amount;

pub mod audit;

pub const GENESIS_HASH: [u8; 32] = [0; 32];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountType {
    Asset,
    Liability,
    Equity,
    Revenue,
    Expense,
}

impl AccountType {
    /// +1 where debits increase the balance, -1 where credits do.
    pub fn normal_sign(self) -> i64 {
        match self {
            AccountType::Asset | AccountType::Expense => 1,
            AccountType::Liability | AccountType::Equity | AccountType::Revenue => -1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AccountType::Asset => "asset",
            AccountType::Liability => "liability",
            AccountType::Equity => "equity",
            AccountType::Revenue => "revenue",
            AccountType::Expense => "expense",
        }
    }

    pub fn parse(s: &str) -> Option<AccountType> {
        Some(match s {
            "asset" => AccountType::Asset,
            "liability" => AccountType::Liability,
            "equity" => AccountType::Equity,
            "revenue" => AccountType::Revenue,
            "expense" => AccountType::Expense,
            _ => return None,
        })
    }
}

/// Who an account belongs to, by database id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    Cooperative(i64),
    Company(i64),
    Household(i64),
    Voucher(i64),
}

impl Owner {
    pub fn kind(self) -> &'static str {
        match self {
            Owner::Cooperative(_) => "cooperative",
            Owner::Company(_) => "company",
            Owner::Household(_) => "household",
            Owner::Voucher(_) => "voucher",
        }
    }

    pub fn id(self) -> i64 {
        match self {
            Owner::Cooperative(id)
            | Owner::Company(id)
            | Owner::Household(id)
            | Owner::Voucher(id) => id,
        }
    }

    pub fn from_parts(kind: &str, id: i64) -> Option<Owner> {
        Some(match kind {
            "cooperative" => Owner::Cooperative(id),
            "company" => Owner::Company(id),
            "household" => Owner::Household(id),
            "voucher" => Owner::Voucher(id),
            _ => return None,
        })
    }
}

/// An account as the domain names it; stores resolve it to an [`AccountId`], creating it on
/// first use.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AccountSpec {
    pub owner: Owner,
    pub name: String,
    pub kind: AccountType,
    /// Balance may never go below zero (wallets and vouchers). Hot accounts are unbounded so
    /// they never need a lock.
    pub bounded: bool,
}

/// The chart of accounts of SPEC §4.
pub mod chart {
    use super::{AccountSpec, AccountType, Owner};

    fn spec(owner: Owner, name: String, kind: AccountType, bounded: bool) -> AccountSpec {
        AccountSpec {
            owner,
            name,
            kind,
            bounded,
        }
    }

    /// Cash, WeChat, Alipay or bank money held by the cooperative.
    pub fn coop_cash(coop: i64, method: &str) -> AccountSpec {
        spec(
            Owner::Cooperative(coop),
            format!("cash:{method}"),
            AccountType::Asset,
            false,
        )
    }
    pub fn coop_sales(coop: i64) -> AccountSpec {
        spec(
            Owner::Cooperative(coop),
            "sales".into(),
            AccountType::Revenue,
            false,
        )
    }
    pub fn coop_cogs(coop: i64) -> AccountSpec {
        spec(
            Owner::Cooperative(coop),
            "cogs".into(),
            AccountType::Expense,
            false,
        )
    }
    pub fn coop_inventory(coop: i64) -> AccountSpec {
        spec(
            Owner::Cooperative(coop),
            "inventory".into(),
            AccountType::Asset,
            false,
        )
    }
    /// The bonus given away under spend-50-get-55 (促销费用).
    pub fn coop_promotion(coop: i64) -> AccountSpec {
        spec(
            Owner::Cooperative(coop),
            "promotion".into(),
            AccountType::Expense,
            false,
        )
    }
    pub fn coop_expense(coop: i64, category: &str) -> AccountSpec {
        spec(
            Owner::Cooperative(coop),
            format!("expense:{category}"),
            AccountType::Expense,
            false,
        )
    }
    /// The paid part of vouchers that expired unused.
    pub fn coop_breakage(coop: i64) -> AccountSpec {
        spec(
            Owner::Cooperative(coop),
            "breakage".into(),
            AccountType::Revenue,
            false,
        )
    }
    /// The part of a month's profit given toward residents' fees (合作社盈利用物业).
    pub fn coop_profit_distributed(coop: i64) -> AccountSpec {
        spec(
            Owner::Cooperative(coop),
            "profit_distributed".into(),
            AccountType::Equity,
            false,
        )
    }
    /// Pool money not yet allocated, carried into the next close.
    pub fn coop_allocation_reserve(coop: i64) -> AccountSpec {
        spec(
            Owner::Cooperative(coop),
            "allocation_reserve".into(),
            AccountType::Liability,
            false,
        )
    }
    /// What the cooperative owes a company for fees it covered.
    pub fn coop_due_to(coop: i64, company_code: &str) -> AccountSpec {
        spec(
            Owner::Cooperative(coop),
            format!("due_to:{company_code}"),
            AccountType::Liability,
            false,
        )
    }
    /// What a company is owed by the cooperative.
    pub fn company_due_from(company: i64, coop_code: &str) -> AccountSpec {
        spec(
            Owner::Company(company),
            format!("due_from:{coop_code}"),
            AccountType::Asset,
            false,
        )
    }
    pub fn household_wallet_paid(household: i64, coop_code: &str) -> AccountSpec {
        spec(
            Owner::Household(household),
            format!("wallet:{coop_code}:paid"),
            AccountType::Liability,
            true,
        )
    }
    pub fn household_wallet_bonus(household: i64, coop_code: &str) -> AccountSpec {
        spec(
            Owner::Household(household),
            format!("wallet:{coop_code}:bonus"),
            AccountType::Liability,
            true,
        )
    }
    pub fn voucher_paid(voucher: i64) -> AccountSpec {
        spec(
            Owner::Voucher(voucher),
            "paid".into(),
            AccountType::Liability,
            true,
        )
    }
    pub fn voucher_bonus(voucher: i64) -> AccountSpec {
        spec(
            Owner::Voucher(voucher),
            "bonus".into(),
            AccountType::Liability,
            true,
        )
    }
    /// Receivable of the household's company: positive = owes, negative = prepaid.
    pub fn household_fees(household: i64) -> AccountSpec {
        spec(
            Owner::Household(household),
            "fees".into(),
            AccountType::Asset,
            false,
        )
    }
    pub fn company_fee_revenue(company: i64) -> AccountSpec {
        spec(
            Owner::Company(company),
            "fee_revenue".into(),
            AccountType::Revenue,
            false,
        )
    }
    pub fn company_cash(company: i64, method: &str) -> AccountSpec {
        spec(
            Owner::Company(company),
            format!("cash:{method}"),
            AccountType::Asset,
            false,
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccountId(pub i64);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    TopUp,
    Sale,
    SaleRefund,
    CreditRefund,
    VoucherVoid,
    /// A top-up voided: its postings reversed; `reverses` names the top-up's entry.
    TopUpVoid,
    VoucherExpiry,
    /// An expired voucher's credit moved onto a new voucher (换新券).
    VoucherExchange,
    Expense,
    StockReceipt,
    Reversal,
    FeeBill,
    FeePayment,
    ProfitAllocation,
    Settlement,
    /// Master data created or changed (a cooperative, shop, company, compound, households or
    /// catalogue items): no postings, one [`Fact`] recording the rows as written.
    MasterData,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::TopUp => "top_up",
            EntryKind::Sale => "sale",
            EntryKind::SaleRefund => "sale_refund",
            EntryKind::CreditRefund => "credit_refund",
            EntryKind::VoucherVoid => "voucher_void",
            EntryKind::TopUpVoid => "topup_void",
            EntryKind::VoucherExpiry => "voucher_expiry",
            EntryKind::VoucherExchange => "voucher_exchange",
            EntryKind::Expense => "expense",
            EntryKind::StockReceipt => "stock_receipt",
            EntryKind::Reversal => "reversal",
            EntryKind::FeeBill => "fee_bill",
            EntryKind::FeePayment => "fee_payment",
            EntryKind::ProfitAllocation => "profit_allocation",
            EntryKind::Settlement => "settlement",
            EntryKind::MasterData => "master_data",
        }
    }

    pub fn parse(s: &str) -> Option<EntryKind> {
        ALL_KINDS.iter().copied().find(|k| k.as_str() == s)
    }
}

const ALL_KINDS: [EntryKind; 16] = [
    EntryKind::TopUp,
    EntryKind::Sale,
    EntryKind::SaleRefund,
    EntryKind::CreditRefund,
    EntryKind::VoucherVoid,
    EntryKind::TopUpVoid,
    EntryKind::VoucherExpiry,
    EntryKind::VoucherExchange,
    EntryKind::Expense,
    EntryKind::StockReceipt,
    EntryKind::Reversal,
    EntryKind::FeeBill,
    EntryKind::FeePayment,
    EntryKind::ProfitAllocation,
    EntryKind::Settlement,
    EntryKind::MasterData,
];

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an entry says about itself besides its postings; every field is hashed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryHeader {
    pub kind: EntryKind,
    pub business_date: NaiveDate,
    pub created_at: DateTime<Utc>,
    /// Token id of whoever posted it; `None` for the operator's command line.
    pub actor: Option<i64>,
    /// `id@version` and the policy file's content hash, when a policy applied.
    pub policy: Option<(String, String)>,
    pub idempotency_key: Option<String>,
    pub memo: Option<String>,
    /// The entry this one reverses or refunds.
    pub reverses: Option<i64>,
    /// A ledger event the entry records besides its postings ([`Fact`] as JSON); hashed from
    /// hash version 2 on.
    pub facts: Option<String>,
}

/// The hash version of entries posted now; entries keep the version they were posted with.
pub const HASH_VERSION: i64 = 2;

/// A ledger event that moves no money by itself but that money depends on: which voucher an
/// account belongs to and until when it is valid, which month a close closed, which month and
/// company a fee bill is for. Recorded in the entry's hashed `facts` (hash version 2), so
/// `verify` can hold the tables that repeat it to what the chain says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fact", rename_all = "snake_case")]
pub enum Fact {
    VoucherIssued {
        voucher: i64,
        serial: u64,
        key_id: u8,
        cooperative: i64,
        household: Option<i64>,
        issued_on: NaiveDate,
        expires_on: NaiveDate,
        /// The shop whose till took the money; absent from facts recorded before the chain
        /// named the shop.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shop: Option<i64>,
    },
    VoucherVoided {
        voucher: i64,
    },
    /// The voucher's validity ended. Under the first expiry rule the same entry also took the
    /// voucher's credit as breakage; since the holder keeps the right to exchange an expired
    /// voucher, the entry only marks it expired and posts nothing.
    VoucherExpired {
        voucher: i64,
    },
    /// Breakage recognised on an expired voucher (`breakage_after_months` of the top-up
    /// policy): the entry takes its paid part to breakage income and forfeits its bonus.
    VoucherBreakage {
        voucher: i64,
    },
    /// An expired voucher (`replaces`, printed under `replaces_serial`) exchanged for a new
    /// voucher (换新券): the new one's issue, as [`Fact::VoucherIssued`] records it, and the old
    /// one's end.
    VoucherExchanged {
        voucher: i64,
        serial: u64,
        key_id: u8,
        cooperative: i64,
        household: Option<i64>,
        issued_on: NaiveDate,
        expires_on: NaiveDate,
        /// The shop whose till made the exchange.
        shop: i64,
        replaces: i64,
        replaces_serial: u64,
    },
    MonthClosed {
        cooperative: i64,
        month: String,
    },
    FeeBills {
        company: i64,
        month: String,
    },
    /// A top-up to a wallet: the shop whose till took the money.
    ToppedUp {
        shop: i64,
    },
    /// A sale: the shop that sold, the household it names, and the [digest](lines_digest)
    /// of its lines (what a refund may give back).
    Sold {
        shop: i64,
        household: Option<i64>,
        lines: String,
    },
    /// Master data as written (see [`EntryKind::MasterData`]); the last fact naming a row is
    /// what the row must say.
    Cooperative {
        id: i64,
        code: String,
    },
    Shop {
        id: i64,
        code: String,
        cooperative: i64,
    },
    Company {
        id: i64,
        code: String,
    },
    Compound {
        id: i64,
        code: String,
        company: i64,
        eligible: bool,
    },
    /// `(id, code, compound id, area in dm²)` of each household created.
    Households {
        rows: Vec<(i64, String, i64, i64)>,
    },
    /// A fee payment's numbered receipt (收据): the company whose sequence numbered it, the
    /// number, the household, amount (fen) and method, and, when a cooperative's till
    /// collected it on the company's behalf, that cooperative and shop.
    FeeReceipt {
        company: i64,
        number: i64,
        household: i64,
        amount: i64,
        method: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cooperative: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shop: Option<i64>,
    },
    /// `(sku, price in fen, cost in fen)` of each catalogue item written for a cooperative.
    CatalogItems {
        cooperative: i64,
        rows: Vec<(String, i64, i64)>,
    },
    /// A change of occupant (搬离/换户, [`crate::domain::MoveOut`]): the names before and
    /// after, what became of each wallet that held credit — `(cooperative id, paid, bonus, the
    /// cash-out's entry)`, `wallet` being `cash_out` or `transfer` — the fee balance and
    /// whether it was `settled` or is `carry`ed, and the card's new link version.
    MovedOut {
        household: i64,
        previous_occupant: Option<String>,
        occupant: Option<String>,
        wallet: String,
        wallets: Vec<(i64, i64, i64, Option<i64>)>,
        fees: String,
        fee_balance: i64,
        link_version: i64,
    },
    /// A change of master data (`master_changes`, whose row names this entry): the subject
    /// (`compound`, ...) and its id, the field as stored (`name`, `eligible`, `company` id,
    /// `area` in dm²), the old and new value as text, and the day it is in force from.
    MasterChanged {
        subject: String,
        id: i64,
        field: String,
        old: Option<String>,
        new: String,
        effective_from: NaiveDate,
    },
}

impl Fact {
    /// The canonical text stored and hashed.
    pub fn encode(&self) -> String {
        // Serializing a plain enum of integers, strings and dates cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn decode(s: &str) -> Option<Fact> {
        serde_json::from_str(s).ok()
    }
}

/// The canonical digest of a sale's lines, as a [`Fact::Sold`] records it: SHA-256, in hex,
/// over each line's `index, sku, quantity, price, amount, cost` in order, each field
/// length-prefixed. The till writes it from the lines it stores; `verify` recomputes it from
/// the stored `sale_lines`.
pub fn lines_digest<'a>(
    lines: impl Iterator<Item = (i64, &'a str, &'a str, i64, i64, i64)>,
) -> String {
    let mut h = Sha256::new();
    let mut text = |t: &[u8]| {
        h.update((t.len() as u64).to_be_bytes());
        h.update(t);
    };
    for (idx, sku, qty, price, amount, cost) in lines {
        text(&idx.to_be_bytes());
        text(sku.as_bytes());
        text(qty.as_bytes());
        text(&price.to_be_bytes());
        text(&amount.to_be_bytes());
        text(&cost.to_be_bytes());
    }
    hex::encode(h.finalize())
}

/// A draft entry with accounts named by spec; [`EntryDraft::balanced`] checks it.
#[derive(Clone, Debug)]
pub struct EntryDraft {
    pub header: EntryHeader,
    pub postings: Vec<(AccountSpec, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("an entry needs at least two non-zero postings")]
    TooFewPostings,
    #[error("debits {debits} and credits {credits} differ")]
    Unbalanced { debits: i128, credits: i128 },
    #[error("a master data entry moves no money: no postings, and a fact")]
    MasterDataPosts,
}

impl EntryKind {
    /// Kinds that may record an event with no postings at all (a close that posts nothing,
    /// voiding or expiring an empty voucher, master data): the entry then exists for its
    /// [`Fact`].
    pub fn may_be_empty(self) -> bool {
        matches!(
            self,
            EntryKind::ProfitAllocation
                | EntryKind::VoucherVoid
                | EntryKind::VoucherExpiry
                | EntryKind::MasterData
        )
    }

    /// Kinds that never post: master data, which moves no money.
    pub fn never_posts(self) -> bool {
        self == EntryKind::MasterData
    }
}

impl EntryDraft {
    pub fn new(header: EntryHeader) -> EntryDraft {
        EntryDraft {
            header,
            postings: Vec::new(),
        }
    }

    pub fn debit(&mut self, account: AccountSpec, amount: Amount) -> &mut Self {
        if !amount.is_zero() {
            self.postings.push((account, amount.fen()));
        }
        self
    }

    pub fn credit(&mut self, account: AccountSpec, amount: Amount) -> &mut Self {
        if !amount.is_zero() {
            // Amount::fen() of a valid domain amount is never i64::MIN.
            self.postings.push((account, -amount.fen()));
        }
        self
    }

    /// Checks that the draft is an entry: two or more non-zero postings, debits = credits; or,
    /// for a kind that [may be empty](EntryKind::may_be_empty), no postings and a fact.
    pub fn balanced(self) -> Result<EntryDraft, EntryError> {
        if self.header.kind.never_posts()
            && (!self.postings.is_empty() || self.header.facts.is_none())
        {
            return Err(EntryError::MasterDataPosts);
        }
        if self.postings.is_empty()
            && self.header.kind.may_be_empty()
            && self.header.facts.is_some()
        {
            return Ok(self);
        }
        check_postings(self.postings.iter().map(|(_, a)| *a))?;
        Ok(self)
    }
}

/// Debits equal credits over at least two non-zero postings.
pub fn check_postings(amounts: impl Iterator<Item = i64>) -> Result<(), EntryError> {
    let (mut debits, mut credits, mut count) = (0i128, 0i128, 0usize);
    for a in amounts {
        if a == 0 {
            return Err(EntryError::TooFewPostings);
        }
        count += 1;
        if a > 0 {
            debits += i128::from(a);
        } else {
            credits -= i128::from(a);
        }
    }
    if count < 2 {
        return Err(EntryError::TooFewPostings);
    }
    if debits != credits {
        return Err(EntryError::Unbalanced { debits, credits });
    }
    Ok(())
}

/// SHA-256 over the previous hash and the canonical bytes of an entry: its sequence number,
/// every header field length-prefixed, and its postings in order.
pub fn entry_hash(
    prev: &[u8; 32],
    seq: i64,
    header: &EntryHeader,
    postings: &[(AccountId, i64)],
) -> [u8; 32] {
    fn field(h: &mut Sha256, bytes: Option<&[u8]>) {
        match bytes {
            None => h.update([0u8]),
            Some(b) => {
                h.update([1u8]);
                h.update((b.len() as u64).to_be_bytes());
                h.update(b);
            }
        }
    }
    let mut h = Sha256::new();
    h.update(b"hongxin/entry/v1\0");
    h.update(prev);
    h.update(seq.to_be_bytes());
    field(&mut h, Some(header.kind.as_str().as_bytes()));
    field(&mut h, Some(header.business_date.to_string().as_bytes()));
    field(&mut h, Some(canonical_time(&header.created_at).as_bytes()));
    field(
        &mut h,
        header
            .actor
            .map(|a| a.to_be_bytes())
            .as_ref()
            .map(|b| &b[..]),
    );
    field(&mut h, header.policy.as_ref().map(|(r, _)| r.as_bytes()));
    field(
        &mut h,
        header.policy.as_ref().map(|(_, hash)| hash.as_bytes()),
    );
    field(&mut h, header.idempotency_key.as_deref().map(str::as_bytes));
    field(&mut h, header.memo.as_deref().map(str::as_bytes));
    field(
        &mut h,
        header
            .reverses
            .map(|r| r.to_be_bytes())
            .as_ref()
            .map(|b| &b[..]),
    );
    h.update((postings.len() as u64).to_be_bytes());
    for (account, amount) in postings {
        h.update(account.0.to_be_bytes());
        h.update(amount.to_be_bytes());
    }
    h.finalize().into()
}

/// Hash version 2: as [`entry_hash`] under its own domain tag, with the entry's facts, and each
/// posting with its account's identity (owner kind and id, name, type, bounded), so moving an
/// account to another owner or renaming or unbounding it breaks the chain.
pub fn entry_hash_v2(
    prev: &[u8; 32],
    seq: i64,
    header: &EntryHeader,
    postings: &[(AccountId, i64)],
    identities: &[&AccountSpec],
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"hongxin/entry/v2\0");
    h.update(prev);
    h.update(seq.to_be_bytes());
    let v1_header = entry_hash(&GENESIS_HASH, 0, header, &[]);
    h.update(v1_header);
    match &header.facts {
        None => h.update([0u8]),
        Some(f) => {
            h.update([1u8]);
            h.update((f.len() as u64).to_be_bytes());
            h.update(f.as_bytes());
        }
    }
    h.update((postings.len() as u64).to_be_bytes());
    for (i, (account, amount)) in postings.iter().enumerate() {
        h.update(account.0.to_be_bytes());
        h.update(amount.to_be_bytes());
        match identities.get(i) {
            None => h.update([0u8]),
            Some(spec) => {
                h.update([1u8]);
                let kind = spec.owner.kind().as_bytes();
                h.update((kind.len() as u64).to_be_bytes());
                h.update(kind);
                h.update(spec.owner.id().to_be_bytes());
                h.update((spec.name.len() as u64).to_be_bytes());
                h.update(spec.name.as_bytes());
                h.update(spec.kind.as_str().as_bytes());
                h.update([u8::from(spec.bounded)]);
            }
        }
    }
    h.finalize().into()
}

/// The hash of an entry under the version it was posted with; `None` for an unknown version.
pub fn versioned_hash(
    version: i64,
    prev: &[u8; 32],
    seq: i64,
    header: &EntryHeader,
    postings: &[(AccountId, i64)],
    identities: &[&AccountSpec],
) -> Option<[u8; 32]> {
    match version {
        1 => Some(entry_hash(prev, seq, header, postings)),
        2 => Some(entry_hash_v2(prev, seq, header, postings, identities)),
        _ => None,
    }
}

/// The one text form of a timestamp, used in storage and in the hash: RFC 3339, microseconds,
/// UTC.
pub fn canonical_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// An account as the verifier needs it.
#[derive(Clone, Debug)]
pub struct AccountRecord {
    pub id: AccountId,
    /// Its identity as stored: hashed into every hash version 2 entry that posts to it.
    pub spec: AccountSpec,
    /// The balance the store keeps, to compare with the recomputed one.
    pub stored_balance: i64,
}

/// An entry as read back from a store, for verification.
#[derive(Clone, Debug)]
pub struct StoredEntry {
    pub seq: i64,
    /// The hash version it was posted with (see [`versioned_hash`]).
    pub version: i64,
    pub header: EntryHeader,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
    pub postings: Vec<(AccountId, i64)>,
}

/// A posting the audit of stored figures replays: which entry, of what kind, on which date,
/// to which account (by identity), how much (positive = debit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Movement {
    pub seq: i64,
    pub kind: EntryKind,
    pub business_date: NaiveDate,
    pub owner: Owner,
    pub name: String,
    pub amount: i64,
}

/// What the chain says, gathered while verifying, for checking the tables that repeat or
/// derive from it (see [`audit`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainSummary {
    /// Every fact, in chain order, with its entry's sequence and business date.
    pub facts: Vec<(i64, NaiveDate, Fact)>,
    /// Postings to household fee accounts, wallets and vouchers, and the cooperatives'
    /// sales, cogs, promotion, expense and allocation reserve accounts, in chain order.
    pub movements: Vec<Movement>,
    /// Vouchers whose accounts were posted to by hash version 1 entries: issued before the
    /// chain recorded voucher facts.
    pub legacy_vouchers: Vec<i64>,
    /// Business date of the last hash version 1 entry, if any.
    pub last_v1_date: Option<NaiveDate>,
    /// Sequence to kind and business date of every entry, for the tables that name entries.
    pub entries: Vec<(i64, EntryKind, NaiveDate)>,
    /// `(sequence, the stored id of the entry it reverses or refunds)`, for entries that do.
    pub reverses: Vec<(i64, i64)>,
    /// Each distinct `(id@version, content hash)` of a policy some entry applied, with the
    /// first entry that did.
    pub policies: Vec<(String, String, i64)>,
}

impl ChainSummary {
    pub fn entry(&self, seq: i64) -> Option<(EntryKind, NaiveDate)> {
        self.entries
            .binary_search_by_key(&seq, |e| e.0)
            .ok()
            .map(|i| (self.entries[i].1, self.entries[i].2))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub entries: u64,
    pub postings: u64,
    pub accounts: u64,
    pub head_seq: i64,
    pub head_hash: String,
    /// Month closes recomputed from their stored inputs.
    pub close_runs: u64,
    /// The first problem found, naming the entry or account; `None` when all is well.
    pub first_problem: Option<String>,
    /// What the chain says, for the checks of stored figures that follow the chain's.
    #[serde(skip)]
    pub summary: ChainSummary,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.first_problem.is_none()
    }

    /// Records a problem unless one was found already.
    pub fn fail(&mut self, problem: String) {
        if self.first_problem.is_none() {
            self.first_problem = Some(problem);
        }
    }
}

/// A chain head published earlier (printed on every company statement): `SEQ:HASH`, the
/// sequence of an entry and its hash in 64 lowercase hex digits. `verify` with it fails unless
/// that entry is still in the chain with that hash, so cutting entries off the end is caught.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedHead {
    pub seq: i64,
    pub hash: String,
}

impl std::str::FromStr for ExpectedHead {
    type Err = String;

    fn from_str(s: &str) -> Result<ExpectedHead, String> {
        let bad = || format!("must be SEQ:HASH, e.g. 42:{}", "0".repeat(64));
        let (seq, hash) = s.split_once(':').ok_or_else(bad)?;
        let seq: i64 = seq.parse().map_err(|_| bad())?;
        let hex_ok = hash.len() == 64
            && hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if seq < 0 || !hex_ok {
            return Err(bad());
        }
        Ok(ExpectedHead {
            seq,
            hash: hash.to_string(),
        })
    }
}

impl fmt::Display for ExpectedHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

/// Whether the audit of stored figures needs this account's postings.
fn audited(spec: &AccountSpec) -> bool {
    match spec.owner {
        Owner::Household(_) => spec.name == "fees" || spec.name.starts_with("wallet:"),
        Owner::Voucher(_) => true,
        Owner::Cooperative(_) => {
            matches!(
                spec.name.as_str(),
                "sales" | "cogs" | "promotion" | "allocation_reserve"
            ) || spec.name.starts_with("expense:")
                || spec.name.starts_with("cash:")
        }
        Owner::Company(_) => spec.name.starts_with("cash:"),
    }
}

/// Recomputes the chain and every balance from postings, entry by entry, in sequence order.
pub struct Verifier {
    accounts: HashMap<AccountId, (AccountRecord, i64)>,
    prev: [u8; 32],
    prev_seq: i64,
    prev_date: Option<NaiveDate>,
    entries: u64,
    postings: u64,
    problem: Option<String>,
    summary: ChainSummary,
}

impl Verifier {
    pub fn new(accounts: Vec<AccountRecord>) -> Verifier {
        Verifier {
            accounts: accounts.into_iter().map(|a| (a.id, (a, 0))).collect(),
            prev: GENESIS_HASH,
            prev_seq: 0,
            prev_date: None,
            entries: 0,
            postings: 0,
            problem: None,
            summary: ChainSummary::default(),
        }
    }

    fn fail(&mut self, problem: String) {
        if self.problem.is_none() {
            self.problem = Some(problem);
        }
    }

    /// An entry the store could not even decode (a malformed date, kind or hash): a problem
    /// naming it, like any other alteration.
    pub fn unreadable(&mut self, seq: i64, why: &str) {
        self.fail(format!("entry {seq}: unreadable ({why})"));
    }

    /// Feeds the next entry; returns false once a problem has been found (callers may stop).
    pub fn feed(&mut self, entry: &StoredEntry) -> bool {
        if self.problem.is_some() {
            return false;
        }
        let seq = entry.seq;
        self.entries += 1;
        self.postings += entry.postings.len() as u64;
        let identities: Vec<&AccountSpec> = entry
            .postings
            .iter()
            .filter_map(|(a, _)| self.accounts.get(a).map(|(r, _)| &r.spec))
            .collect();
        let fact = entry.header.facts.as_deref().map(Fact::decode);
        let hash = if identities.len() == entry.postings.len() {
            versioned_hash(
                entry.version,
                &self.prev,
                seq,
                &entry.header,
                &entry.postings,
                &identities,
            )
        } else {
            None
        };
        let empty_event = entry.postings.is_empty()
            && entry.version >= 2
            && entry.header.kind.may_be_empty()
            && entry.header.facts.is_some();
        if seq <= self.prev_seq {
            self.fail(format!("entry {seq}: sequence does not increase"));
        } else if entry.prev_hash != self.prev {
            self.fail(format!(
                "entry {seq}: previous hash does not match the chain"
            ));
        } else if identities.len() != entry.postings.len() {
            let unknown = entry
                .postings
                .iter()
                .find(|(a, _)| !self.accounts.contains_key(a))
                .map_or(0, |(a, _)| a.0);
            self.fail(format!("entry {seq}: unknown account {unknown}"));
        } else if hash.is_none() {
            self.fail(format!(
                "entry {seq}: unknown hash version {}",
                entry.version
            ));
        } else if hash != Some(entry.hash) {
            self.fail(format!(
                "entry {seq}: hash does not match its contents (altered after posting)"
            ));
        } else if entry.version < 2 && entry.header.facts.is_some() {
            self.fail(format!(
                "entry {seq}: facts on an entry whose hash version does not cover them"
            ));
        } else if matches!(fact, Some(None)) {
            self.fail(format!("entry {seq}: facts unreadable"));
        } else if entry.header.kind.never_posts() && !empty_event {
            self.fail(format!("entry {seq}: {}", EntryError::MasterDataPosts));
        } else if let (false, Err(e)) = (
            empty_event,
            check_postings(entry.postings.iter().map(|(_, a)| *a)),
        ) {
            self.fail(format!("entry {seq}: {e}"));
        } else if self
            .prev_date
            .is_some_and(|d| entry.header.business_date < d)
        {
            self.fail(format!("entry {seq}: business date runs backwards"));
        }
        if let Some(Some(fact)) = fact {
            self.summary
                .facts
                .push((seq, entry.header.business_date, fact));
        }
        self.summary
            .entries
            .push((seq, entry.header.kind, entry.header.business_date));
        if let Some(r) = entry.header.reverses {
            self.summary.reverses.push((seq, r));
        }
        if let Some((name, hash)) = &entry.header.policy {
            // A handful of policies in all: a scan, no allocation per entry.
            let known = self
                .summary
                .policies
                .iter()
                .any(|(n, h, _)| n == name && h == hash);
            if !known {
                self.summary
                    .policies
                    .push((name.clone(), hash.clone(), seq));
            }
        }
        if entry.version < 2 {
            self.summary.last_v1_date = Some(entry.header.business_date);
        }
        let mut problems = Vec::new();
        for (account, amount) in &entry.postings {
            if let Some((record, balance)) = self.accounts.get_mut(account) {
                *balance += amount * record.spec.kind.normal_sign();
                if record.spec.bounded && *balance < 0 {
                    let id = record.id.0;
                    problems.push(format!("entry {seq}: account {id} goes below zero"));
                }
                if audited(&record.spec) {
                    self.summary.movements.push(Movement {
                        seq,
                        kind: entry.header.kind,
                        business_date: entry.header.business_date,
                        owner: record.spec.owner,
                        name: record.spec.name.clone(),
                        amount: *amount,
                    });
                }
                if let (Owner::Voucher(v), true) = (record.spec.owner, entry.version < 2) {
                    self.summary.legacy_vouchers.push(v);
                }
            }
        }
        for p in problems {
            self.fail(p);
        }
        self.prev = entry.hash;
        self.prev_seq = seq;
        self.prev_date = Some(entry.header.business_date);
        self.problem.is_none()
    }

    pub fn finish(mut self) -> VerifyReport {
        if self.problem.is_none() {
            let mut mismatched: Vec<(i64, i64, i64)> = self
                .accounts
                .values()
                .filter(|(r, b)| r.stored_balance != *b)
                .map(|(r, b)| (r.id.0, r.stored_balance, *b))
                .collect();
            mismatched.sort();
            if let Some((id, stored, computed)) = mismatched.first() {
                self.problem = Some(format!(
                    "account {id}: stored balance {} but postings sum to {}",
                    Amount::from_fen(*stored),
                    Amount::from_fen(*computed)
                ));
            }
        }
        self.summary.legacy_vouchers.sort_unstable();
        self.summary.legacy_vouchers.dedup();
        VerifyReport {
            entries: self.entries,
            postings: self.postings,
            accounts: self.accounts.len() as u64,
            head_seq: self.prev_seq,
            head_hash: hex::encode(self.prev),
            close_runs: 0,
            first_problem: self.problem,
            summary: self.summary,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> EntryHeader {
        EntryHeader {
            kind: EntryKind::TopUp,
            business_date: NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(),
            created_at: DateTime::from_timestamp(1_790_000_000, 123_000).unwrap(),
            actor: Some(7),
            policy: Some(("spend-50-get-55@1".into(), "ab".into())),
            idempotency_key: Some("k1".into()),
            memo: None,
            reverses: None,
            facts: None,
        }
    }

    fn chain(postings: &[Vec<(AccountId, i64)>]) -> Vec<StoredEntry> {
        let mut prev = GENESIS_HASH;
        postings
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let seq = i as i64 + 1;
                let hash = entry_hash(&prev, seq, &header(), p);
                let e = StoredEntry {
                    seq,
                    version: 1,
                    header: header(),
                    prev_hash: prev,
                    hash,
                    postings: p.clone(),
                };
                prev = hash;
                e
            })
            .collect()
    }

    fn accounts(balances: [i64; 3]) -> Vec<AccountRecord> {
        [
            AccountType::Asset,
            AccountType::Liability,
            AccountType::Expense,
        ]
        .iter()
        .zip(balances)
        .enumerate()
        .map(|(i, (kind, b))| AccountRecord {
            id: AccountId(i as i64 + 1),
            spec: AccountSpec {
                owner: Owner::Cooperative(1),
                name: format!("a{i}"),
                kind: *kind,
                bounded: *kind == AccountType::Liability,
            },
            stored_balance: b,
        })
        .collect()
    }

    #[test]
    fn drafts_must_balance() {
        let coop = chart::coop_cash(1, "cash");
        let wallet = chart::household_wallet_paid(1, "C1");
        let mut d = EntryDraft::new(header());
        d.debit(coop.clone(), Amount::from_fen(100));
        assert_eq!(
            d.clone().balanced().unwrap_err(),
            EntryError::TooFewPostings
        );
        d.credit(wallet.clone(), Amount::from_fen(99));
        assert!(matches!(
            d.clone().balanced(),
            Err(EntryError::Unbalanced { .. })
        ));
        let mut ok = EntryDraft::new(header());
        ok.debit(coop, Amount::from_fen(100))
            .credit(wallet, Amount::from_fen(100))
            .credit(chart::coop_sales(1), Amount::ZERO);
        assert_eq!(ok.balanced().unwrap().postings.len(), 2);
    }

    #[test]
    fn verifier_accepts_a_good_chain_and_names_the_first_bad_entry() {
        let p = vec![
            vec![(AccountId(1), 11000), (AccountId(2), -11000)],
            vec![
                (AccountId(2), 3780),
                (AccountId(3), 500),
                (AccountId(1), -4280),
            ],
        ];
        let entries = chain(&p);
        let mut v = Verifier::new(accounts([6720, 7220, 500]));
        for e in &entries {
            assert!(v.feed(e));
        }
        let report = v.finish();
        assert!(report.ok(), "{report:?}");
        assert_eq!(report.head_hash, hex::encode(entries[1].hash));

        let mut altered = entries.clone();
        altered[1].postings[1].1 = 501;
        let mut v = Verifier::new(accounts([6720, 7220, 500]));
        for e in &altered {
            v.feed(e);
        }
        let problem = v.finish().first_problem.unwrap();
        assert!(problem.starts_with("entry 2: hash"), "{problem}");

        // A stored balance edited behind the journal's back is named too.
        let mut v = Verifier::new(accounts([6720, 7221, 500]));
        for e in &entries {
            v.feed(e);
        }
        assert_eq!(
            v.finish().first_problem.unwrap(),
            "account 2: stored balance 72.21 but postings sum to 72.20"
        );
    }

    #[test]
    fn verifier_catches_an_overdrawn_wallet() {
        let p = vec![vec![(AccountId(2), 100), (AccountId(1), -100)]];
        let mut v = Verifier::new(accounts([-100, -100, 0]));
        v.feed(&chain(&p)[0]);
        assert_eq!(
            v.finish().first_problem.unwrap(),
            "entry 1: account 2 goes below zero"
        );
    }

    #[test]
    fn every_header_field_is_hashed() {
        let base = header();
        let p = vec![(AccountId(1), 1), (AccountId(2), -1)];
        let h0 = entry_hash(&GENESIS_HASH, 1, &base, &p);
        let variants: Vec<EntryHeader> = vec![
            EntryHeader {
                kind: EntryKind::Sale,
                ..base.clone()
            },
            EntryHeader {
                business_date: base.business_date.succ_opt().unwrap(),
                ..base.clone()
            },
            EntryHeader {
                actor: None,
                ..base.clone()
            },
            EntryHeader {
                policy: None,
                ..base.clone()
            },
            EntryHeader {
                idempotency_key: Some("k2".into()),
                ..base.clone()
            },
            EntryHeader {
                memo: Some(String::new()),
                ..base.clone()
            },
            EntryHeader {
                reverses: Some(1),
                ..base.clone()
            },
        ];
        for v in variants {
            assert_ne!(entry_hash(&GENESIS_HASH, 1, &v, &p), h0, "{v:?}");
        }
        assert_ne!(entry_hash(&GENESIS_HASH, 2, &base, &p), h0);
        assert_ne!(entry_hash(&[1; 32], 1, &base, &p), h0);
    }

    fn v2_entry(
        seq: i64,
        prev: [u8; 32],
        header: EntryHeader,
        postings: Vec<(AccountId, i64)>,
        accounts: &[AccountRecord],
    ) -> StoredEntry {
        let ids: Vec<&AccountSpec> = postings
            .iter()
            .map(|(a, _)| &accounts[(a.0 - 1) as usize].spec)
            .collect();
        let hash = entry_hash_v2(&prev, seq, &header, &postings, &ids);
        StoredEntry {
            seq,
            version: 2,
            header,
            prev_hash: prev,
            hash,
            postings,
        }
    }

    fn verify_one(entry: &StoredEntry, accounts: Vec<AccountRecord>) -> Option<String> {
        let mut v = Verifier::new(accounts);
        v.feed(entry);
        v.finish().first_problem
    }

    #[test]
    fn version_2_hashes_account_identity_and_facts_and_cannot_be_downgraded() {
        let books = accounts([100, 100, 0]);
        let e = v2_entry(
            1,
            GENESIS_HASH,
            header(),
            vec![(AccountId(1), 100), (AccountId(2), -100)],
            &books,
        );
        assert_eq!(verify_one(&e, books.clone()), None);
        // The same account id with another owner, name, type or bound: the hash breaks.
        let edits: [fn(&mut AccountSpec); 4] = [
            |s| s.owner = Owner::Household(9),
            |s| s.name = "a9".into(),
            |s| s.kind = AccountType::Equity,
            |s| s.bounded = !s.bounded,
        ];
        for edit in edits {
            let mut moved = books.clone();
            edit(&mut moved[1].spec);
            let problem = verify_one(&e, moved).expect("an identity edit is caught");
            assert!(problem.starts_with("entry 1: hash"), "{problem}");
        }
        // Facts are hashed.
        let mut f = e.clone();
        f.header.facts = Some(Fact::VoucherVoided { voucher: 1 }.encode());
        assert!(verify_one(&f, books.clone()).is_some());
        // Recorded as version 1, a version 2 entry no longer matches its hash.
        let mut v1 = e.clone();
        v1.version = 1;
        assert!(verify_one(&v1, books.clone()).is_some());
        // A version 1 entry cannot carry facts its hash does not cover.
        let mut h = header();
        h.facts = Some(Fact::VoucherVoided { voucher: 1 }.encode());
        let p = vec![(AccountId(1), 100), (AccountId(2), -100)];
        let legacy = StoredEntry {
            seq: 1,
            version: 1,
            hash: entry_hash(&GENESIS_HASH, 1, &h, &p),
            header: h,
            prev_hash: GENESIS_HASH,
            postings: p,
        };
        let problem = verify_one(&legacy, books).expect("facts outside the hash");
        assert!(problem.contains("facts"), "{problem}");
    }

    #[test]
    fn master_data_moves_no_money_and_always_records_its_fact() {
        let books = accounts([0, 0, 0]);
        let fact = Fact::Households {
            rows: vec![(7, "H7".into(), 2, 8735)],
        };
        let text = fact.encode();
        assert_eq!(
            text, r#"{"fact":"households","rows":[[7,"H7",2,8735]]}"#,
            "compact and canonical"
        );
        assert_eq!(Fact::decode(&text), Some(fact));
        let master = EntryHeader {
            kind: EntryKind::MasterData,
            facts: Some(text.clone()),
            ..header()
        };
        assert_eq!(EntryKind::parse("master_data"), Some(EntryKind::MasterData));
        // No postings and a fact: an entry, verified, its fact in the summary.
        assert!(EntryDraft::new(master.clone()).balanced().is_ok());
        let e = v2_entry(1, GENESIS_HASH, master.clone(), vec![], &books);
        let mut v = Verifier::new(books.clone());
        v.feed(&e);
        let report = v.finish();
        assert_eq!(report.first_problem, None);
        assert_eq!(report.summary.facts.len(), 1);
        // Without its fact it is refused, and not verified either.
        let bare = EntryHeader {
            facts: None,
            ..master.clone()
        };
        assert_eq!(
            EntryDraft::new(bare.clone()).balanced().unwrap_err(),
            EntryError::MasterDataPosts
        );
        let e = v2_entry(1, GENESIS_HASH, bare, vec![], &books);
        assert!(verify_one(&e, books.clone()).is_some());
        // With postings, even balanced ones, it is refused and not verified.
        let mut draft = EntryDraft::new(master.clone());
        draft
            .debit(chart::coop_cash(1, "cash"), Amount::from_fen(100))
            .credit(chart::household_wallet_paid(1, "C1"), Amount::from_fen(100));
        assert_eq!(draft.balanced().unwrap_err(), EntryError::MasterDataPosts);
        let e = v2_entry(
            1,
            GENESIS_HASH,
            master,
            vec![(AccountId(1), 100), (AccountId(2), -100)],
            &books,
        );
        let problem = verify_one(&e, books).expect("master data that posts");
        assert!(
            problem.contains("master data entry moves no money"),
            "{problem}"
        );
    }

    #[test]
    fn only_a_close_void_or_expiry_with_a_fact_may_have_no_postings() {
        let books = accounts([0, 0, 0]);
        let fact = Fact::MonthClosed {
            cooperative: 1,
            month: "2026-09".into(),
        }
        .encode();
        let close = EntryHeader {
            kind: EntryKind::ProfitAllocation,
            facts: Some(fact.clone()),
            ..header()
        };
        assert!(EntryDraft::new(close.clone()).balanced().is_ok());
        let e = v2_entry(1, GENESIS_HASH, close.clone(), vec![], &books);
        assert_eq!(verify_one(&e, books.clone()), None);
        let summary = {
            let mut v = Verifier::new(books.clone());
            v.feed(&e);
            v.finish().summary
        };
        assert_eq!(summary.facts.len(), 1);
        // Without its fact, or of another kind, an empty entry is refused and not verified.
        for h in [
            EntryHeader {
                facts: None,
                ..close.clone()
            },
            EntryHeader {
                kind: EntryKind::Sale,
                facts: Some(fact),
                ..close
            },
        ] {
            assert_eq!(
                EntryDraft::new(h.clone()).balanced().unwrap_err(),
                EntryError::TooFewPostings
            );
            let e = v2_entry(1, GENESIS_HASH, h, vec![], &books);
            let problem = verify_one(&e, books.clone()).expect("an empty entry");
            assert!(problem.contains("two non-zero postings"), "{problem}");
        }
    }

    #[test]
    fn expected_heads_parse() {
        let h: ExpectedHead = format!("7:{}", "ab".repeat(32)).parse().unwrap();
        assert_eq!((h.seq, h.hash.len()), (7, 64));
        assert_eq!(h.to_string(), format!("7:{}", "ab".repeat(32)));
        for bad in [
            "7",
            "x:ab",
            "-1:00",
            &format!("7:{}", "AB".repeat(32)),
            "7:abc",
        ] {
            assert!(bad.parse::<ExpectedHead>().is_err(), "{bad}");
        }
    }
}
