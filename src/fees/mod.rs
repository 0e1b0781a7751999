//! Property fees (物业费) and the second policy, 合作社盈利用物业: monthly bills from the fee
//! schedule, payments applied to the oldest unpaid bill first, the month close that turns the
//! cooperative's profit into allocations toward residents' fees, and settlements of what the
//! cooperative then owes each company.
//!
//! Entries: a bill is Dr household fees / Cr company fee_revenue; a payment Dr company cash /
//! Cr household fees; a close Dr cooperative profit_distributed (and the reserve carried in) /
//! Cr due_to:company (and the reserve carried out), with Dr company due_from:cooperative / Cr
//! household fees for each household's share; a settlement Dr due_to / Cr cash:bank on the
//! cooperative's books and Dr cash:bank / Cr due_from on the company's.

pub mod statement;
pub mod xlsx;

use std::collections::BTreeMap;

use chrono::{Datelike, Days, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::domain::{
    AppliedToBill, BillsReceipt, Candidate, CloseMonth, CloseReceipt, CompanyShare, Ctx,
    EligibleHousehold, FeePayment, FeePaymentReceipt, FeeReceiptRow, GenerateBills, MonthTotals,
    OpError, OpResult, PayMethod, Rejection, Settlement, SettlementReceipt, ShareRow, StoreError,
    Tx,
};
use crate::ledger::{chart, ChainSummary, EntryDraft, EntryKind, Fact, Owner};
use crate::money::{allocate, mul_rate, AllocationError, Amount};
use crate::policy::{AllocationBasis, ProfitPolicy};

/// The first and last day of a `YYYY-MM` month.
pub fn month_bounds(field: &str, month: &str) -> Result<(NaiveDate, NaiveDate), Rejection> {
    let bad = || Rejection::invalid(field, "must be a month written YYYY-MM, e.g. 2026-11");
    // Digits only: `str::parse` would also take a sign ("+202-11", "2026-+1").
    let digits = |b: &[u8]| b.iter().all(u8::is_ascii_digit);
    let bytes = month.as_bytes();
    if bytes.len() != 7 || bytes[4] != b'-' || !digits(&bytes[..4]) || !digits(&bytes[5..]) {
        return Err(bad());
    }
    let year: i32 = month[..4].parse().map_err(|_| bad())?;
    let m: u32 = month[5..].parse().map_err(|_| bad())?;
    let first = NaiveDate::from_ymd_opt(year, m, 1).ok_or_else(bad)?;
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .ok_or_else(bad)?;
    let last = next.pred_opt().ok_or_else(bad)?;
    Ok((first, last))
}

fn overflow() -> OpError {
    Rejection::bad_amount("amount", "is too large").into()
}

fn internal(e: impl std::fmt::Display) -> OpError {
    StoreError(e.to_string()).into()
}

// ---------------------------------------------------------------------------------------------
// Bills and payments

pub(crate) async fn generate_bills<T: Tx>(
    tx: &mut T,
    ctx: &Ctx<'_>,
    req: &GenerateBills,
) -> OpResult<BillsReceipt> {
    let (first, _) = month_bounds("month", &req.month)?;
    if first > ctx.today {
        return Err(Rejection::invalid("month", format!("{} has not begun", req.month)).into());
    }
    let company = tx
        .company(&req.company)
        .await?
        .ok_or_else(|| Rejection::not_found("company", "company", &req.company))?;
    // The schedule in force for the month billed, not on the day the bills are made.
    let policy = ctx
        .policies
        .fees(first)
        .ok_or_else(|| Rejection::NoPolicy {
            kind: "property fees".into(),
            date: first,
        })?;
    let policy_name = policy.reference.to_string();
    let due = tx.households_to_bill(company, &req.month).await?;
    let mut bills = Vec::with_capacity(due.len());
    for h in &due {
        let area = Decimal::new(h.area_dm2, 2);
        let fee = policy
            .rules
            .monthly_fee(&h.compound, area)
            .map_err(|_| overflow())?;
        if fee.is_positive() {
            bills.push((h.household, fee));
        }
    }
    let mut receipt = BillsReceipt {
        company: req.company.clone(),
        month: req.month.clone(),
        count: bills.len() as u64,
        total: Amount::checked_sum(bills.iter().map(|b| b.1)).ok_or_else(overflow)?,
        entry: None,
        policy: policy_name.clone(),
    };
    if bills.is_empty() {
        return Ok(receipt);
    }
    // Money paid ahead to this company (a negative fee balance at it) settles the new bill at
    // once; what a moved compound's household holds at its old company stays there.
    let ids: Vec<i64> = bills.iter().map(|b| b.0).collect();
    let mut balances = tx.fee_balances(&ids).await?;
    for (household, elsewhere) in tx.fees_elsewhere(company).await? {
        if let Some(b) = balances.get_mut(&household) {
            *b = b.checked_sub(elsewhere).ok_or_else(overflow)?;
        }
    }
    let mut header = ctx.header(EntryKind::FeeBill);
    header.policy = Some((policy_name, policy.reference.hash.clone()));
    header.memo = Some(format!("property fees {} {}", req.company, req.month));
    header.facts = Some(
        Fact::FeeBills {
            company,
            month: req.month.clone(),
        }
        .encode(),
    );
    let mut entry = EntryDraft::new(header);
    let mut rows = Vec::with_capacity(bills.len());
    for (household, fee) in &bills {
        entry.debit(chart::household_fees(*household), *fee);
        let prepaid = balances
            .get(household)
            .and_then(|b| b.checked_neg())
            .unwrap_or(Amount::ZERO)
            .max(Amount::ZERO);
        rows.push((*household, *fee, prepaid.min(*fee)));
    }
    entry.credit(chart::company_fee_revenue(company), receipt.total);
    let entry = entry.balanced().map_err(internal)?;
    let posted = tx.post(entry, "month").await?;
    tx.insert_fee_bills(posted.id, company, &req.month, &rows)
        .await?;
    receipt.entry = Some(posted.id);
    Ok(receipt)
}

/// Applies `amount` to a household's open bills of `company`, oldest first; returns what each
/// bill got and what was left over.
async fn apply_to_bills<T: Tx>(
    tx: &mut T,
    household: i64,
    company: i64,
    amount: Amount,
) -> OpResult<(Vec<AppliedToBill>, Amount)> {
    let mut left = amount;
    let mut applied = Vec::new();
    let mut updates = Vec::new();
    for bill in tx.open_bills(household, company).await? {
        if !left.is_positive() {
            break;
        }
        let open = bill.amount.checked_sub(bill.settled).ok_or_else(overflow)?;
        let take = open.min(left);
        if take.is_positive() {
            updates.push((bill.id, take));
            applied.push(AppliedToBill {
                month: bill.month,
                amount: take,
            });
            left = left.checked_sub(take).ok_or_else(overflow)?;
        }
    }
    tx.settle_bills(&updates).await?;
    Ok((applied, left))
}

pub(crate) async fn pay<T: Tx>(
    tx: &mut T,
    ctx: &Ctx<'_>,
    req: &FeePayment,
) -> OpResult<FeePaymentReceipt> {
    if !req.amount.is_positive() {
        return Err(Rejection::bad_amount("amount", "must be more than zero").into());
    }
    crate::domain::master_check_text("reference", &req.reference, 100)?;
    let household = tx
        .household(&req.household)
        .await?
        .ok_or_else(|| Rejection::not_found("household", "household", &req.household))?;
    // The payment is made to the company with the household's compound on the business date
    // (a move dated in a later month has not taken effect), and settles that company's bills
    // only. A company the compound has moved away from may still take what is owed on its own
    // bills (its arrears), no more.
    let in_force = tx.household_company_on(household.id, ctx.today).await?;
    let mut company_id = in_force;
    let mut arrears_only = None;
    if let Some(company) = &req.company {
        let caller = tx.company(company).await?;
        match caller {
            Some(k) if k == in_force => {}
            Some(k) => {
                let open = tx.open_bills(household.id, k).await?;
                let owed = Amount::checked_sum(open.iter().map(|b| b.amount))
                    .and_then(|a| {
                        Amount::checked_sum(open.iter().map(|b| b.settled))
                            .and_then(|s| a.checked_sub(s))
                    })
                    .ok_or_else(overflow)?;
                if !owed.is_positive() {
                    // Another company's household does not exist, as far as this caller is
                    // concerned.
                    return Err(
                        Rejection::not_found("household", "household", &req.household).into(),
                    );
                }
                company_id = k;
                arrears_only = Some(owed);
            }
            None => {
                return Err(Rejection::not_found("household", "household", &req.household).into())
            }
        }
    }
    let shop = match &req.shop {
        Some(code) => Some(
            tx.shop(code)
                .await?
                .ok_or_else(|| Rejection::not_found("shop", "shop", code))?,
        ),
        None => None,
    };
    if shop.is_some() && req.method == PayMethod::Bank {
        // A till takes cash, WeChat or Alipay; shopping credit never pays fees.
        return Err(Rejection::MethodNotAccepted {
            field: "method".into(),
            method: req.method.as_str().into(),
        }
        .into());
    }
    if let Some(owed) = arrears_only {
        if shop.is_some() {
            // A till collects for the company the compound is with, never for a former one.
            return Err(Rejection::not_found("household", "household", &req.household).into());
        }
        if req.amount > owed {
            return Err(Rejection::bad_amount(
                "amount",
                format!(
                    "the compound has moved to another company: {} is owed only {owed} on its own bills",
                    req.company.as_deref().unwrap_or_default()
                ),
            )
            .into());
        }
    }
    let (number, company_code) = tx.next_fee_receipt(company_id).await?;
    let mut header = ctx.header(EntryKind::FeePayment);
    header.memo = Some(req.reference.clone());
    header.facts = Some(
        Fact::FeeReceipt {
            company: company_id,
            number,
            household: household.id,
            amount: req.amount.fen(),
            method: req.method.as_str().to_string(),
            cooperative: shop.as_ref().map(|s| s.coop.id),
            shop: shop.as_ref().map(|s| s.id),
        }
        .encode(),
    );
    let mut entry = EntryDraft::new(header);
    match &shop {
        // 代收: the cooperative holds the money and owes it to the company, which is owed it.
        Some(s) => entry
            .debit(chart::coop_cash(s.coop.id, req.method.as_str()), req.amount)
            .credit(chart::coop_due_to(s.coop.id, &company_code), req.amount)
            .debit(
                chart::company_due_from(company_id, &s.coop.code),
                req.amount,
            )
            .credit(chart::household_fees(household.id), req.amount),
        None => entry
            .debit(
                chart::company_cash(company_id, req.method.as_str()),
                req.amount,
            )
            .credit(chart::household_fees(household.id), req.amount),
    };
    let entry = entry.balanced().map_err(internal)?;
    let posted = tx.post(entry, "amount").await?;
    let (applied, prepaid) = apply_to_bills(tx, household.id, company_id, req.amount).await?;
    tx.insert_fee_credits(
        posted.id,
        "payment",
        &[(
            household.id,
            req.amount,
            Some(req.method.as_str().to_string()),
            Some(req.reference.clone()),
        )],
    )
    .await?;
    tx.insert_fee_receipt(&FeeReceiptRow {
        company: company_id,
        number,
        entry: posted.id,
        household: household.id,
        amount: req.amount,
        method: req.method.as_str().to_string(),
        cooperative: shop.as_ref().map(|s| s.coop.id),
        shop: shop.as_ref().map(|s| s.id),
    })
    .await?;
    let balance = tx.balance(&chart::household_fees(household.id)).await?;
    Ok(FeePaymentReceipt {
        entry: posted.id,
        household: household.code,
        amount: req.amount,
        company: company_code,
        receipt: number,
        method: req.method,
        cooperative: shop.as_ref().map(|s| s.coop.code.clone()),
        shop: shop.as_ref().map(|s| s.code.clone()),
        business_date: Some(posted.business_date),
        applied,
        prepaid,
        balance,
    })
}

/// A numbered fee receipt (收据) as printed or reprinted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FeeReceiptView {
    pub company: String,
    pub company_name: String,
    pub number: i64,
    /// The number as printed, e.g. `No. 000123`.
    pub printed_number: String,
    pub household: String,
    pub amount: Amount,
    /// The amount in Chinese capital numerals (大写), e.g. `壹佰贰拾叁元肆角伍分`.
    pub amount_in_words: String,
    pub method: String,
    /// The cooperative (and its shop) that collected it; absent when the office took it.
    pub cooperative: Option<String>,
    pub cooperative_name: Option<String>,
    pub shop: Option<String>,
    pub business_date: NaiveDate,
    pub entry: i64,
}

