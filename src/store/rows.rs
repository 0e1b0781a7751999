//! Rows as both stores read them, turned into the store's types. The SQL differs per backend;
//! what a row means does not. Each store fetches plain typed tuples (`query_as`, which works for
//! SQLite and PostgreSQL alike) and hands them here, so the two cannot drift in how they decode
//! a report or the journal.

use chrono::NaiveDate;

use super::{
    AccountInfo, CreditFigures, JournalEntry, ShopInfo, TenderFigures, TillFigures, TokenRecord,
    TopupFigures, VoucherRow,
};
use crate::domain::{HouseholdRef, Role, StoreError, VoucherRecord, VoucherStatus};
use crate::ledger::{
    AccountId, AccountRecord, AccountSpec, AccountType, EntryHeader, EntryKind, Owner, StoredEntry,
    Verifier,
};
use crate::money::Amount;

/// A stored `YYYY-MM-DD`.
pub(super) fn date(s: &str) -> Result<NaiveDate, StoreError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| StoreError(format!("bad date {s:?}: {e}")))
}

/// A stored hash, 64 hex digits.
pub(super) fn hash32(s: &str) -> Result<[u8; 32], StoreError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|e| StoreError(format!("bad hash {s:?}: {e}")))?;
    Ok(out)
}

/// A `COUNT(…)` as an unsigned count.
pub(super) fn count(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|e| StoreError(format!("bad count {n}: {e}")))
}

/// `t.id, t.role, cooperative code, shop code, company code, household code, t.label,
/// t.expires_at, t.revoked_at` of a token (`TOKEN_COLUMNS` in each store).
pub(super) type TokenTableRow = (
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// An optional RFC 3339 time as stored (TEXT on both backends).
pub(super) fn time_opt(
    text: Option<String>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
    text.map(|t| {
        chrono::DateTime::parse_from_rfc3339(&t)
            .map(|d| d.to_utc())
            .map_err(|e| StoreError(format!("bad time {t:?}: {e}")))
    })
    .transpose()
}

pub(super) fn token(
    (id, role, cooperative, shop, company, household, label, expires_at, revoked_at): TokenTableRow,
) -> Result<TokenRecord, StoreError> {
    let expires_at = match expires_at {
        Some(t) => Some(
            chrono::DateTime::parse_from_rfc3339(&t)
                .map_err(|e| StoreError(format!("bad expiry {t:?}: {e}")))?
                .to_utc(),
        ),
        None => None,
    };
    Ok(TokenRecord {
        id,
        role: Role::parse(&role).ok_or_else(|| StoreError(format!("bad role {role}")))?,
        cooperative,
        shop,
        company,
        household,
        label,
        expires_at,
        revoked: revoked_at.is_some(),
    })
}

/// A token's columns, joined to the codes of what it is scoped to; `t` is `tokens`.
pub(super) const TOKEN_COLUMNS: &str =
    "t.id, t.role, c.code, s.code, k.code, h.code, t.label, t.expires_at, t.revoked_at
     FROM tokens t
     LEFT JOIN cooperatives c ON c.id = t.cooperative_id
     LEFT JOIN shops s ON s.id = t.shop_id
     LEFT JOIN companies k ON k.id = t.company_id
     LEFT JOIN households h ON h.id = t.household_id";

/// A household with its compound: `h.id, h.code, c.id, c.code, c.eligible, c.company_id,
/// h.area_dm2` ([`household_ref_columns`]; `eligible` is 0/1 on SQLite, a boolean on PostgreSQL).
pub(super) type HouseholdRefRow = (i64, String, i64, String, bool, i64, i64);

/// The columns of a [`HouseholdRefRow`] and the join they come from. With `day` (a placeholder
/// bound to a `YYYY-MM-DD` day) the compound's eligibility is the one in force on that day
/// ([`eligible_on`]), else the latest recorded.
pub(super) fn household_ref_columns(day: Option<&str>) -> String {
    let eligible = match day {
        Some(day) => eligible_on(day),
        None => "c.eligible".to_string(),
    };
    format!(
        "h.id, h.code, c.id, c.code, {eligible}, c.company_id, h.area_dm2
         FROM households h JOIN compounds c ON c.id = h.compound_id"
    )
}

/// A master value in force on a day (migration 0021): a row's column holds the latest value a
/// change recorded; a change effective after the day means the value before the first such
/// change (changes of a field are in date order), which is its `old_value`. One index probe
/// (`master_changes_in_force`) that finds nothing unless a change is dated after the day.
fn in_force(field: &str, id: &str, day: &str, cast: &str, column: &str) -> String {
    format!(
        "COALESCE((SELECT {cast} FROM master_changes m
                   WHERE m.field = '{field}' AND m.subject_id = {id} AND m.effective_from > {day}
                   ORDER BY m.id LIMIT 1), {column})"
    )
}

