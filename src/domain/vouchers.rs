//! Voiding, expiring and exchanging vouchers. Redemption is a sale with a voucher tender (see `sale`).

use chrono::Months;

use super::sale::{usable_voucher, verify_voucher};
use super::topup::overflow;
use super::*;
use crate::ledger::{chart, Fact};
use crate::voucher::{random_serial, VoucherCode};

/// Bounds one expiry run; the next run picks up the rest.
const EXPIRE_BATCH: u32 = 1000;

/// The accountant voids a voucher (lost, damaged, or returned): the remaining paid part is
/// handed back by `method`, the bonus forfeited, and the code answers as invalid from then on.
pub(crate) async fn void<T: Tx>(
    tx: &mut T,
    ctx: &Ctx<'_>,
    req: &VoidVoucher,
) -> OpResult<CreditRefundReceipt> {
    let coop = tx
        .cooperative(&req.cooperative)
        .await?
        .ok_or_else(|| Rejection::not_found("cooperative", "cooperative", &req.cooperative))?;
    let v = usable_voucher(tx, ctx, coop.id, "code", &req.code).await?;
    let paid = tx.balance(&chart::voucher_paid(v.id)).await?;
    let bonus = tx.balance(&chart::voucher_bonus(v.id)).await?;
    tx.set_voucher_status(v.id, VoucherStatus::Void).await?;
    let mut header = ctx.header(EntryKind::VoucherVoid);
    header.memo = req.memo.clone();
    // The void is a ledger event even when nothing is left on the voucher: an entry without
    // postings then records it.
    header.facts = Some(Fact::VoucherVoided { voucher: v.id }.encode());
    let mut entry = EntryDraft::new(header);
    entry
        .debit(chart::voucher_paid(v.id), paid)
        .credit(chart::coop_cash(coop.id, req.method.as_str()), paid)
        .debit(chart::voucher_bonus(v.id), bonus)
        .credit(chart::coop_promotion(coop.id), bonus);
    let entry = entry.balanced().map_err(|e| StoreError(e.to_string()))?;
    let posted = tx.post(entry, "code").await?;
    Ok(CreditRefundReceipt {
        entry: posted.id,
        refunded: paid,
        forfeited: bonus,
        method: req.method,
        left: None,
    })
}

/// Vouchers past their validity. Expiry itself moves no money: the balance stays a prepaid
/// liability, which the holder may still have exchanged for a new voucher ([`exchange`];
/// 单用途商业预付卡 rules protect balances on expired bearer cards). Breakage (the unused paid
/// part to the cooperative's breakage income, the unused bonus forfeited against promotion) is
/// recognised only for vouchers expired at least the top-up policy's `breakage_after_months`,
/// by business date, and never when the policy in force names none.
pub(crate) async fn expire<T: Tx>(tx: &mut T, ctx: &Ctx<'_>) -> OpResult<ExpiredReceipt> {
    let mut receipt = ExpiredReceipt {
        vouchers: 0,
        owed_paid: Amount::ZERO,
        owed_bonus: Amount::ZERO,
        broken: 0,
        paid: Amount::ZERO,
        bonus: Amount::ZERO,
    };
    let due = tx.vouchers_expiring_before(ctx.today, EXPIRE_BATCH).await?;
    for v in due {
        let paid = tx.balance(&chart::voucher_paid(v.id)).await?;
        let bonus = tx.balance(&chart::voucher_bonus(v.id)).await?;
        tx.set_voucher_status(v.id, VoucherStatus::Expired).await?;
        receipt.vouchers += 1;
        // The expiry is a ledger event with no postings: the status is proven by its fact.
        let mut header = ctx.header(EntryKind::VoucherExpiry);
        header.memo = Some(format!("voucher {} expired {}", v.id, v.expires_on));
        header.facts = Some(Fact::VoucherExpired { voucher: v.id }.encode());
        let entry = EntryDraft::new(header)
            .balanced()
            .map_err(|e| StoreError(e.to_string()))?;
        tx.post(entry, "code").await?;
        receipt.owed_paid = receipt.owed_paid.checked_add(paid).ok_or_else(overflow)?;
        receipt.owed_bonus = receipt.owed_bonus.checked_add(bonus).ok_or_else(overflow)?;
    }
    let Some(policy) = ctx.policies.topup(ctx.today) else {
        return Ok(receipt);
    };
    let Some(months) = policy.rules.breakage_after_months else {
        return Ok(receipt);
    };
    // Expired at least `months`: expired the day after `expires_on`, so `expires_on` + months
    // before today.
    let Some(cutoff) = ctx.today.checked_sub_months(Months::new(months)) else {
        return Ok(receipt);
    };
    let due = tx.vouchers_for_breakage(cutoff, EXPIRE_BATCH).await?;
    for v in due {
        let paid = tx.balance(&chart::voucher_paid(v.id)).await?;
        let bonus = tx.balance(&chart::voucher_bonus(v.id)).await?;
        receipt.broken += 1;
        let mut header = ctx.header(EntryKind::VoucherExpiry);
        header.policy = Some((policy.reference.to_string(), policy.reference.hash.clone()));
        header.memo = Some(format!(
            "breakage on voucher {} expired {} ({months} months after expiry)",
            v.id, v.expires_on
        ));
        header.facts = Some(Fact::VoucherBreakage { voucher: v.id }.encode());
        let mut entry = EntryDraft::new(header);
        entry
            .debit(chart::voucher_paid(v.id), paid)
            .credit(chart::coop_breakage(v.coop), paid)
            .debit(chart::voucher_bonus(v.id), bonus)
            .credit(chart::coop_promotion(v.coop), bonus);
        let entry = entry.balanced().map_err(|e| StoreError(e.to_string()))?;
        tx.post(entry, "code").await?;
        receipt.paid = receipt.paid.checked_add(paid).ok_or_else(overflow)?;
        receipt.bonus = receipt.bonus.checked_add(bonus).ok_or_else(overflow)?;
    }
    Ok(receipt)
}