/// A receipt number as printed: `No. 000123`.
pub fn receipt_number_text(number: i64) -> String {
    format!("No. {number:06}")
}

/// An amount in Chinese capital numerals (大写金额) as written on receipts and cheques:
/// 1,234.50 → 壹仟贰佰叁拾肆元伍角整; 100.07 → 壹佰元零柒分; 0 → 零元整.
pub fn amount_in_chinese(amount: Amount) -> String {
    const DIGITS: [char; 10] = ['零', '壹', '贰', '叁', '肆', '伍', '陆', '柒', '捌', '玖'];
    const UNITS: [&str; 4] = ["", "拾", "佰", "仟"];
    const GROUPS: [&str; 5] = ["", "万", "亿", "万亿", "亿亿"];
    let fen = amount.fen();
    let mut out = String::new();
    if fen < 0 {
        out.push('负');
    }
    let fen = fen.unsigned_abs();
    let (yuan, jiao, cents) = (fen / 100, (fen / 10) % 10, fen % 10);
    if yuan == 0 {
        if jiao == 0 && cents == 0 {
            out.push_str("零元整");
            return out;
        }
    } else {
        // Groups of four digits, highest first; a run of zeros inside reads as one 零.
        let mut groups = Vec::new();
        let mut y = yuan;
        while y > 0 {
            groups.push(y % 10_000);
            y /= 10_000;
        }
        let mut pending_zero = false;
        for (gi, &g) in groups.iter().enumerate().rev() {
            if g == 0 {
                pending_zero = true;
                continue;
            }
            if g < 1000 && gi + 1 < groups.len() {
                pending_zero = true;
            }
            let mut started = false;
            for pos in (0..4).rev() {
                let d = (g / 10u64.pow(pos as u32)) % 10;
                if d == 0 {
                    if started {
                        pending_zero = true;
                    }
                    continue;
                }
                if pending_zero && !out.is_empty() && !out.ends_with('负') {
                    out.push('零');
                }
                pending_zero = false;
                started = true;
                out.push(DIGITS[d as usize]);
                out.push_str(UNITS[pos]);
            }
            out.push_str(GROUPS[gi.min(GROUPS.len() - 1)]);
            // A group's trailing zeros are not read; the next group says its own 零.
            pending_zero = false;
        }
        out.push('元');
    }
    if jiao == 0 && cents == 0 {
        out.push('整');
        return out;
    }
    if jiao > 0 {
        out.push(DIGITS[jiao as usize]);
        out.push('角');
    } else if yuan > 0 {
        out.push('零');
    }
    if cents > 0 {
        out.push(DIGITS[cents as usize]);
        out.push('分');
    } else {
        out.push('整');
    }
    out
}

