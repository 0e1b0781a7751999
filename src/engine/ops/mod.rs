//! The till's commands over the in-memory [`State`]: synchronous, no SQL, every rule checked
//! here once. A command either returns its receipt or an error; the engine undoes whatever a
//! refused command changed.

mod sale;
mod top_up;

use crate::domain::{
    amounts_within_ceiling, overflow, refund_split, split_paid_bonus, verify_voucher,
    wallet_refund, within_ceiling, Command, Ctx, Delivery, IssuedVoucher, NewVoucher, OpResult,
    Receipt, RefundSale, Rejection, Sale, SaleReceipt, SaleRecord, SaleRefundReceipt,
    SaleRefundRecord, StoreError, TenderReceipt, TenderRecord, TenderType, TopUp, TopUpReceipt,
    TopupRecord, VoucherRecord, VoucherStatus, WalletBalance,
};
use crate::ledger::{chart, EntryDraft, EntryKind};
use crate::money::Amount;

use super::State;

/// Runs one of the engine's commands ([`super::runs`]); `drawn` are the serials drawn for the
/// voucher it may issue.
pub fn run(
    state: &mut State,
    ctx: &Ctx<'_>,
    command: &Command,
    drawn: &[u64],
) -> OpResult<Receipt> {
    amounts_within_ceiling(ctx, command)?;
    Ok(match command {
        Command::TopUp(t) => Receipt::TopUp(top_up::top_up(state, ctx, t, drawn)?),
        Command::Sale(s) => Receipt::Sale(sale::sell(state, ctx, s)?),
        Command::RefundSale(r) => Receipt::SaleRefund(sale::refund(state, ctx, r)?),
        _ => {
            return Err(StoreError(
                "the write engine runs top-ups, sales and sale refunds only".into(),
            )
            .into())
        }
    })
}

/// A household's wallet at a cooperative: paid, bonus and their total.
pub(crate) fn wallet_balance(
    state: &State,
    household: i64,
    coop_code: &str,
) -> OpResult<WalletBalance> {
    let paid = state.balance(&chart::household_wallet_paid(household, coop_code));
    let bonus = state.balance(&chart::household_wallet_bonus(household, coop_code));
    let total = paid.checked_add(bonus).ok_or_else(overflow)?;
    Ok(WalletBalance { paid, bonus, total })
}
