//! Voiding and expiring vouchers. Redemption is a sale with a voucher tender (see `sale`).

use super::sale::usable_voucher;
use super::topup::overflow;
use super::*;
use crate::ledger::{chart, Fact};

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

/// Vouchers past their validity: the unused paid part becomes the cooperative's breakage
/// income, the unused bonus is forfeited back against promotion.
pub(crate) async fn expire<T: Tx>(tx: &mut T, ctx: &Ctx<'_>) -> OpResult<ExpiredReceipt> {
    let due = tx.vouchers_expiring_before(ctx.today, EXPIRE_BATCH).await?;
    let mut receipt = ExpiredReceipt {
        vouchers: 0,
        paid: Amount::ZERO,
        bonus: Amount::ZERO,
    };
    for v in due {
        let paid = tx.balance(&chart::voucher_paid(v.id)).await?;
        let bonus = tx.balance(&chart::voucher_bonus(v.id)).await?;
        tx.set_voucher_status(v.id, VoucherStatus::Expired).await?;
        receipt.vouchers += 1;
        // An empty voucher's expiry is recorded too, by an entry without postings.
        let mut header = ctx.header(EntryKind::VoucherExpiry);
        header.memo = Some(format!("voucher {} expired {}", v.id, v.expires_on));
        header.facts = Some(Fact::VoucherExpired { voucher: v.id }.encode());
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