/// Days since a bill's month began, and the age bucket it falls in.
pub fn age_bucket(bill_month_start: NaiveDate, today: NaiveDate) -> usize {
    let days = (today - bill_month_start).num_days();
    match days {
        d if d <= 30 => 0,
        d if d <= 90 => 1,
        d if d <= 180 => 2,
        _ => 3,
    }
}

/// Labels of the arrears age buckets.
pub const AGE_BUCKETS: [&str; 4] = ["0-30", "31-90", "91-180", "over-180"];

// ---------------------------------------------------------------------------------------------
// Month close

/// One household's claim on a month's pool; its code breaks ties (SPEC §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim<'a> {
    pub household: i64,
    pub code: &'a str,
    pub weight: i64,
    /// At most this much (fees owed), when the policy caps.
    pub cap: Option<Amount>,
}

/// Each candidate's claim on a close's pool by the policy's rule: its weight (credit spending
/// in the month net of refunds, 1 for `equal`, or fees owed for `fee_due`) and, when the policy
/// caps, its cap (fees owed), both as of the month's end. The close and `verify` both call this,
/// on the same candidates read, so the weights and caps a close stores are the ones recomputed.
pub fn close_claims<'a>(rules: &ProfitPolicy, candidates: &'a [Candidate]) -> Vec<Claim<'a>> {
    let owed_of = |c: &Candidate| c.fees_balance.max(Amount::ZERO);
    candidates
        .iter()
        .map(|h| Claim {
            household: h.household.id,
            code: &h.household.code,
            weight: match rules.basis {
                AllocationBasis::CreditSpend => h.credit_spend.max(0),
                AllocationBasis::Equal => 1,
                AllocationBasis::FeeDue => owed_of(h).fen(),
            },
            cap: rules.cap_at_fees_owed.then(|| owed_of(h)),
        })
        .collect()
}

/// Splits `pool` over the claims by weight with the one allocator. A share above its cap is cut
/// to the cap and the excess re-allocated among the uncapped, until no share exceeds its cap;
/// what cannot be placed is returned as the remainder (to the reserve).
pub fn allocate_pool(
    pool: Amount,
    claims: &[Claim<'_>],
    seed: &[u8],
) -> Result<(Vec<Amount>, Amount), AllocationError> {
    let mut parts = vec![Amount::ZERO; claims.len()];
    let mut capped = vec![false; claims.len()];
    let mut active: Vec<usize> = (0..claims.len())
        .filter(|&i| claims[i].weight > 0 && claims[i].cap.is_none_or(|c| c.is_positive()))
        .collect();
    let mut left = pool;
    while left.is_positive() && !active.is_empty() {
        let shares: Vec<(&[u8], i64)> = active
            .iter()
            .map(|&i| (claims[i].code.as_bytes(), claims[i].weight))
            .collect();
        let round = allocate(left, &shares, seed)?;
        let mut over = 0usize;
        for (&i, part) in active.iter().zip(&round) {
            if claims[i].cap.is_some_and(|cap| *part > cap) {
                capped[i] = true;
                over += 1;
            }
        }
        if over == 0 {
            for (&i, part) in active.iter().zip(round) {
                parts[i] = part;
            }
            left = Amount::ZERO;
            break;
        }
        // Fill the capped to their caps and split what is left again among the rest.
        for &i in active.iter().filter(|&&i| capped[i]) {
            let cap = claims[i].cap.unwrap_or(Amount::ZERO);
            parts[i] = cap;
            // A capped share is below its round's part, which is at most what is left.
            left = left
                .checked_sub(cap)
                .ok_or(AllocationError::NegativeTotal)?;
        }
        active.retain(|&i| !capped[i]);
    }
    Ok((parts, left))
}

/// A month close's sums, before any household is weighed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonthFigures {
    /// Sales less cost of goods, promotion (bonus spent) and expenses.
    pub profit: Amount,
    /// The policy's share of the profit left after the loss carried in.
    pub distributed: Amount,
    pub loss_carried_out: Amount,
    /// What is shared: distributed plus the reserve carried in.
    pub pool: Amount,
}

/// Why a close cannot be formed: one of its sums is beyond what an amount holds. Refused as
/// `invalid_amount` on the month, naming the sum, so the operator knows which figure to look at.
fn too_large(what: &str) -> OpError {
    Rejection::bad_amount(
        "month",
        format!("{what} is beyond the largest amount the ledger holds"),
    )
    .into()
}