/// How many fresh serials an exchange draws before it gives up (48 random bits: a collision is
/// rare, two in a row rarer still).
const SERIAL_TRIES: usize = 8;

/// Exchanges an expired voucher for a new one (换新券) at `shop`'s till: the new voucher
/// carries the old one's paid and bonus credit exactly and the policy's validity from today,
/// and names the old one; the old code is dead from then on (`exchanged`). If breakage was
/// already recognised on the old voucher (by the first expiry rule or `breakage_after_months`),
/// the exchange reverses it: the holder keeps the right to the credit, so the paid part comes
/// back out of breakage income and the bonus out of promotion. One exchange per voucher.
///
/// Entry: Dr old voucher paid/bonus (what is left on it), Dr coop breakage / promotion (what
/// breakage took); Cr new voucher paid/bonus.
pub(crate) async fn exchange<T: Tx>(
    tx: &mut T,
    ctx: &Ctx<'_>,
    req: &ExchangeVoucher,
) -> OpResult<ExchangeReceipt> {
    let shop = tx
        .shop(&req.shop)
        .await?
        .ok_or_else(|| Rejection::not_found("shop", "shop", &req.shop))?;
    let serial = verify_voucher(ctx, "code", &req.code)?;
    let invalid = || Rejection::VoucherInvalid {
        field: "code".into(),
    };
    let old = match tx.voucher(serial).await? {
        Some(v) if v.coop == shop.coop.id => v,
        _ => return Err(invalid().into()),
    };
    let not_exchangeable = |reason: String| Rejection::VoucherNotExchangeable {
        field: "code".into(),
        reason,
    };
    match old.status {
        VoucherStatus::Void => return Err(invalid().into()),
        VoucherStatus::Exchanged => {
            return Err(Rejection::VoucherExchanged {
                field: "code".into(),
            }
            .into())
        }
        VoucherStatus::Active if old.expires_on >= ctx.today => {
            return Err(not_exchangeable(format!(
                "the voucher is valid until {}; only an expired voucher is exchanged",
                old.expires_on
            ))
            .into())
        }
        VoucherStatus::Active | VoucherStatus::Expired => {}
    }
    let paid = tx.balance(&chart::voucher_paid(old.id)).await?;
    let bonus = tx.balance(&chart::voucher_bonus(old.id)).await?;
    let (broken_paid, broken_bonus) = tx.voucher_breakage(old.id).await?;
    let new_paid = paid.checked_add(broken_paid).ok_or_else(overflow)?;
    let new_bonus = bonus.checked_add(broken_bonus).ok_or_else(overflow)?;
    let balance = new_paid.checked_add(new_bonus).ok_or_else(overflow)?;
    if !balance.is_positive() {
        return Err(not_exchangeable("nothing is left on the voucher".into()).into());
    }
    let policy = ctx
        .policies
        .topup(ctx.today)
        .ok_or_else(|| Rejection::NoPolicy {
            kind: "top-up".into(),
            date: ctx.today,
        })?;
    let expires_on = ctx
        .today
        .checked_add_months(Months::new(policy.rules.voucher_validity_months))
        .ok_or_else(|| Rejection::invalid("code", "voucher expiry out of range"))?;
    let mut serial = None;
    for _ in 0..SERIAL_TRIES {
        let s = random_serial();
        if tx.voucher(s).await?.is_none() {
            serial = Some(s);
            break;
        }
    }
    let serial =
        serial.ok_or_else(|| StoreError("every serial drawn for a voucher is taken".into()))?;
    let issued = NewVoucher {
        serial,
        key_id: ctx.keys.active().id,
        coop: old.coop,
        household: old.household,
        issued_on: ctx.today,
        expires_on,
    };
    let id = tx.insert_voucher(&issued, Some(old.id)).await?;
    tx.set_voucher_status(old.id, VoucherStatus::Exchanged)
        .await?;
    let mut header = ctx.header(EntryKind::VoucherExchange);
    header.policy = Some((policy.reference.to_string(), policy.reference.hash.clone()));
    header.memo = Some(format!("voucher {} exchanged for voucher {id}", old.id));
    header.facts = Some(
        Fact::VoucherExchanged {
            voucher: id,
            serial,
            key_id: issued.key_id,
            cooperative: issued.coop,
            household: issued.household,
            issued_on: issued.issued_on,
            expires_on,
            shop: shop.id,
            replaces: old.id,
            replaces_serial: old.serial,
        }
        .encode(),
    );
    let mut entry = EntryDraft::new(header);
    entry
        .debit(chart::voucher_paid(old.id), paid)
        .debit(chart::coop_breakage(old.coop), broken_paid)
        .credit(chart::voucher_paid(id), new_paid)
        .debit(chart::voucher_bonus(old.id), bonus)
        .debit(chart::coop_promotion(old.coop), broken_bonus)
        .credit(chart::voucher_bonus(id), new_bonus);
    let entry = entry.balanced().map_err(|e| StoreError(e.to_string()))?;
    let posted = tx.post(entry, "code").await?;
    Ok(ExchangeReceipt {
        entry: posted.id,
        voucher: IssuedVoucher {
            code: VoucherCode::issue(ctx.keys, serial).encode(),
            balance,
            expires_on,
        },
        paid: new_paid,
        bonus: new_bonus,
        reinstated_paid: broken_paid,
        reinstated_bonus: broken_bonus,
        business_date: posted.business_date,
    })
}
