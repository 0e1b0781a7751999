//! Sales at a till and their refunds.
//!
//! A sale of total T and cost C: Dr each tender (wallet and voucher parts, or cooperative cash),
//! Cr sales T; Dr cogs C, Cr inventory C. A wallet or voucher tender draws from its paid and
//! bonus parts pro rata to their balances, split by the allocator. A refund gives each tender
//! back its share, and within a credit tender the paid/bonus split it drew.

use std::collections::HashSet;

use super::*;
use crate::domain::{line_qty, price_line, MAX_LINES, MAX_TENDERS};
use crate::money::{allocate, mul_rate};

/// A voucher that can be spent today at this cooperative, or the one uniform refusal.
pub(crate) fn usable_voucher(
    state: &State,
    ctx: &Ctx<'_>,
    coop: i64,
    field: &str,
    code: &str,
) -> OpResult<VoucherRecord> {
    let serial = verify_voucher(ctx, field, code)?;
    match state.voucher(serial) {
        Some(v)
            if v.coop == coop && v.status == VoucherStatus::Active && v.expires_on >= ctx.today =>
        {
            Ok(v)
        }
        // A genuine code exchanged for a new voucher: the holder is told to use the new one.
        Some(v) if v.coop == coop && v.status == VoucherStatus::Exchanged => {
            Err(Rejection::VoucherExchanged {
                field: field.into(),
            }
            .into())
        }
        _ => Err(Rejection::VoucherInvalid {
            field: field.into(),
        }
        .into()),
    }
}

struct Priced {
    total: Amount,
    cost: Amount,
    lines: Vec<crate::domain::SaleLineRecord>,
}

fn price(state: &State, ctx: &Ctx<'_>, coop: i64, req: &Sale) -> OpResult<Priced> {
    match (req.lines.is_empty(), req.amount) {
        (false, Some(_)) => {
            Err(Rejection::invalid("amount", "give lines or an amount, not both").into())
        }
        (true, None) => Err(Rejection::invalid("lines", "a sale needs lines or an amount").into()),
        (true, Some(amount)) => {
            if !amount.is_positive() {
                return Err(Rejection::bad_amount("amount", "must be more than zero").into());
            }
            let policy = ctx
                .policies
                .profit(ctx.today)
                .ok_or_else(|| Rejection::NoPolicy {
                    kind: "profit".into(),
                    date: ctx.today,
                })?;
            let cost = mul_rate(
                amount,
                policy.rules.default_cost_ratio,
                policy.rules.rounding,
            )
            .map_err(|_| overflow())?;
            Ok(Priced {
                total: amount,
                cost,
                lines: Vec::new(),
            })
        }
        (false, None) => {
            if req.lines.len() > MAX_LINES {
                return Err(
                    Rejection::invalid("lines", format!("at most {MAX_LINES} lines")).into(),
                );
            }
            let (mut total, mut cost) = (Amount::ZERO, Amount::ZERO);
            let mut lines = Vec::with_capacity(req.lines.len());
            for (i, line) in req.lines.iter().enumerate() {
                let qty = line_qty(i, line.qty)?;
                let item = state.catalog_item(coop, &line.sku).ok_or_else(|| {
                    Rejection::not_found(&format!("lines[{i}].sku"), "catalogue item", &line.sku)
                })?;
                let priced = price_line(i, &item, qty)?;
                within_ceiling(ctx, &format!("lines[{i}]"), priced.amount)?;
                total = total.checked_add(priced.amount).ok_or_else(overflow)?;
                cost = cost.checked_add(priced.cost).ok_or_else(overflow)?;
                lines.push(priced);
            }
            if !total.is_positive() {
                return Err(Rejection::bad_amount("lines", "the sale comes to zero").into());
            }
            within_ceiling(ctx, "lines", total)?;
            Ok(Priced { total, cost, lines })
        }
    }
}