/// Profit, loss carried in and out, distributed share and pool of a month close, each sum
/// checked: an overflow is a clear refusal naming the sum, never a wrap or a panic.
pub fn month_figures(
    totals: &MonthTotals,
    loss_carried_in: Amount,
    reserve_in: Amount,
    rules: &crate::policy::ProfitPolicy,
) -> Result<MonthFigures, OpError> {
    let profit = [totals.cogs, totals.promotion, totals.expenses]
        .into_iter()
        .try_fold(totals.sales, |acc, a| acc.checked_sub(a))
        .ok_or_else(|| too_large("the month's profit"))?;
    let after_losses = profit
        .checked_sub(loss_carried_in)
        .ok_or_else(|| too_large("the profit less the loss carried in"))?;
    let (distributed, loss_carried_out) = if after_losses.is_positive() {
        (
            mul_rate(after_losses, rules.share, rules.rounding)
                .map_err(|_| too_large("the share distributed"))?,
            Amount::ZERO,
        )
    } else if rules.carry_losses_forward {
        (
            Amount::ZERO,
            after_losses
                .checked_neg()
                .ok_or_else(|| too_large("the loss carried out"))?,
        )
    } else {
        (Amount::ZERO, Amount::ZERO)
    };
    let pool = distributed
        .checked_add(reserve_in)
        .ok_or_else(|| too_large("the pool (distributed plus the reserve carried in)"))?;
    Ok(MonthFigures {
        profit,
        distributed,
        loss_carried_out,
        pool,
    })
}

/// What a close run stores besides its shares, so it can be recomputed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CloseInputs {
    pub policy: String,
    pub policy_hash: String,
    pub basis: String,
    pub share: String,
    pub cap_at_fees_owed: bool,
    pub seed: String,
    pub pool: Amount,
}

/// Each household's part of a close as stored with the run: one JSON document per run, an array
/// of `[household id, company id, weight, cap or null, amount in fen]`. One document rather than
/// a row per household keeps storing a province-sized run to one write (SPEC §12); `hongxin
/// verify` still recomputes every household's share from it.
pub fn shares_document(rows: &[ShareRow]) -> Result<String, serde_json::Error> {
    let rows: Vec<(i64, i64, i64, Option<i64>, i64)> = rows
        .iter()
        .map(|r| {
            (
                r.household,
                r.company,
                r.weight,
                r.cap.map(Amount::fen),
                r.amount.fen(),
            )
        })
        .collect();
    serde_json::to_string(&rows)
}

/// The rows of a [`shares_document`].
pub fn read_shares_document(document: &str) -> Result<Vec<ShareRow>, serde_json::Error> {
    let rows: Vec<(i64, i64, i64, Option<i64>, i64)> = serde_json::from_str(document)?;
    Ok(rows
        .into_iter()
        .map(|(household, company, weight, cap, amount)| ShareRow {
            household,
            company,
            weight,
            cap: cap.map(Amount::from_fen),
            amount: Amount::from_fen(amount),
        })
        .collect())
}

/// Wall time of a close's steps, logged at the end (`HONGXIN_LOG=hongxin::fees=info`): a
/// province-sized close has a budget (SPEC §12), and this says where it goes.
struct Phases {
    last: std::time::Instant,
    spent: Vec<(&'static str, std::time::Duration)>,
}

impl Phases {
    fn start() -> Phases {
        Phases {
            last: std::time::Instant::now(),
            spent: Vec::new(),
        }
    }

    fn done(&mut self, phase: &'static str) {
        let now = std::time::Instant::now();
        self.spent.push((phase, now - self.last));
        self.last = now;
    }