/// Whether compound `c` is in the programme on the day at placeholder `day`.
pub(super) fn eligible_on(day: &str) -> String {
    in_force(
        "eligible",
        "c.id",
        day,
        "(m.old_value = 'true')",
        "c.eligible",
    )
}

/// The company that compound `c` is with on the day at placeholder `day`.
pub(super) fn company_on(day: &str) -> String {
    in_force(
        "company",
        "c.id",
        day,
        "CAST(m.old_value AS BIGINT)",
        "c.company_id",
    )
}

/// The company a movement of household `h`'s fee account belongs to (issue 14, a compound's
/// move): a fee payment to the company its receipt is numbered by (`fee_receipts`; a payment
/// from before receipts, to the company then in force), a bill and a close's allocation — and
/// anything else — to the company with the compound `c` in the movement's service month. `e` is
/// the movement's row of `entry_months`. Bills and allocations need no join: a bill is made for
/// the company in force in its month (a move never reaches into a billed month) and a close
/// allocates through the company in force at the month's end.
pub(super) fn fee_company() -> String {
    let in_force = company_on("(e.service_month || '-01')");
    format!(
        "CASE WHEN e.kind = 'fee_payment'
              THEN COALESCE((SELECT r.company_id FROM fee_receipts r WHERE r.entry_id = e.entry_id), {in_force})
              ELSE {in_force} END"
    )
}

/// Compound `c` is with company `company` (a placeholder) now, or was before a move or is after
/// one: the compounds whose households a statement of that company may list.
pub(super) fn compound_ever_with(company: &str) -> String {
    format!(
        "(c.company_id = {company} OR EXISTS (SELECT 1 FROM master_changes m
              WHERE m.field = 'company' AND m.subject_id = c.id
                AND (m.old_value = CAST({company} AS TEXT) OR m.new_value = CAST({company} AS TEXT))))"
    )
}

/// Compound `c` has moved between companies at some time (a `company` master change).
pub(super) const COMPOUND_MOVED: &str =
    "EXISTS (SELECT 1 FROM master_changes m WHERE m.field = 'company' AND m.subject_id = c.id)";

/// The company statement's household lines for month `month` of company `company` (both
/// placeholders; `cast` turns a sum into a 64-bit integer, empty on SQLite): per household its
/// compound and code; opening, billed, paid, allocated and closing counting only the movements
/// that belong to the company ([`fee_company`]); its area in the month, name, building and grid.
/// Listed: the households of the compounds with the company in the month, and any other whose
/// movements at the company leave something open before the month or move in it (a moved
/// compound's arrears owed to its old company).
pub(super) fn statement_lines_sql(month: &str, company: &str, cast: &str) -> String {
    let day = format!("({month} || '-01')");
    let mine = format!("x.co = {company}");
    format!(
        "SELECT x.compound, x.household,
            COALESCE(SUM(CASE WHEN {mine} AND x.sm < {month} THEN x.amount END), 0){cast},
            COALESCE(SUM(CASE WHEN {mine} AND x.sm = {month} AND x.kind = 'fee_bill' THEN x.amount END), 0){cast},
            COALESCE(SUM(CASE WHEN {mine} AND x.sm = {month} AND x.kind = 'fee_payment' THEN -x.amount END), 0){cast},
            COALESCE(SUM(CASE WHEN {mine} AND x.sm = {month} AND x.kind = 'profit_allocation' THEN -x.amount END), 0){cast},
            COALESCE(SUM(CASE WHEN {mine} AND x.sm <= {month} THEN x.amount END), 0){cast},
            MAX(x.area), MAX(x.name), MAX(x.building), MAX(x.grid)
         FROM (SELECT h.id AS hid, c.code AS compound, h.code AS household, {area} AS area,
                      h.name AS name, h.building AS building, h.grid AS grid,
                      {in_force} AS in_force, p.amount AS amount, e.service_month AS sm,
                      e.kind AS kind, CASE WHEN p.amount IS NULL THEN NULL ELSE {co} END AS co
               FROM households h JOIN compounds c ON c.id = h.compound_id
               LEFT JOIN accounts a ON a.owner_kind = 'household' AND a.owner_id = h.id AND a.name = 'fees'
               LEFT JOIN postings p ON p.account_id = a.id
               LEFT JOIN entry_months e ON e.entry_id = p.entry_id
               WHERE {ever}) x
         GROUP BY x.hid, x.compound, x.household
         HAVING MAX(x.in_force) = {company}
             OR COALESCE(SUM(CASE WHEN {mine} AND x.sm < {month} THEN x.amount END), 0) <> 0
             OR COALESCE(SUM(CASE WHEN {mine} AND x.sm = {month} THEN 1 END), 0) > 0",
        area = area_on(&day),
        in_force = company_on(&day),
        co = fee_company(),
        ever = compound_ever_with(company),
    )
}