pub(crate) fn sell(state: &mut State, ctx: &Ctx<'_>, req: &Sale) -> OpResult<SaleReceipt> {
    let shop = state
        .shop(&req.shop)
        .ok_or_else(|| Rejection::not_found("shop", "shop", &req.shop))?;
    let coop = shop.coop.clone();
    let household = match &req.household {
        Some(code) => Some(
            state
                .household(code)
                .ok_or_else(|| Rejection::not_found("household", "household", code))?,
        ),
        None => None,
    };
    let priced = price(state, ctx, coop.id, req)?;

    if req.tenders.is_empty() || req.tenders.len() > MAX_TENDERS {
        return Err(
            Rejection::invalid("tenders", format!("give 1 to {MAX_TENDERS} tenders")).into(),
        );
    }
    let mut tendered = Amount::ZERO;
    for (i, t) in req.tenders.iter().enumerate() {
        if !t.amount.is_positive() {
            return Err(Rejection::bad_amount(
                format!("tenders[{i}].amount"),
                "must be more than zero",
            )
            .into());
        }
        tendered = tendered.checked_add(t.amount).ok_or_else(overflow)?;
    }
    if tendered != priced.total {
        return Err(Rejection::TenderMismatch {
            field: "tenders".into(),
            total: priced.total,
            tendered,
        }
        .into());
    }

    let mut header = ctx.header(EntryKind::Sale);
    // The chain names the till, the customer and (by digest) the goods.
    header.facts = Some(
        crate::ledger::Fact::Sold {
            shop: shop.id,
            household: household.as_ref().map(|h| h.id),
            lines: crate::ledger::lines_digest(priced.lines.iter().enumerate().map(|(i, l)| {
                (
                    i as i64,
                    l.sku.as_str(),
                    l.qty.as_str(),
                    l.price.fen(),
                    l.amount.fen(),
                    l.cost.fen(),
                )
            })),
        }
        .encode(),
    );
    let mut entry = EntryDraft::new(header);
    let mut tender_records = Vec::with_capacity(req.tenders.len());
    let mut receipts = Vec::with_capacity(req.tenders.len());
    let mut wallets_used = 0;
    let mut vouchers_used = HashSet::new();
    for (i, t) in req.tenders.iter().enumerate() {
        let mut record = TenderRecord {
            kind: t.kind,
            household: None,
            voucher: None,
            amount: t.amount,
            paid_part: Amount::ZERO,
            bonus_part: Amount::ZERO,
            refunded: Amount::ZERO,
            refunded_paid: Amount::ZERO,
            refunded_bonus: Amount::ZERO,
        };
        let mut receipt = TenderReceipt {
            kind: t.kind,
            amount: t.amount,
            paid: None,
            bonus: None,
            voucher_balance: None,
        };
        if t.kind != TenderType::Voucher && t.code.is_some() {
            return Err(Rejection::invalid(
                format!("tenders[{i}].code"),
                "only a voucher tender has a code",
            )
            .into());
        }
        match t.kind {
            TenderType::Wallet => {
                let h = household.as_ref().ok_or_else(|| {
                    Rejection::invalid("household", "a wallet tender needs the household")
                })?;
                wallets_used += 1;
                if wallets_used > 1 {
                    return Err(Rejection::invalid("tenders", "at most one wallet tender").into());
                }
                let wallet = wallet_balance(state, h.id, &coop.code)?;
                if t.amount > wallet.total {
                    return Err(Rejection::InsufficientFunds {
                        field: format!("tenders[{i}].amount"),
                        available: wallet.total,
                    }
                    .into());
                }
                let (paid, bonus) = split_paid_bonus(t.amount, wallet.paid, wallet.bonus)?;
                entry
                    .debit(chart::household_wallet_paid(h.id, &coop.code), paid)
                    .debit(chart::household_wallet_bonus(h.id, &coop.code), bonus);
                record.household = Some(h.id);
                (record.paid_part, record.bonus_part) = (paid, bonus);
                (receipt.paid, receipt.bonus) = (Some(paid), Some(bonus));
            }
            TenderType::Voucher => {
                let field = format!("tenders[{i}].code");
                let code = t.code.as_deref().ok_or_else(|| {
                    Rejection::invalid(&field, "a voucher tender needs the voucher code")
                })?;
                let v = usable_voucher(state, ctx, coop.id, &field, code)?;
                if !vouchers_used.insert(v.id) {
                    return Err(
                        Rejection::invalid(&field, "the same voucher twice in one sale").into(),
                    );
                }
                let paid_bal = state.balance(&chart::voucher_paid(v.id));
                let bonus_bal = state.balance(&chart::voucher_bonus(v.id));
                let available = paid_bal.checked_add(bonus_bal).ok_or_else(overflow)?;
                if available.is_zero() {
                    // A spent voucher answers like any other unusable code.
                    return Err(Rejection::VoucherInvalid { field }.into());
                }
                if t.amount > available {
                    return Err(Rejection::InsufficientFunds {
                        field: format!("tenders[{i}].amount"),
                        available,
                    }
                    .into());
                }
                let (paid, bonus) = split_paid_bonus(t.amount, paid_bal, bonus_bal)?;
                entry
                    .debit(chart::voucher_paid(v.id), paid)
                    .debit(chart::voucher_bonus(v.id), bonus);
                record.voucher = Some(v.id);
                (record.paid_part, record.bonus_part) = (paid, bonus);
                (receipt.paid, receipt.bonus) = (Some(paid), Some(bonus));
                receipt.voucher_balance =
                    Some(available.checked_sub(t.amount).ok_or_else(overflow)?);
            }
            TenderType::Cash | TenderType::Wechat | TenderType::Alipay => {
                entry.debit(chart::coop_cash(coop.id, t.kind.as_str()), t.amount);
            }
        }
        tender_records.push(record);
        receipts.push(receipt);
    }
    entry
        .credit(chart::coop_sales(coop.id), priced.total)
        .debit(chart::coop_cogs(coop.id), priced.cost)
        .credit(chart::coop_inventory(coop.id), priced.cost);
    let entry = entry.balanced().map_err(|e| StoreError(e.to_string()))?;
    let posted = state.post(entry, "tenders")?;
    let sale = state.insert_sale(&SaleRecord {
        id: 0,
        entry: posted.id,
        coop: coop.id,
        coop_code: coop.code.clone(),
        shop: shop.id,
        household: household.as_ref().map(|h| h.id),
        total: priced.total,
        cost: priced.cost,
        refunded: Amount::ZERO,
        refunded_cost: Amount::ZERO,
        business_date: ctx.today,
        lines: priced.lines,
        tenders: tender_records,
    })?;
    let wallet = match &household {
        Some(h) => Some(wallet_balance(state, h.id, &coop.code)?),
        None => None,
    };
    Ok(SaleReceipt {
        sale,
        entry: posted.id,
        total: priced.total,
        cost: priced.cost,
        tenders: receipts,
        wallet,
        business_date: ctx.today,
    })
}