    fn log(&self, cooperative: &str, month: &str, households: usize) {
        let total: std::time::Duration = self.spent.iter().map(|(_, d)| *d).sum();
        let phases: Vec<String> = self
            .spent
            .iter()
            .map(|(p, d)| format!("{p} {:.3}s", d.as_secs_f64()))
            .collect();
        tracing::info!(
            cooperative,
            month,
            households,
            total = format!("{:.3}s", total.as_secs_f64()),
            phases = phases.join(", "),
            "month close"
        );
    }
}

/// The seed of a close's tie-breaks: fixed by cooperative and month, so a rerun agrees.
pub fn close_seed(coop_code: &str, month: &str) -> String {
    format!("hongxin/close/{coop_code}/{month}")
}

pub(crate) async fn close_month<T: Tx>(
    tx: &mut T,
    ctx: &Ctx<'_>,
    req: &CloseMonth,
) -> OpResult<CloseReceipt> {
    let mut phases = Phases::start();
    let (first, month_last) = month_bounds("month", &req.month)?;
    let coop = tx
        .cooperative(&req.cooperative)
        .await?
        .ok_or_else(|| Rejection::not_found("cooperative", "cooperative", &req.cooperative))?;
    if let Some(stored) = tx.month_close(coop.id, &req.month).await? {
        // Closing twice returns the first result.
        return serde_json::from_str(&stored).map_err(internal);
    }
    // An estimate computes the month so far, as its close would today; it posts nothing.
    let last = if req.estimate {
        if !req.dry_run {
            return Err(Rejection::invalid("estimate", "an estimate is a dry run only").into());
        }
        if ctx.today < first {
            return Err(Rejection::invalid("month", format!("{} has not begun", req.month)).into());
        }
        month_last.min(ctx.today)
    } else {
        month_last
    };
    if !req.estimate && ctx.today <= last {
        return Err(Rejection::invalid(
            "month",
            format!(
                "{} has not ended; it can be closed from {}",
                req.month,
                last + Days::new(1)
            ),
        )
        .into());
    }
    let previous = tx.latest_close(coop.id).await?;
    if let Some((closed, _)) = &previous {
        if closed.as_str() > req.month.as_str() {
            return Err(Rejection::PeriodClosed {
                month: closed.clone(),
            }
            .into());
        }
        // Months close in order: a month skipped now could never be closed later (it would be
        // before a closed one), and its profit, loss and reserve would drop out of the chain.
        let (_, closed_last) = month_bounds("month", closed)?;
        let next = month_of(closed_last + Days::new(1));
        if next != req.month {
            return Err(Rejection::invalid(
                "month",
                format!(
                    "{closed} is the last month closed: close {next} first, months close in order"
                ),
            )
            .into());
        }
    }
    let policy = ctx
        .policies
        .profit(last)
        .ok_or_else(|| Rejection::NoPolicy {
            kind: "profit".into(),
            date: last,
        })?;
    let rules = &policy.rules;
    let totals = tx.coop_month_totals(coop.id, first, last).await?;
    let loss_carried_in = match &previous {
        Some((_, result)) if rules.carry_losses_forward => {
            serde_json::from_str::<CloseReceipt>(result)
                .map_err(internal)?
                .loss_carried_out
        }
        _ => Amount::ZERO,
    };
    let reserve_in = tx.balance(&chart::coop_allocation_reserve(coop.id)).await?;
    let MonthFigures {
        profit,
        distributed,
        loss_carried_out,
        pool,
    } = month_figures(&totals, loss_carried_in, reserve_in, rules)?;
    phases.done("totals");

    let candidates = tx.close_candidates(coop.id, first, last).await?;
    phases.done("candidates");
    let claims = close_claims(rules, &candidates);
    let households: Vec<&EligibleHousehold> = candidates.iter().map(|c| &c.household).collect();
    let seed = close_seed(&coop.code, &req.month);
    let (parts, reserve) = allocate_pool(pool, &claims, seed.as_bytes()).map_err(internal)?;
    let allocated = pool
        .checked_sub(reserve)
        .ok_or_else(|| too_large("the pool less the reserve"))?;
    phases.done("allocation");

    let mut by_company: BTreeMap<String, (i64, u64, Amount)> = BTreeMap::new();
    for (h, part) in households.iter().zip(&parts) {
        if !part.is_positive() {
            continue;
        }
        // Looked up by reference: a million households share a handful of company codes.
        match by_company.get_mut(&h.company_code) {
            Some(e) => {
                e.1 += 1;
                e.2 =
                    e.2.checked_add(*part)
                        .ok_or_else(|| too_large("a company's share"))?;
            }
            None => {
                by_company.insert(h.company_code.clone(), (h.company, 1, *part));
            }
        }
    }
    let mut receipt = CloseReceipt {
        cooperative: coop.code.clone(),
        month: req.month.clone(),
        dry_run: req.dry_run,
        entry: None,
        policy: policy.reference.to_string(),
        basis: rules.basis.as_str().to_string(),
        sales: totals.sales,
        cogs: totals.cogs,
        promotion: totals.promotion,
        expenses: totals.expenses,
        profit,
        loss_carried_in,
        loss_carried_out,
        distributed,
        reserve_in,
        pool,
        allocated,
        reserve,
        households: parts.iter().filter(|p| p.is_positive()).count() as u64,
        companies: by_company
            .iter()
            .map(|(code, (_, n, amount))| CompanyShare {
                company: code.clone(),
                households: *n,
                amount: *amount,
            })
            .collect(),
        estimated_to: req.estimate.then_some(last),
    };
    if req.dry_run {
        phases.done("receipt");
        phases.log(&coop.code, &req.month, candidates.len());
        return Ok(receipt);
    }

    let mut header = ctx.header(EntryKind::ProfitAllocation);
    header.policy = Some((policy.reference.to_string(), policy.reference.hash.clone()));
    header.memo = Some(format!(
        "{} profit {} toward property fees",
        coop.code, req.month
    ));
    // A close is always an entry of the journal, even one that posts nothing (a loss month):
    // it names the month closed in hashed bytes, and its business date, after that month,
    // dates every later entry after the month too (business dates never run backwards).
    header.facts = Some(
        Fact::MonthClosed {
            cooperative: coop.id,
            month: req.month.clone(),
        }
        .encode(),
    );
    let mut entry = EntryDraft::new(header);
    entry.debit(chart::coop_profit_distributed(coop.id), distributed);
    // Only the reserve's net change is posted: carried in and carried out are one account.
    let reserve_change = reserve
        .checked_sub(reserve_in)
        .ok_or_else(|| too_large("the change in the reserve"))?;
    if reserve_change.is_negative() {
        let release = reserve_change
            .checked_neg()
            .ok_or_else(|| too_large("the reserve released"))?;
        entry.debit(chart::coop_allocation_reserve(coop.id), release);
    } else {
        entry.credit(chart::coop_allocation_reserve(coop.id), reserve_change);
    }
    for (code, (company, _, amount)) in &by_company {
        entry
            .credit(chart::coop_due_to(coop.id, code), *amount)
            .debit(chart::company_due_from(*company, &coop.code), *amount);
    }
    for (h, part) in households.iter().zip(&parts) {
        entry.credit(chart::household_fees(h.id), *part);
    }
    {
        let entry = entry.balanced().map_err(internal)?;
        phases.done("entry");
        let posted = tx.post(entry, "month").await?;
        phases.done("post");
        receipt.entry = Some(posted.id);
        // Each household's share is in the entry and in the stored shares; here it only
        // settles bills, oldest first.
        let to_bills: Vec<(i64, i64, Amount)> = households
            .iter()
            .zip(&parts)
            .filter(|(_, part)| part.is_positive())
            .map(|(h, part)| (h.id, h.company, *part))
            .collect();
        tx.settle_bills_for(&to_bills).await?;
        phases.done("settle bills");
    }
    let shares: Vec<ShareRow> = households
        .iter()
        .zip(claims.iter().zip(&parts))
        .filter(|(_, (c, p))| c.weight > 0 || p.is_positive())
        .map(|(h, (c, p))| ShareRow {
            household: h.id,
            company: h.company,
            weight: c.weight,
            cap: c.cap,
            amount: *p,
        })
        .collect();
    let inputs = CloseInputs {
        policy: policy.reference.to_string(),
        policy_hash: policy.reference.hash.clone(),
        basis: rules.basis.as_str().to_string(),
        share: rules.share.to_string(),
        cap_at_fees_owed: rules.cap_at_fees_owed,
        seed,
        pool,
    };
    let inputs = serde_json::to_string(&inputs).map_err(internal)?;
    let result = serde_json::to_string(&receipt).map_err(internal)?;
    let shares = shares_document(&shares).map_err(internal)?;
    tx.insert_month_close(
        coop.id,
        &req.month,
        receipt.entry,
        &inputs,
        &result,
        &shares,
    )
    .await?;
    phases.done("store run");
    phases.log(&coop.code, &req.month, candidates.len());
    Ok(receipt)
}

/// A close's figures as the journal and the policy in force give them, for `verify` to compare
/// with the stored result; the same function as the close itself ([`month_figures`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseFigures {
    pub sales: Amount,
    pub cogs: Amount,
    pub promotion: Amount,
    pub expenses: Amount,
    pub profit: Amount,
    pub loss_carried_in: Amount,
    pub loss_carried_out: Amount,
    pub distributed: Amount,
    pub reserve_in: Amount,
    pub pool: Amount,
    pub allocated: Amount,
    pub reserve: Amount,
}

impl CloseFigures {
    /// The stored result's figures in the same shape.
    pub fn of(r: &CloseReceipt) -> CloseFigures {
        CloseFigures {
            sales: r.sales,
            cogs: r.cogs,
            promotion: r.promotion,
            expenses: r.expenses,
            profit: r.profit,
            loss_carried_in: r.loss_carried_in,
            loss_carried_out: r.loss_carried_out,
            distributed: r.distributed,
            reserve_in: r.reserve_in,
            pool: r.pool,
            allocated: r.allocated,
            reserve: r.reserve,
        }
    }
}