/// The code of the company household `household` (its code, a placeholder) is with on the day
/// at placeholder `day`.
pub(super) fn household_company_on_sql(household: &str, day: &str) -> String {
    format!(
        "SELECT k.code FROM households h JOIN compounds c ON c.id = h.compound_id
         JOIN companies k ON k.id = {} WHERE h.code = {household}",
        company_on(day)
    )
}

/// Every movement of households' fee accounts, with its household `h`, compound `c`, posting
/// `p` and its row `e` of `entry_months` (what [`fee_company`] reads).
const HOUSEHOLD_FEE_MOVEMENTS: &str = "households h JOIN compounds c ON c.id = h.compound_id
         JOIN accounts a ON a.owner_kind = 'household' AND a.owner_id = h.id AND a.name = 'fees'
         JOIN postings p ON p.account_id = a.id
         JOIN entry_months e ON e.entry_id = p.entry_id";

/// Per household of a moved compound ([`COMPOUND_MOVED`]), what its fee account holds for
/// companies other than `company` (a placeholder): the movements [`fee_company`] gives to
/// another company. A household's balance at `company` is its account's balance less this;
/// households of compounds that never moved have everything at their one company.
pub(super) fn fees_elsewhere_sql(company: &str, cast: &str) -> String {
    format!(
        "SELECT h.id, SUM(p.amount){cast}
         FROM {HOUSEHOLD_FEE_MOVEMENTS}
         WHERE {COMPOUND_MOVED} AND {co} <> {company}
         GROUP BY h.id",
        co = fee_company()
    )
}

/// One household's fee balance per company of a compound that moved ([`COMPOUND_MOVED`]):
/// (company code, balance, positive = owed), the movements grouped by [`fee_company`];
/// nothing for a household whose compound never moved (its one company holds it all).
/// `household` is its code (a placeholder).
pub(super) fn household_fee_positions_sql(household: &str, cast: &str) -> String {
    format!(
        "SELECT k.code, SUM(p.amount){cast}
         FROM {HOUSEHOLD_FEE_MOVEMENTS}
         JOIN companies k ON k.id = {co}
         WHERE h.code = {household} AND {COMPOUND_MOVED}
         GROUP BY k.code ORDER BY k.code",
        co = fee_company()
    )
}

/// What a close weighs as a household's fees owed is its balance at the company it allocates
/// through, the one with the compound at the month's end: per household of a moved compound,
/// the movements as of the month's end (`to`, the last day; `month`; `before`, the close's place
/// in the chain — the same rule as each store's `fee_changes_after_in`) that belong to another
/// company ([`fee_company`]), to be taken off its balance.
pub(super) fn close_fees_elsewhere_sql(to: &str, month: &str, before: &str, cast: &str) -> String {
    format!(
        "SELECT h.id, SUM(p.amount){cast}
         FROM {HOUSEHOLD_FEE_MOVEMENTS}
         WHERE {COMPOUND_MOVED} AND {co} <> {in_force}
           AND NOT (e.business_date > {to}
                    AND (e.service_month > {month} OR e.entry_id > {before}
                         OR e.entry_id IN (SELECT entry_id FROM month_closes WHERE month = {month})))
         GROUP BY h.id",
        co = fee_company(),
        in_force = company_on(to),
    )
}

/// Household `h`'s floor area in dm² on the day at placeholder `day`.
pub(super) fn area_on(day: &str) -> String {
    in_force(
        "area",
        "h.id",
        day,
        "CAST(m.old_value AS BIGINT)",
        "h.area_dm2",
    )
}