pub(crate) fn refund(
    state: &mut State,
    ctx: &Ctx<'_>,
    req: &RefundSale,
) -> OpResult<SaleRefundReceipt> {
    // Another shop's (or cooperative's) sale answers exactly as a missing one: the answer must
    // not tell a till which sale numbers exist elsewhere.
    let missing = || Rejection::not_found("sale", "sale", req.sale.to_string());
    let sale = state.sale(req.sale).ok_or_else(missing)?;
    if let Some(code) = &req.shop {
        let shop = state
            .shop(code)
            .ok_or_else(|| Rejection::not_found("shop", "shop", code))?;
        if shop.id != sale.shop {
            return Err(missing().into());
        }
    }
    if let Some(code) = &req.cooperative {
        if *code != sale.coop_code {
            return Err(missing().into());
        }
    }
    let remaining = sale.total.checked_sub(sale.refunded).ok_or_else(overflow)?;
    if !remaining.is_positive() {
        return Err(Rejection::NotRefundable {
            reason: format!("sale {} is already fully refunded", sale.id),
        }
        .into());
    }
    let amount = req.amount.unwrap_or(remaining);
    if !amount.is_positive() {
        return Err(Rejection::bad_amount("amount", "must be more than zero").into());
    }
    if amount > remaining {
        return Err(Rejection::bad_amount(
            "amount",
            format!("at most {remaining} of this sale can still be refunded"),
        )
        .into());
    }
    let weights: Vec<(String, i64)> = sale
        .tenders
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("{i:03}"), t.amount.fen() - t.refunded.fen()))
        .collect();
    let parts = allocate(amount, &weights, &sale.id.to_be_bytes())
        .map_err(|e| StoreError(e.to_string()))?;
    let cost_left = sale
        .cost
        .checked_sub(sale.refunded_cost)
        .ok_or_else(overflow)?;
    let cost_back = if amount == remaining {
        cost_left
    } else {
        let rest = remaining.checked_sub(amount).ok_or_else(overflow)?;
        allocate(
            cost_left,
            &[("refund", amount.fen()), ("rest", rest.fen())],
            b"",
        )
        .map_err(|e| StoreError(e.to_string()))?[0]
    };

    let mut header = ctx.header(EntryKind::SaleRefund);
    header.reverses = Some(sale.entry);
    let mut entry = EntryDraft::new(header);
    let mut refunds = Vec::with_capacity(sale.tenders.len());
    let mut receipts = Vec::new();
    // What a wallet may still take under the top-up policy's wallet cap; what it cannot take
    // goes back by the sale's own cash method (see `wallet_refund`).
    let wallet_cap = ctx.policies.topup(ctx.today).map(|p| p.rules.wallet_cap);
    let cash_method = sale
        .tenders
        .iter()
        .map(|t| t.kind)
        .find(|k| !matches!(k, TenderType::Wallet | TenderType::Voucher))
        .unwrap_or(TenderType::Cash);
    let mut wallet_room: std::collections::HashMap<i64, Amount> = Default::default();
    for (t, part) in sale.tenders.iter().zip(parts) {
        let (mut paid, mut bonus) = (Amount::ZERO, Amount::ZERO);
        if part.is_positive() {
            let mut receipt = TenderReceipt {
                kind: t.kind,
                amount: part,
                paid: None,
                bonus: None,
                voucher_balance: None,
            };
            match (t.kind, t.household, t.voucher) {
                (TenderType::Wallet, Some(h), _) => {
                    (paid, bonus) = refund_split(t, part)?;
                    let room = match (wallet_room.get(&h), wallet_cap) {
                        (Some(room), _) => Some(*room),
                        (None, Some(cap)) => {
                            let total = wallet_balance(state, h, &sale.coop_code)?.total;
                            Some(
                                cap.checked_sub(total)
                                    .ok_or_else(overflow)?
                                    .max(Amount::ZERO),
                            )
                        }
                        (None, None) => None,
                    };
                    let back = wallet_refund(paid, bonus, room)?;
                    if let Some(room) = room {
                        let left = room.checked_sub(back.to_wallet()?).ok_or_else(overflow)?;
                        wallet_room.insert(h, left);
                    }
                    entry
                        .credit(
                            chart::household_wallet_paid(h, &sale.coop_code),
                            back.wallet_paid,
                        )
                        .credit(
                            chart::household_wallet_bonus(h, &sale.coop_code),
                            back.wallet_bonus,
                        );
                    receipt.amount = back.to_wallet()?;
                    (receipt.paid, receipt.bonus) =
                        (Some(back.wallet_paid), Some(back.wallet_bonus));
                    if back.cash.is_positive() || back.forfeited.is_positive() {
                        entry
                            .credit(chart::coop_cash(sale.coop, cash_method.as_str()), back.cash)
                            .credit(chart::coop_promotion(sale.coop), back.forfeited);
                        if back.cash.is_positive() {
                            receipts.push(TenderReceipt {
                                kind: cash_method,
                                amount: back.cash,
                                paid: None,
                                bonus: None,
                                voucher_balance: None,
                            });
                        }
                    }
                    if !receipt.amount.is_positive() {
                        refunds.push((part, paid, bonus));
                        continue;
                    }
                }
                (TenderType::Voucher, _, Some(v)) => {
                    (paid, bonus) = refund_split(t, part)?;
                    let usable = state.voucher_by_id(v).is_some_and(|r| {
                        r.status == VoucherStatus::Active && r.expires_on >= ctx.today
                    });
                    if usable {
                        entry
                            .credit(chart::voucher_paid(v), paid)
                            .credit(chart::voucher_bonus(v), bonus);
                        (receipt.paid, receipt.bonus) = (Some(paid), Some(bonus));
                    } else {
                        // A void or expired voucher cannot take credit back: the paid part goes
                        // back in cash and the bonus is forfeited, as in a credit refund.
                        entry
                            .credit(chart::coop_cash(sale.coop, "cash"), paid)
                            .credit(chart::coop_promotion(sale.coop), bonus);
                        receipt.kind = TenderType::Cash;
                        receipt.amount = paid;
                    }
                }
                (kind, _, _) => {
                    entry.credit(chart::coop_cash(sale.coop, kind.as_str()), part);
                }
            }
            receipts.push(receipt);
        }
        refunds.push((part, paid, bonus));
    }
    entry
        .debit(chart::coop_sales(sale.coop), amount)
        .debit(chart::coop_inventory(sale.coop), cost_back)
        .credit(chart::coop_cogs(sale.coop), cost_back);
    let entry = entry.balanced().map_err(|e| StoreError(e.to_string()))?;
    let posted = state.post(entry, "amount")?;
    state.record_sale_refund(
        sale.id,
        &SaleRefundRecord {
            entry: posted.id,
            amount,
            cost: cost_back,
            tenders: refunds,
        },
    )?;
    Ok(SaleRefundReceipt {
        sale: sale.id,
        entry: posted.id,
        amount,
        tenders: receipts,
        remaining: remaining.checked_sub(amount).ok_or_else(overflow)?,
        business_date: ctx.today,
    })
}
