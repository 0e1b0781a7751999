//! Sales at a till and their refunds.
//!
//! A sale of total T and cost C: Dr each tender (wallet and voucher parts, or cooperative cash),
//! Cr sales T; Dr cogs C, Cr inventory C. A wallet or voucher tender draws from its paid and
//! bonus parts pro rata to their balances, split by the allocator. A refund gives each tender
//! back its share, and within a credit tender the paid/bonus split it drew.

use rust_decimal::Decimal;

use super::topup::overflow;
use super::*;
use crate::money::{allocate, mul_rate, Rounding};
use crate::voucher::{VoucherCode, VoucherCodeError};

/// Bounds stated once: a till never sends more than this.
pub const MAX_LINES: usize = 200;
pub(crate) const MAX_TENDERS: usize = 8;

/// How a till finds a catalogue item by typing: the first letter of each character's pinyin,
/// lower case (大白菜 → `dbc`, 土鸡蛋 (30枚) → `tjd30m`); letters and digits stay as they are
/// and everything else is left out. A character with several readings takes the first one the
/// pinyin table lists (usually the common one).
pub fn pinyin_initials(name: &str) -> String {
    use pinyin::ToPinyin;
    name.chars()
        .filter_map(|c| match c.to_pinyin() {
            Some(p) => p.first_letter().chars().next(),
            None if c.is_ascii_alphanumeric() => Some(c.to_ascii_lowercase()),
            None => None,
        })
        .collect()
}

/// Splits `amount` over a credit balance's paid and bonus parts in proportion to them.
pub(crate) fn split_paid_bonus(
    amount: Amount,
    paid: Amount,
    bonus: Amount,
) -> Result<(Amount, Amount), OpError> {
    let parts = allocate(amount, &[("paid", paid.fen()), ("bonus", bonus.fen())], b"")
        .map_err(|e| StoreError(format!("paid/bonus split: {e}")))?;
    Ok((parts[0], parts[1]))
}

/// The paid/bonus split of a refund to a credit tender: in proportion to what the tender drew
/// from each and has not yet had back.
pub(crate) fn refund_split(t: &TenderRecord, part: Amount) -> Result<(Amount, Amount), OpError> {
    let paid_left = t
        .paid_part
        .checked_sub(t.refunded_paid)
        .ok_or_else(overflow)?;
    let bonus_left = t
        .bonus_part
        .checked_sub(t.refunded_bonus)
        .ok_or_else(overflow)?;
    split_paid_bonus(part, paid_left, bonus_left)
}

pub(crate) fn verify_voucher(ctx: &Ctx<'_>, field: &str, code: &str) -> Result<u64, Rejection> {
    match VoucherCode::verify(ctx.keys, code) {
        Ok(c) => Ok(c.serial()),
        Err(VoucherCodeError::Typo) => Err(Rejection::VoucherTypo {
            field: field.into(),
        }),
        Err(_) => Err(Rejection::VoucherInvalid {
            field: field.into(),
        }),
    }
}