/// Recomputes a close of `month` for cooperative `coop` from the chain: the month's totals from
/// the postings of entries dated in it, the reserve carried in from the reserve account's
/// postings before the close's entry, and what was allocated from the stored shares (which the
/// entry's postings are checked against separately). Also returns the reserve the close's own
/// entry leaves, which must be the reserve carried out.
pub fn close_figures_from_chain(
    summary: &ChainSummary,
    coop: i64,
    month: &str,
    entry_seq: i64,
    rules: &ProfitPolicy,
    loss_carried_in: Amount,
    allocated: Amount,
) -> Result<(CloseFigures, Amount), String> {
    let (first, last) = month_bounds("month", month).map_err(|e| e.to_string())?;
    let mut totals = MonthTotals::default();
    let mut reserve_in = 0i64;
    let mut reserve_after = 0i64;
    let too_large = || "figures too large".to_string();
    for m in &summary.movements {
        if m.owner != Owner::Cooperative(coop) {
            continue;
        }
        if m.name == "allocation_reserve" {
            // A liability: a credit (negative) adds to it.
            if m.seq < entry_seq {
                reserve_in = reserve_in.checked_sub(m.amount).ok_or_else(too_large)?;
            }
            if m.seq <= entry_seq {
                reserve_after = reserve_after.checked_sub(m.amount).ok_or_else(too_large)?;
            }
            continue;
        }
        if m.business_date < first || m.business_date > last {
            continue;
        }
        let (slot, sign) = match m.name.as_str() {
            "sales" => (&mut totals.sales, -1),
            "cogs" => (&mut totals.cogs, 1),
            "promotion" => (&mut totals.promotion, 1),
            name if name.starts_with("expense:") => (&mut totals.expenses, 1),
            _ => continue,
        };
        *slot = slot
            .checked_add(Amount::from_fen(m.amount * sign))
            .ok_or_else(too_large)?;
    }
    let reserve_in = Amount::from_fen(reserve_in);
    let MonthFigures {
        profit,
        distributed,
        loss_carried_out,
        pool,
    } = month_figures(&totals, loss_carried_in, reserve_in, rules).map_err(|e| e.to_string())?;
    let reserve = pool.checked_sub(allocated).ok_or_else(too_large)?;
    Ok((
        CloseFigures {
            sales: totals.sales,
            cogs: totals.cogs,
            promotion: totals.promotion,
            expenses: totals.expenses,
            profit,
            loss_carried_in,
            loss_carried_out,
            distributed,
            reserve_in,
            pool,
            allocated,
            reserve,
        },
        Amount::from_fen(reserve_after),
    ))
}

/// A stored close's weights and caps (household code, weight, cap, amount) against the claims
/// recomputed from `candidates`, read as of the month's end by the same function as the close.
/// Every household with a weight or a share must be in the document with the weight and cap of
/// its claim, and every row of the document must be a candidate. `None` when they agree, else
/// the first household that differs.
pub fn recheck_close_weights(
    rules: &ProfitPolicy,
    candidates: &[Candidate],
    shares: &[(String, i64, Option<Amount>, Amount)],
) -> Option<String> {
    let claims = close_claims(rules, candidates);
    let mut stored: std::collections::HashMap<&str, (i64, Option<Amount>)> =
        std::collections::HashMap::with_capacity(shares.len());
    for (code, weight, cap, _) in shares {
        if stored.insert(code, (*weight, *cap)).is_some() {
            return Some(format!("household {code} is in the shares twice"));
        }
    }
    let cap_text = |cap: Option<Amount>| cap.map_or_else(|| "none".to_string(), |c| c.to_string());
    let mut found = 0usize;
    // Under `equal` every household weighs 1 whatever the journal says, so one made after the
    // close (ids only grow) is a candidate now that was not then.
    let mut newest_listed = i64::MIN;
    for c in &claims {
        let Some(&(weight, cap)) = stored.get(c.code) else {
            continue;
        };
        found += 1;
        newest_listed = newest_listed.max(c.household);
        if (weight, cap) != (c.weight, c.cap) {
            return Some(format!(
                "household {}: stored weight {weight} and cap {}, but as of the month's end its \
                 weight is {} and its cap {}",
                c.code,
                cap_text(cap),
                c.weight,
                cap_text(c.cap)
            ));
        }
    }
    if found != stored.len() {
        let candidate: std::collections::HashSet<&str> = claims.iter().map(|c| c.code).collect();
        if let Some((code, ..)) = shares.iter().find(|s| !candidate.contains(s.0.as_str())) {
            return Some(format!(
                "household {code} is in the shares but was not a candidate of the close"
            ));
        }
    }
    let later = |c: &Claim| rules.basis == AllocationBasis::Equal && c.household > newest_listed;
    claims
        .iter()
        .find(|c| c.weight > 0 && !stored.contains_key(c.code) && !later(c))
        .map(|c| {
            format!(
                "household {} weighs {} as of the month's end but is not in the shares",
                c.code, c.weight
            )
        })
}

/// Recomputes a stored close from its inputs and shares; `None` when it agrees, else the first
/// difference.
pub fn recheck_close(
    inputs: &CloseInputs,
    shares: &[(String, i64, Option<Amount>, Amount)],
) -> Option<String> {
    let claims: Vec<Claim> = shares
        .iter()
        .enumerate()
        .map(|(i, (code, weight, cap, _))| Claim {
            household: i as i64,
            code,
            weight: *weight,
            cap: *cap,
        })
        .collect();
    match allocate_pool(inputs.pool, &claims, inputs.seed.as_bytes()) {
        Err(e) => Some(format!("cannot recompute: {e}")),
        Ok((parts, _)) => shares
            .iter()
            .zip(parts)
            .find(|((_, _, _, stored), part)| stored != part)
            .map(|((code, _, _, stored), part)| {
                format!("household {code}: stored {stored}, recomputed {part}")
            }),
    }
}

// ---------------------------------------------------------------------------------------------
// Settlements

pub(crate) async fn settle<T: Tx>(
    tx: &mut T,
    ctx: &Ctx<'_>,
    req: &Settlement,
) -> OpResult<SettlementReceipt> {
    if !req.amount.is_positive() {
        return Err(Rejection::bad_amount("amount", "must be more than zero").into());
    }
    crate::domain::master_check_text("reference", &req.reference, 100)?;
    let coop = tx
        .cooperative(&req.cooperative)
        .await?
        .ok_or_else(|| Rejection::not_found("cooperative", "cooperative", &req.cooperative))?;
    let company = tx
        .company(&req.company)
        .await?
        .ok_or_else(|| Rejection::not_found("company", "company", &req.company))?;
    let owed = tx
        .balance(&chart::coop_due_to(coop.id, &req.company))
        .await?;
    if req.amount > owed {
        return Err(Rejection::bad_amount(
            "amount",
            format!("the cooperative owes {} only {owed}", req.company),
        )
        .into());
    }
    let mut header = ctx.header(EntryKind::Settlement);
    header.memo = Some(req.reference.clone());
    let mut entry = EntryDraft::new(header);
    entry
        .debit(chart::coop_due_to(coop.id, &req.company), req.amount)
        .credit(chart::coop_cash(coop.id, "bank"), req.amount)
        .debit(chart::company_cash(company, "bank"), req.amount)
        .credit(chart::company_due_from(company, &coop.code), req.amount);
    let entry = entry.balanced().map_err(internal)?;
    let posted = tx.post(entry, "amount").await?;
    tx.insert_settlement(posted.id, coop.id, company, req.amount, &req.reference)
        .await?;
    Ok(SettlementReceipt {
        entry: posted.id,
        company: req.company.clone(),
        amount: req.amount,
        outstanding: owed.checked_sub(req.amount).ok_or_else(overflow)?,
    })
}