pub(super) fn household_ref(
    (id, code, compound_id, compound_code, compound_eligible, company_id, area_dm2): HouseholdRefRow,
) -> HouseholdRef {
    HouseholdRef {
        id,
        code,
        compound_id,
        compound_code,
        compound_eligible,
        company_id,
        area_dm2,
    }
}

/// `id, serial, cooperative_id, household_id, issued_on, expires_on, status` of a voucher
/// ([`VOUCHER_COLUMNS`]).
pub(super) type VoucherTableRow = (i64, i64, i64, Option<i64>, String, String, String);

pub(super) const VOUCHER_COLUMNS: &str =
    "id, serial, cooperative_id, household_id, issued_on, expires_on, status";

pub(super) fn voucher_record(
    (id, serial, coop, household, issued_on, expires_on, status): VoucherTableRow,
) -> Result<VoucherRecord, StoreError> {
    Ok(VoucherRecord {
        id,
        serial: serial as u64,
        coop,
        household,
        issued_on: date(&issued_on)?,
        expires_on: date(&expires_on)?,
        status: VoucherStatus::parse(&status)
            .ok_or_else(|| StoreError(format!("bad status {status}")))?,
    })
}

/// `id, owner_kind, owner code, name, type, balance, business date of its first posting`.
pub(super) type AccountRow = (
    i64,
    String,
    Option<String>,
    String,
    String,
    i64,
    Option<String>,
);

pub(super) fn account(
    (id, owner_kind, owner_code, name, kind, balance, first): AccountRow,
) -> Result<AccountInfo, StoreError> {
    Ok(AccountInfo {
        id: AccountId(id),
        owner_kind,
        owner_code: owner_code.ok_or_else(|| StoreError(format!("account {id} has no owner")))?,
        name,
        kind: AccountType::parse(&kind)
            .ok_or_else(|| StoreError(format!("bad account type {kind}")))?,
        balance: Amount::from_fen(balance),
        first_posted: first.as_deref().map(date).transpose()?,
    })
}