/// A voucher that can be spent today at this cooperative, or the one uniform refusal.
pub(crate) async fn usable_voucher<T: Tx>(
    tx: &mut T,
    ctx: &Ctx<'_>,
    coop: i64,
    field: &str,
    code: &str,
) -> OpResult<VoucherRecord> {
    let serial = verify_voucher(ctx, field, code)?;
    match tx.voucher(serial).await? {
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

/// A line's quantity, checked: more than 0, at most 100000, at most three decimals.
pub fn line_qty(index: usize, qty: Decimal) -> Result<Decimal, Rejection> {
    let qty = qty.normalize();
    if qty <= Decimal::ZERO || qty.scale() > 3 || qty > Decimal::from(100_000) {
        return Err(Rejection::invalid(
            format!("lines[{index}].qty"),
            "must be more than 0 and at most 100000, with at most three decimals",
        ));
    }
    Ok(qty)
}

/// One catalogue line priced: the amount and the cost each rounded once, half-up, like a
/// printed till receipt. The sale and the till's preview of a basket both price lines here.
pub fn price_line(
    index: usize,
    item: &CatalogItem,
    qty: Decimal,
) -> Result<SaleLineRecord, Rejection> {
    let qty = line_qty(index, qty)?;
    let too_large = || Rejection::bad_amount(format!("lines[{index}]"), "is too large");
    let amount = mul_rate(item.price, qty, Rounding::HalfUp).map_err(|_| too_large())?;
    let cost = mul_rate(item.cost, qty, Rounding::HalfUp).map_err(|_| too_large())?;
    Ok(SaleLineRecord {
        sku: item.sku.clone(),
        qty: qty.to_string(),
        price: item.price,
        amount,
        cost,
    })
}

/// Where a refund to a wallet tender goes when the wallet may take at most `room` more (the
/// policy's wallet cap less its balance; `None`: no cap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WalletRefund {
    pub wallet_paid: Amount,
    pub wallet_bonus: Amount,
    /// The paid credit the wallet cannot take, back in money by the sale's cash method.
    pub cash: Amount,
    /// The bonus the wallet cannot take: it goes back to promotion, as bonus never becomes
    /// money (the rule of a credit refund and of a refund to a void voucher).
    pub forfeited: Amount,
}

impl WalletRefund {
    pub(crate) fn to_wallet(self) -> Result<Amount, OpError> {
        self.wallet_paid
            .checked_add(self.wallet_bonus)
            .ok_or_else(overflow)
    }
}

/// Splits a wallet tender's refund of `paid` and `bonus` credit: the wallet takes what fits in
/// `room`, in the tender's paid/bonus proportion; the rest of the paid part goes back by cash
/// and the rest of the bonus is forfeited.
pub(crate) fn wallet_refund(
    paid: Amount,
    bonus: Amount,
    room: Option<Amount>,
) -> Result<WalletRefund, OpError> {
    let total = paid.checked_add(bonus).ok_or_else(overflow)?;
    let (wallet_paid, wallet_bonus) = match room {
        Some(room) if room < total => split_paid_bonus(room.max(Amount::ZERO), paid, bonus)?,
        _ => (paid, bonus),
    };
    Ok(WalletRefund {
        wallet_paid,
        wallet_bonus,
        cash: paid.checked_sub(wallet_paid).ok_or_else(overflow)?,
        forfeited: bonus.checked_sub(wallet_bonus).ok_or_else(overflow)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(s: &str) -> Amount {
        Amount::parse(s).unwrap()
    }

    #[test]
    fn pinyin_initials_are_what_a_cashier_types() {
        assert_eq!(pinyin_initials("大白菜"), "dbc");
        assert_eq!(pinyin_initials("西红柿"), "xhs");
        assert_eq!(pinyin_initials("土鸡蛋 (30枚)"), "tjd30m");
        assert_eq!(pinyin_initials("菜籽油 5L"), "czy5l");
        assert_eq!(pinyin_initials("豆角"), "dj");
        // A character with several readings takes the first the table lists (行: xing), not
        // the one its word needs (银行: yinhang).
        assert_eq!(pinyin_initials("银行卡"), "yxk");
        assert_eq!(pinyin_initials(""), "");
    }

    #[test]
    fn a_wallet_refund_takes_what_fits_and_the_rest_goes_back_as_money() {
        // No cap, or room enough: all of it to the wallet.
        for room in [None, Some(y("1000.00")), Some(y("5000.00"))] {
            let r = wallet_refund(y("909.09"), y("90.91"), room).unwrap();
            assert_eq!(
                (r.wallet_paid, r.wallet_bonus, r.cash, r.forfeited),
                (y("909.09"), y("90.91"), Amount::ZERO, Amount::ZERO)
            );
        }
        // Room for 500.00: split 909.09 : 90.91, the rest of the paid part in money.
        let r = wallet_refund(y("909.09"), y("90.91"), Some(y("500.00"))).unwrap();
        assert_eq!(r.to_wallet().unwrap(), y("500.00"));
        assert_eq!(
            (r.wallet_paid, r.wallet_bonus, r.cash, r.forfeited),
            (y("454.55"), y("45.45"), y("454.54"), y("45.46"))
        );
        assert!(r.wallet_paid <= y("909.09") && r.wallet_bonus <= y("90.91"));
        assert_eq!(r.cash.checked_add(r.wallet_paid), Some(y("909.09")));
        assert_eq!(r.forfeited.checked_add(r.wallet_bonus), Some(y("90.91")));
        // A full wallet takes nothing.
        let r = wallet_refund(y("10.00"), y("1.00"), Some(Amount::ZERO)).unwrap();
        assert_eq!(
            (r.wallet_paid, r.wallet_bonus, r.cash, r.forfeited),
            (Amount::ZERO, Amount::ZERO, y("10.00"), y("1.00"))
        );
    }
}
