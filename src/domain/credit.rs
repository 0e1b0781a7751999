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
    let (paid, bonus) = cash_out_parts(&wallet, req.amount)?;
    let mut entry = EntryDraft::new(ctx.header(EntryKind::CreditRefund));
    entry
        .debit(chart::household_wallet_paid(household.id, &coop.code), paid)
        .credit(chart::coop_cash(coop.id, req.method.as_str()), paid)
        .debit(
            chart::household_wallet_bonus(household.id, &coop.code),
            bonus,
        )
        .credit(chart::coop_promotion(coop.id), bonus);
    let entry = entry.balanced().map_err(|e| StoreError(e.to_string()))?;
    let posted = tx.post(entry, "household").await?;
    let left_paid = wallet.paid.checked_sub(paid).ok_or_else(overflow)?;
    let left_bonus = wallet.bonus.checked_sub(bonus).ok_or_else(overflow)?;
    Ok(CreditRefundReceipt {
        entry: posted.id,
        refunded: paid,
        forfeited: bonus,
        method: req.method,
        left: Some(WalletBalance {
            paid: left_paid,
            bonus: left_bonus,
            total: left_paid.checked_add(left_bonus).ok_or_else(overflow)?,
        }),
    })
}

/// The paid credit paid out and the bonus forfeited by a cash-out of `amount` (or of the whole
/// wallet): the bonus goes in the proportion the paid-out part bears to the paid credit — the
/// allocator's share of `amount` against what stays — so paying out everything forfeits all of
/// it.
pub fn cash_out_parts(
    wallet: &WalletBalance,
    amount: Option<Amount>,
) -> Result<(Amount, Amount), Rejection> {
    let Some(amount) = amount else {
        return Ok((wallet.paid, wallet.bonus));
    };
    if !amount.is_positive() {
        return Err(Rejection::bad_amount("amount", "must be more than zero"));
    }
    if amount > wallet.paid {
        return Err(Rejection::InsufficientFunds {
            field: "amount".into(),
            available: wallet.paid,
        });
    }
    let stays = wallet.paid.fen() - amount.fen();
    let parts = crate::money::allocate(
        wallet.bonus,
        &[("out", amount.fen()), ("stays", stays)],
        b"cash-out",
    )
    .map_err(|e| Rejection::bad_amount("amount", e.to_string()))?;
    Ok((amount, parts[0]))
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn wallet(paid: i64, bonus: i64) -> WalletBalance {
        WalletBalance {
            paid: Amount::from_fen(paid),
            bonus: Amount::from_fen(bonus),
            total: Amount::from_fen(paid + bonus),
        }
    }

    proptest! {
        /// A partial cash-out forfeits the bonus in proportion, to within a fen; all of the
        /// paid credit forfeits all of the bonus; a cash-out in two parts forfeits exactly
        /// what the whole one would.
        #[test]
        fn cash_out_forfeits_bonus_in_proportion(
            (paid, amount) in (1i64..10_000_000).prop_flat_map(|paid| (Just(paid), 1..=paid)),
            bonus in 0i64..1_000_000,
        ) {
            let w = wallet(paid, bonus);
            let (out, forfeited) = cash_out_parts(&w, Some(Amount::from_fen(amount))).unwrap();
            prop_assert_eq!(out.fen(), amount);
            prop_assert!(forfeited.fen() >= 0 && forfeited.fen() <= bonus);
            let exact = i128::from(bonus) * i128::from(amount);
            let got = i128::from(forfeited.fen()) * i128::from(paid);
            prop_assert!((exact - got).abs() < i128::from(paid), "{} vs {}", got, exact);
            let rest = wallet(paid - amount, bonus - forfeited.fen());
            let (all_out, all_forfeited) = cash_out_parts(&rest, None).unwrap();
            prop_assert_eq!(out.fen() + all_out.fen(), paid);
            prop_assert_eq!(forfeited.fen() + all_forfeited.fen(), bonus);
            let (_, whole) = cash_out_parts(&w, Some(w.paid)).unwrap();
            prop_assert_eq!(whole.fen(), bonus);
        }
    }

    #[test]
    fn a_cash_out_must_be_positive_and_within_the_paid_credit() {
        let w = wallet(5_000, 500);
        assert_eq!(
            cash_out_parts(&w, Some(Amount::from_fen(5_001))),
            Err(Rejection::InsufficientFunds {
                field: "amount".into(),
                available: Amount::from_fen(5_000),
            })
        );
        assert_eq!(
            cash_out_parts(&w, Some(Amount::ZERO)).unwrap_err().code(),
            "invalid_amount"
        );
        assert_eq!(
            cash_out_parts(&wallet(0, 3), Some(Amount::from_fen(1)))
                .unwrap_err()
                .code(),
            "insufficient_funds"
        );
    }
}