/// An entry's `seq, kind, business_date, memo, policy, hash, reverses` (the sequence of the entry
/// it reverses) with one of its postings `account_id, amount`, or none for an entry without
/// postings. Rows come in sequence order, an entry's postings in posting order.
pub(super) type JournalRow = (
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

pub(super) fn journal(rows: Vec<JournalRow>) -> Result<Vec<JournalEntry>, StoreError> {
    let mut entries: Vec<JournalEntry> = Vec::new();
    for (seq, kind, business_date, memo, policy, hash, reverses, account, amount) in rows {
        if entries.last().is_none_or(|e| e.seq != seq) {
            entries.push(JournalEntry {
                seq,
                kind: EntryKind::parse(&kind)
                    .ok_or_else(|| StoreError(format!("bad entry kind {kind}")))?,
                business_date: date(&business_date)?,
                memo,
                policy,
                hash,
                reverses,
                postings: Vec::new(),
            });
        }
        if let (Some(e), Some(account), Some(amount)) = (entries.last_mut(), account, amount) {
            e.postings.push((AccountId(account), amount));
        }
    }
    Ok(entries)
}

/// A voucher with its balances: `id, serial, key id, cooperative code, household code, status,
/// issued on, expires on, paid balance, bonus balance`.
pub(super) type VoucherTuple = (
    i64,
    i64,
    i64,
    String,
    Option<String>,
    String,
    String,
    String,
    i64,
    i64,
);

pub(super) fn voucher(row: VoucherTuple) -> Result<VoucherRow, StoreError> {
    let (id, serial, key_id, cooperative, household, status, issued, expires, paid, bonus) = row;
    Ok(VoucherRow {
        id,
        serial: serial as u64,
        key_id: u8::try_from(key_id)
            .map_err(|e| StoreError(format!("bad key id {key_id}: {e}")))?,
        cooperative,
        household,
        status: VoucherStatus::parse(&status)
            .ok_or_else(|| StoreError(format!("bad status {status}")))?,
        paid: Amount::from_fen(paid),
        bonus: Amount::from_fen(bonus),
        balance: Amount::from_fen(
            paid.checked_add(bonus)
                .ok_or_else(|| StoreError(format!("voucher {id}: balance overflows")))?,
        ),
        issued_on: date(&issued)?,
        expires_on: date(&expires)?,
    })
}

/// `code, name, cooperative code`.
pub(super) type ShopRow = (String, String, String);

pub(super) fn shop((code, name, cooperative): ShopRow) -> ShopInfo {
    ShopInfo {
        code,
        name,
        cooperative,
    }
}

/// Top-ups of one method: `method, count, paid, bonus, as vouchers, their paid, their bonus`.
pub(super) type TopupRow = (String, i64, i64, i64, i64, i64, i64);
/// Tenders of one type: `type, count, amount, paid part, bonus part, distinct vouchers`.
pub(super) type TenderRow = (String, i64, i64, i64, i64, i64);

/// A till's figures from its parts: top-ups by method, `(count, total)` of sales, tenders by
/// type, `(count, total)` of refunds, and where the refunds went.
pub(super) fn till(
    topups: Vec<TopupRow>,
    sales: (i64, i64),
    tenders: Vec<TenderRow>,
    refunds: (i64, i64),
    refunded: Vec<(String, i64)>,
) -> Result<TillFigures, StoreError> {
    Ok(TillFigures {
        topups: topups
            .into_iter()
            .map(
                |(method, n, paid, bonus, vouchers, voucher_paid, voucher_bonus)| {
                    Ok(TopupFigures {
                        method,
                        count: count(n)?,
                        paid: Amount::from_fen(paid),
                        bonus: Amount::from_fen(bonus),
                        vouchers: count(vouchers)?,
                        voucher_paid: Amount::from_fen(voucher_paid),
                        voucher_bonus: Amount::from_fen(voucher_bonus),
                    })
                },
            )
            .collect::<Result<_, StoreError>>()?,
        sales: count(sales.0)?,
        sales_total: Amount::from_fen(sales.1),
        tenders: tenders
            .into_iter()
            .map(|(tender, n, amount, paid, bonus, vouchers)| {
                Ok(TenderFigures {
                    tender,
                    count: count(n)?,
                    amount: Amount::from_fen(amount),
                    paid: Amount::from_fen(paid),
                    bonus: Amount::from_fen(bonus),
                    vouchers: count(vouchers)?,
                })
            })
            .collect::<Result<_, StoreError>>()?,
        refunds: count(refunds.0)?,
        refunds_total: Amount::from_fen(refunds.1),
        refunded: refunded
            .into_iter()
            .map(|(went, fen)| (went, Amount::from_fen(fen)))
            .collect(),
    })
}

/// Outstanding credit of one kind: `holders, paid, bonus`.
pub(super) fn credit((holders, paid, bonus): (i64, i64, i64)) -> Result<CreditFigures, StoreError> {
    Ok(CreditFigures {
        holders: count(holders)?,
        paid: Amount::from_fen(paid),
        bonus: Amount::from_fen(bonus),
    })
}

/// A company's unpaid bill: `household code, month, amount, settled`.
pub(super) fn open_bill(
    (household, month, amount, settled): (String, String, i64, i64),
) -> (String, String, Amount, Amount) {
    (
        household,
        month,
        Amount::from_fen(amount),
        Amount::from_fen(settled),
    )
}

/// An entry as the verifier reads it: `seq, kind, business_date, created_at, actor, policy,
/// policy_hash, idempotency_key, memo, reverses, prev_hash, hash`, with one of its postings
/// `account_id, amount` (none for an entry without postings). Rows come in sequence order, an
/// entry's postings in posting order.
pub(super) type ChainRow = (
    i64,
    String,
    String,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    String,
    String,
    Option<i64>,
    Option<i64>,
    i64,
    Option<String>,
);

/// `id, owner_kind, owner_id, name, type, bounded, balance` of an account, for the verifier.
pub(super) type AccountRecordRow = (i64, String, i64, String, String, bool, i64);

pub(super) fn account_record(
    (id, owner_kind, owner_id, name, kind, bounded, balance): AccountRecordRow,
) -> Result<AccountRecord, StoreError> {
    Ok(AccountRecord {
        id: AccountId(id),
        spec: AccountSpec {
            owner: Owner::from_parts(&owner_kind, owner_id)
                .ok_or_else(|| StoreError(format!("account {id}: bad owner kind {owner_kind}")))?,
            name,
            kind: AccountType::parse(&kind)
                .ok_or_else(|| StoreError(format!("account {id}: bad account type {kind}")))?,
            bounded,
        },
        stored_balance: balance,
    })
}

/// Feeds a chunk of the chain to the verifier, entry by entry; false once it has found a
/// problem (the caller may stop reading).
pub(super) fn feed_chain(verifier: &mut Verifier, rows: Vec<ChainRow>) -> Result<bool, StoreError> {
    let mut current: Option<StoredEntry> = None;
    for row in rows {
        let (seq, posting) = (row.0, (row.12, row.13));
        if current.as_ref().is_some_and(|e| e.seq != seq) {
            if let Some(e) = current.take() {
                if !verifier.feed(&e) {
                    return Ok(false);
                }
            }
        }
        let entry = match current.as_mut() {
            Some(e) => e,
            None => match stored_entry(row) {
                Ok(e) => current.insert(e),
                Err(e) => {
                    verifier.unreadable(seq, &e.0);
                    return Ok(false);
                }
            },
        };
        if let (Some(account), Some(amount)) = posting {
            entry.postings.push((AccountId(account), amount));
        }
    }
    Ok(current.is_none_or(|e| verifier.feed(&e)))
}

fn stored_entry(row: ChainRow) -> Result<StoredEntry, StoreError> {
    let (seq, kind, business_date, created, actor, policy, policy_hash, key, memo, reverses) = (
        row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9,
    );
    let (version, facts) = (row.14, row.15);
    Ok(StoredEntry {
        seq,
        version,
        header: EntryHeader {
            kind: EntryKind::parse(&kind)
                .ok_or_else(|| StoreError(format!("bad entry kind {kind}")))?,
            business_date: date(&business_date)?,
            created_at: chrono::DateTime::parse_from_rfc3339(&created)
                .map_err(|e| StoreError(format!("bad timestamp {created:?}: {e}")))?
                .to_utc(),
            actor,
            policy: policy.map(|p| (p, policy_hash.unwrap_or_default())),
            idempotency_key: key,
            memo,
            reverses,
            facts,
        },
        prev_hash: hash32(&row.10)?,
        hash: hash32(&row.11)?,
        postings: Vec::new(),
    })
}

/// What a top-up's void reads of it (`TOPUP_ON_FILE` with the backend's placeholder and row
/// lock), with the codes of its cooperative, shop and household.
pub(super) const TOPUP_ON_FILE: &str =
    "SELECT t.entry_id, t.cooperative_id, c.code, t.shop_id, s.code, t.household_id, h.code,
            t.method, t.paid, t.bonus, t.voucher_id, t.business_date, t.void_entry_id
     FROM topups t JOIN cooperatives c ON c.id = t.cooperative_id
     JOIN shops s ON s.id = t.shop_id JOIN households h ON h.id = t.household_id
     WHERE t.entry_id = ";

pub(super) type TopupOnFileRow = (
    i64,
    i64,
    String,
    i64,
    String,
    i64,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    String,
    Option<i64>,
);

pub(super) fn topup_on_file(row: TopupOnFileRow) -> Result<crate::domain::TopupOnFile, StoreError> {
    let (entry, coop, coop_code, shop, shop_code, household, household_code, method) =
        (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7);
    Ok(crate::domain::TopupOnFile {
        entry,
        coop,
        coop_code,
        shop,
        shop_code,
        household,
        household_code,
        method: crate::domain::PayMethod::parse(&method)
            .ok_or_else(|| StoreError(format!("top-up {entry}: bad method {method}")))?,
        paid: Amount::from_fen(row.8),
        bonus: Amount::from_fen(row.9),
        voucher: row.10,
        business_date: date(&row.11)?,
        void_entry: row.12,
    })
}

/// Credit holders of one kind and what they hold: the households' wallets or the vouchers whose
/// balances `balances` (a query of `owner_id, name, balance` rows) gives, summed per owner into
/// paid (account name `paid`, an SQL expression) and bonus (`bonus`), counting the owners with
/// anything left: `count, paid, bonus` (`cast` makes the sums 64-bit, empty on SQLite).
pub(super) fn credit_holders_sql(balances: &str, paid: &str, bonus: &str, cast: &str) -> String {
    format!(
        "WITH bal AS ({balances}),
         holder AS (
            SELECT SUM(CASE WHEN name = {paid} THEN balance ELSE 0 END) AS paid,
                   SUM(CASE WHEN name = {bonus} THEN balance ELSE 0 END) AS bonus
            FROM bal GROUP BY owner_id
         )
         SELECT COUNT(*), COALESCE(SUM(paid), 0){cast}, COALESCE(SUM(bonus), 0){cast}
         FROM holder WHERE paid + bonus > 0"
    )
}
