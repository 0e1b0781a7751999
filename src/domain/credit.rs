//! Refund of unused credit (cash-out), expenses, stock receipts and reversals — the
//! cooperative accountant's postings.

use super::master::check_text;
use super::topup::{overflow, wallet_balance};
use super::*;
use crate::ledger::chart;

async fn coop<T: Tx>(tx: &mut T, code: &str) -> OpResult<CoopRef> {
    Ok(tx
        .cooperative(code)
        .await?
        .ok_or_else(|| Rejection::not_found("cooperative", "cooperative", code))?)
}

/// The paid part is returned (Dr wallet:paid, Cr cash); the unused bonus is forfeited
/// (Dr wallet:bonus, Cr promotion): spent credit was valued at paid ÷ (paid + bonus).
pub(crate) async fn refund_credit<T: Tx>(
    tx: &mut T,
    ctx: &Ctx<'_>,
    req: &RefundCredit,
) -> OpResult<CreditRefundReceipt> {
    let coop = coop(tx, &req.cooperative).await?;
    let household = tx
        .household(&req.household)
        .await?
        .ok_or_else(|| Rejection::not_found("household", "household", &req.household))?;
    let wallet = wallet_balance(tx, household.id, &coop.code).await?;
    if wallet.total.is_zero() {
        return Err(Rejection::NotRefundable {
            reason: format!("household {} has no unused credit", household.code),
        }
        .into());
    }
    let mut entry = EntryDraft::new(ctx.header(EntryKind::CreditRefund));
    entry
        .debit(
            chart::household_wallet_paid(household.id, &coop.code),
            wallet.paid,
        )
        .credit(chart::coop_cash(coop.id, req.method.as_str()), wallet.paid)
        .debit(
            chart::household_wallet_bonus(household.id, &coop.code),
            wallet.bonus,
        )
        .credit(chart::coop_promotion(coop.id), wallet.bonus);
    let entry = entry.balanced().map_err(|e| StoreError(e.to_string()))?;
    let posted = tx.post(entry, "household").await?;
    Ok(CreditRefundReceipt {
        entry: posted.id,
        refunded: wallet.paid,
        forfeited: wallet.bonus,
        method: req.method,
    })
}

/// Expense categories that write goods off inventory (损耗) rather than pay out cash.
pub const WRITE_OFF_CATEGORIES: [&str; 2] = ["spoilage", "shrinkage"];

/// Expense categories become account names, so they are short lowercase words.
fn check_category(category: &str) -> Result<(), Rejection> {
    let ok = !category.is_empty()
        && category.len() <= 32
        && category
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Rejection::invalid(
            "category",
            "must be 1–32 lowercase letters, digits or '_' (e.g. rent, wages, spoilage)",
        ))
    }
}

fn check_memo(memo: &Option<String>) -> Result<(), Rejection> {
    match memo {
        Some(m) => check_text("memo", m, 200),
        None => Ok(()),
    }
}

pub(crate) async fn expense<T: Tx>(
    tx: &mut T,
    ctx: &Ctx<'_>,
    req: &Expense,
) -> OpResult<PostedReceipt> {
    check_category(&req.category)?;
    check_memo(&req.memo)?;
    if !req.amount.is_positive() {
        return Err(Rejection::bad_amount("amount", "must be more than zero").into());
    }
    if req.date > ctx.today {
        return Err(Rejection::invalid("date", "an expense cannot be dated in the future").into());
    }
    let coop = coop(tx, &req.cooperative).await?;
    let incurred = crate::fees::month_of(req.date);
    if tx.month_close(coop.id, &incurred).await?.is_some() {
        // The month's profit is settled: a late expense is booked in the open month.
        return Err(Rejection::PeriodClosed { month: incurred }.into());
    }
    let mut header = ctx.header(EntryKind::Expense);
    header.memo = Some(match &req.memo {
        Some(m) => format!("{} incurred {}: {m}", req.category, req.date),
        None => format!("{} incurred {}", req.category, req.date),
    });
    // Spoiled or lost goods are written off stock, not paid for again in cash.
    let from = if WRITE_OFF_CATEGORIES.contains(&req.category.as_str()) {
        chart::coop_inventory(coop.id)
    } else {
        chart::coop_cash(coop.id, req.method.as_str())
    };
    let mut entry = EntryDraft::new(header);
    entry
        .debit(chart::coop_expense(coop.id, &req.category), req.amount)
        .credit(from, req.amount);
    let entry = entry.balanced().map_err(|e| StoreError(e.to_string()))?;
    let posted = tx.post(entry, "amount").await?;
    Ok(PostedReceipt {
        entry: posted.id,
        amount: req.amount,
    })
}

pub(crate) async fn stock_receipt<T: Tx>(
    tx: &mut T,
    ctx: &Ctx<'_>,
    req: &StockReceipt,
) -> OpResult<PostedReceipt> {
    check_memo(&req.memo)?;
    if let Some(s) = &req.supplier {
        check_text("supplier", s, 100)?;
    }
    if !req.amount.is_positive() {
        return Err(Rejection::bad_amount("amount", "must be more than zero").into());
    }
    let coop = coop(tx, &req.cooperative).await?;
    let mut header = ctx.header(EntryKind::StockReceipt);
    header.memo = match (&req.supplier, &req.memo) {
        (Some(s), Some(m)) => Some(format!("{s}: {m}")),
        (Some(s), None) => Some(s.clone()),
        (None, m) => m.clone(),
    };
    let mut entry = EntryDraft::new(header);
    entry
        .debit(chart::coop_inventory(coop.id), req.amount)
        .credit(chart::coop_cash(coop.id, req.method.as_str()), req.amount);
    let entry = entry.balanced().map_err(|e| StoreError(e.to_string()))?;
    let posted = tx.post(entry, "amount").await?;
    Ok(PostedReceipt {
        entry: posted.id,
        amount: req.amount,
    })
}

/// A mistaken expense or stock receipt is never edited: a reversal entry with every posting
/// negated references it. Other kinds have their own refund flows.
pub(crate) async fn reverse<T: Tx>(
    tx: &mut T,
    ctx: &Ctx<'_>,
    req: &Reverse,
) -> OpResult<PostedReceipt> {
    check_text("memo", &req.memo, 200)?;
    let (kind, postings) = tx
        .entry_postings(req.entry)
        .await?
        .ok_or_else(|| Rejection::not_found("entry", "entry", req.entry.to_string()))?;
    if !matches!(kind, EntryKind::Expense | EntryKind::StockReceipt) {
        return Err(Rejection::invalid(
            "entry",
            format!("a {kind} entry is not reversed directly; use its refund"),
        )
        .into());
    }
    if tx.is_reversed(req.entry).await? {
        return Err(Rejection::NotRefundable {
            reason: format!("entry {} is already reversed", req.entry),
        }
        .into());
    }
    let mut header = ctx.header(EntryKind::Reversal);
    header.reverses = Some(req.entry);
    header.memo = Some(req.memo.clone());
    let mut amount = Amount::ZERO;
    let mut entry = EntryDraft::new(header);
    for (account, fen) in postings {
        if fen > 0 {
            amount = amount
                .checked_add(Amount::from_fen(fen))
                .ok_or_else(overflow)?;
        }
        entry.postings.push((account, -fen));
    }
    let entry = entry.balanced().map_err(|e| StoreError(e.to_string()))?;
    let posted = tx.post(entry, "entry").await?;
    Ok(PostedReceipt {
        entry: posted.id,
        amount,
    })
}