/// The month a business date falls in, `YYYY-MM`.
pub fn month_of(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_in_chinese_capitals() {
        let w = |fen| amount_in_chinese(Amount::from_fen(fen));
        assert_eq!(w(0), "零元整");
        assert_eq!(w(123_450), "壹仟贰佰叁拾肆元伍角整");
        assert_eq!(w(10_007), "壹佰元零柒分");
        assert_eq!(w(4_804), "肆拾捌元零肆分");
        assert_eq!(w(12_345), "壹佰贰拾叁元肆角伍分");
        assert_eq!(w(100_000_000), "壹佰万元整");
        assert_eq!(w(100_500_000), "壹佰万伍仟元整");
        assert_eq!(w(1_000_100), "壹万零壹元整");
        assert_eq!(w(55), "伍角伍分");
        assert_eq!(receipt_number_text(123), "No. 000123");
    }
    use proptest::prelude::*;

    fn rules(carry_losses_forward: bool) -> crate::policy::ProfitPolicy {
        crate::policy::ProfitPolicy {
            share: Decimal::new(60, 2),
            basis: AllocationBasis::CreditSpend,
            cap_at_fees_owed: true,
            carry_losses_forward,
            default_cost_ratio: Decimal::new(70, 2),
            rounding: crate::money::Rounding::HalfUp,
            max_amount: crate::policy::DEFAULT_MAX_AMOUNT,
        }
    }

    fn totals(sales: i64, cogs: i64, promotion: i64, expenses: i64) -> MonthTotals {
        MonthTotals {
            sales: Amount::from_fen(sales),
            cogs: Amount::from_fen(cogs),
            promotion: Amount::from_fen(promotion),
            expenses: Amount::from_fen(expenses),
        }
    }

    fn refused_naming(r: Result<MonthFigures, OpError>, what: &str) {
        match r {
            Err(OpError::Rejected(Rejection::InvalidAmount { field, reason })) => {
                assert_eq!(field, "month");
                assert!(reason.starts_with(what), "{reason}");
            }
            other => panic!("expected a refusal naming {what}, got {other:?}"),
        }
    }

    fn candidate(id: i64, code: &str, owes: i64, spent: i64) -> Candidate {
        Candidate {
            household: EligibleHousehold {
                id,
                code: code.into(),
                company: 1,
                company_code: "K01".into(),
            },
            fees_balance: Amount::from_fen(owes),
            credit_spend: spent,
        }
    }

    #[test]
    fn a_close_s_weights_and_caps_are_held_to_its_candidates() {
        let rules = rules(true);
        let candidates = [
            candidate(1, "H1", 10_000, 500),
            candidate(2, "H2", -300, 200),
            candidate(3, "H3", 4_000, 0),
        ];
        // As the close stores them: H3 spent nothing and is left out.
        let claims = close_claims(&rules, &candidates);
        assert_eq!(
            claims
                .iter()
                .map(|c| (c.code, c.weight, c.cap))
                .collect::<Vec<_>>(),
            vec![
                ("H1", 500, Some(Amount::from_fen(10_000))),
                ("H2", 200, Some(Amount::ZERO)),
                ("H3", 0, Some(Amount::from_fen(4_000))),
            ]
        );
        let row = |code: &str, weight: i64, cap: i64, amount: i64| {
            (
                code.to_string(),
                weight,
                Some(Amount::from_fen(cap)),
                Amount::from_fen(amount),
            )
        };
        let stored = vec![row("H1", 500, 10_000, 900), row("H2", 200, 0, 0)];
        assert_eq!(recheck_close_weights(&rules, &candidates, &stored), None);
        let problem = |shares: &[(String, i64, Option<Amount>, Amount)]| {
            recheck_close_weights(&rules, &candidates, shares).expect("a difference")
        };
        // A weight, a cap, a missing weighed household, a row for no candidate, a row twice.
        let p = problem(&[row("H1", 501, 10_000, 900), row("H2", 200, 0, 0)]);
        assert!(p.starts_with("household H1: stored weight 501"), "{p}");
        let p = problem(&[row("H1", 500, 10_001, 900), row("H2", 200, 0, 0)]);
        assert!(
            p.starts_with("household H1:") && p.contains("cap 100.01"),
            "{p}"
        );
        let p = problem(&[row("H1", 500, 10_000, 900)]);
        assert!(p.starts_with("household H2 weighs 200"), "{p}");
        let mut extra = stored.clone();
        extra.push(row("H9", 0, 0, 0));
        assert!(problem(&extra).starts_with("household H9 is in the shares but was not"));
        let mut twice = stored.clone();
        twice.push(row("H2", 200, 0, 0));
        assert!(problem(&twice).starts_with("household H2 is in the shares twice"));
        // Under `equal` a household made after the close (an id above every listed one) was
        // no candidate then; one made before it must be listed.
        let equal = ProfitPolicy {
            basis: AllocationBasis::Equal,
            ..rules.clone()
        };
        let listed = vec![row("H1", 1, 10_000, 900), row("H2", 1, 0, 0)];
        assert_eq!(recheck_close_weights(&equal, &candidates, &listed), None);
        let p = recheck_close_weights(&equal, &candidates, &listed[1..]).expect("H1 missing");
        assert!(p.starts_with("household H1 weighs 1"), "{p}");
    }

    #[test]
    fn month_figures_are_exact() {
        // 1000.00 sold, 700.00 cost, 10.00 promotion, 90.00 expenses: 200.00 profit, less
        // 50.00 carried in: 60% of 150.00 is 90.00, plus 5.00 reserve is a 95.00 pool.
        let f = month_figures(
            &totals(100_000, 70_000, 1_000, 9_000),
            Amount::from_fen(5_000),
            Amount::from_fen(500),
            &rules(true),
        )
        .unwrap();
        assert_eq!(
            f,
            MonthFigures {
                profit: Amount::from_fen(20_000),
                distributed: Amount::from_fen(9_000),
                loss_carried_out: Amount::ZERO,
                pool: Amount::from_fen(9_500),
            }
        );
        // A loss month carries its loss out and distributes nothing.
        let f = month_figures(
            &totals(10_000, 20_000, 0, 0),
            Amount::from_fen(3_000),
            Amount::ZERO,
            &rules(true),
        )
        .unwrap();
        assert_eq!(
            (f.profit, f.distributed, f.loss_carried_out, f.pool),
            (
                Amount::from_fen(-10_000),
                Amount::ZERO,
                Amount::from_fen(13_000),
                Amount::ZERO
            )
        );
    }

    #[test]
    fn every_sum_of_a_close_is_checked() {
        let max = i64::MAX;
        let min = i64::MIN;
        refused_naming(
            month_figures(
                &totals(min, 1, 0, 0),
                Amount::ZERO,
                Amount::ZERO,
                &rules(true),
            ),
            "the month's profit",
        );
        refused_naming(
            month_figures(
                &totals(max, 0, 0, 0),
                Amount::from_fen(-1),
                Amount::ZERO,
                &rules(true),
            ),
            "the profit less the loss carried in",
        );
        refused_naming(
            month_figures(
                &totals(min + 1, 0, 0, 0),
                Amount::from_fen(1),
                Amount::ZERO,
                &rules(true),
            ),
            "the loss carried out",
        );
        refused_naming(
            month_figures(
                &totals(max, 0, 0, 0),
                Amount::ZERO,
                Amount::from_fen(max),
                &rules(true),
            ),
            "the pool",
        );
        // Without carrying losses forward a loss month is simply nothing to share.
        let f = month_figures(
            &totals(min + 1, 0, 0, 0),
            Amount::ZERO,
            Amount::ZERO,
            &rules(false),
        )
        .unwrap();
        assert_eq!(
            (f.distributed, f.loss_carried_out),
            (Amount::ZERO, Amount::ZERO)
        );
    }

    fn claim(code: &str, weight: i64, cap: Option<i64>) -> Claim<'_> {
        Claim {
            household: 0,
            code,
            weight,
            cap: cap.map(Amount::from_fen),
        }
    }

    #[test]
    fn three_equal_spenders_share_a_thousand() {
        let claims = [
            claim("h1", 10, None),
            claim("h2", 10, None),
            claim("h3", 10, None),
        ];
        let (parts, rest) = allocate_pool(Amount::from_yuan(1000), &claims, b"s").unwrap();
        let mut sorted: Vec<i64> = parts.iter().map(|p| p.fen()).collect();
        sorted.sort();
        assert_eq!(sorted, vec![33333, 33333, 33334]);
        assert_eq!(rest, Amount::ZERO);
        // The same seed picks the same household for the extra fen.
        assert_eq!(
            allocate_pool(Amount::from_yuan(1000), &claims, b"s")
                .unwrap()
                .0,
            parts
        );
    }

    #[test]
    fn a_cap_reallocates_the_excess_and_the_rest_goes_to_reserve() {
        // 300.00 over three equal claims, one capped at 40.00: it gets 40.00, the other two
        // share 260.00.
        let claims = [
            claim("a", 1, Some(4000)),
            claim("b", 1, None),
            claim("c", 1, None),
        ];
        let (parts, rest) = allocate_pool(Amount::from_yuan(300), &claims, b"").unwrap();
        assert_eq!(
            parts,
            vec![
                Amount::from_yuan(40),
                Amount::from_yuan(130),
                Amount::from_yuan(130)
            ]
        );
        assert_eq!(rest, Amount::ZERO);
        // Everyone capped: what is left goes back as the remainder.
        let claims = [claim("a", 1, Some(1000)), claim("b", 3, Some(2000))];
        let (parts, rest) = allocate_pool(Amount::from_yuan(100), &claims, b"").unwrap();
        assert_eq!(parts, vec![Amount::from_yuan(10), Amount::from_yuan(20)]);
        assert_eq!(rest, Amount::from_yuan(70));
        // Nobody with weight: all of it is the remainder.
        let (parts, rest) =
            allocate_pool(Amount::from_yuan(5), &[claim("a", 0, None)], b"").unwrap();
        assert_eq!((parts, rest), (vec![Amount::ZERO], Amount::from_yuan(5)));
    }

    #[test]
    fn months() {
        assert_eq!(
            month_bounds("m", "2026-02").unwrap(),
            (
                NaiveDate::from_ymd_opt(2026, 2, 1).unwrap(),
                NaiveDate::from_ymd_opt(2026, 2, 28).unwrap()
            )
        );
        for bad in [
            "2026-13", "2026-1", "26-01", "2026/01", "", "+202-11", "2026-+1", "2026-00",
        ] {
            assert!(month_bounds("m", bad).is_err(), "{bad}");
        }
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(age_bucket(d("2026-11-01"), d("2026-11-30")), 0);
        assert_eq!(age_bucket(d("2026-09-01"), d("2026-11-30")), 1);
        assert_eq!(age_bucket(d("2026-06-01"), d("2026-11-27")), 2);
        assert_eq!(age_bucket(d("2026-01-01"), d("2026-11-30")), 3);
    }

    proptest! {
        #[test]
        fn pool_allocation_invariants(
            pool in 0i64..10_000_000,
            claims in prop::collection::vec((0i64..100_000, prop::option::of(0i64..500_000)), 1..30),
        ) {
            let codes: Vec<String> = (0..claims.len()).map(|i| format!("h{i:03}")).collect();
            let claims: Vec<Claim> = claims
                .iter()
                .zip(&codes)
                .map(|((w, cap), code)| claim(code, *w, *cap))
                .collect();
            let (parts, rest) = allocate_pool(Amount::from_fen(pool), &claims, b"seed").unwrap();
            // Everything is accounted for, nothing is negative, no cap is exceeded.
            prop_assert_eq!(parts.iter().map(|p| p.fen()).sum::<i64>() + rest.fen(), pool);
            prop_assert!(rest.fen() >= 0);
            for (c, p) in claims.iter().zip(&parts) {
                prop_assert!(p.fen() >= 0);
                if let Some(cap) = c.cap { prop_assert!(*p <= cap); }
                if c.weight == 0 { prop_assert_eq!(p.fen(), 0); }
            }
            // A remainder is left only when every claim with weight is at its cap.
            if rest.is_positive() {
                for (c, p) in claims.iter().zip(&parts) {
                    if c.weight > 0 { prop_assert_eq!(Some(*p), c.cap); }
                }
            }
            // Order of claims does not matter.
            let mut reversed = claims.clone();
            reversed.reverse();
            let (again, rest2) = allocate_pool(Amount::from_fen(pool), &reversed, b"seed").unwrap();
            let again: Vec<Amount> = again.into_iter().rev().collect();
            prop_assert_eq!(again, parts);
            prop_assert_eq!(rest2, rest);
        }
    }
}
