//! Move-out, a change of a household's occupant (搬离/换户): the leaving occupant's wallets are
//! cashed out or handed on to the new one, fees owed are settled first or carried, the new
//! occupant's name is recorded, and the household card's link is rotated and its PIN cleared,
//! so the leaving occupant's card, link and sessions stop working.
//!
//! A cash-out is the existing whole-wallet cash-out ([`super::credit::refund_credit`]): one
//! `credit_refund` entry per cooperative, paid part back, bonus forfeited. A transfer moves no
//! money: the wallet accounts belong to the household, not to a person, so the new occupant
//! simply finds them there; what the wallets held is written into the move-out's record. That
//! record is a master data entry with a [`Fact::MovedOut`], hashed into the chain like every
//! other, naming the actor, the date, both names, each wallet's fate and the fees.

use super::credit::refund_credit;
use super::master::check_text;
use super::topup::{overflow, wallet_balance};
use super::*;
use crate::ledger::Fact;

pub(crate) async fn move_out<T: Tx>(
    tx: &mut T,
    ctx: &Ctx<'_>,
    req: &MoveOut,
) -> OpResult<MoveOutReceipt> {
    if let Some(name) = &req.new_occupant {
        check_text("new_occupant", name, 50)?;
    }
    let household = tx
        .household(&req.household)
        .await?
        .ok_or_else(|| Rejection::not_found("household", "household", &req.household))?;
    if let Some(company) = &req.company {
        // Another company's household does not exist for this office.
        if tx.company(company).await? != Some(household.company_id) {
            return Err(Rejection::not_found("household", "household", &req.household).into());
        }
    }
    let fee_balance = tx
        .fee_balances(&[household.id])
        .await?
        .get(&household.id)
        .copied()
        .unwrap_or(Amount::ZERO);
    let arrears = fee_balance.max(Amount::ZERO);
    if arrears.is_positive() && req.fees == FeesOnMoveOut::Settled {
        return Err(Rejection::ArrearsOutstanding {
            field: "fees".into(),
            owed: arrears,
        }
        .into());
    }

    // Every wallet that holds credit, by cooperative code (sorted, so the record is stable).
    let mut coops = tx.household_wallet_coops(household.id).await?;
    coops.sort();
    let mut held = Vec::new();
    for code in coops {
        let wallet = wallet_balance(tx, household.id, &code).await?;
        if wallet.total.is_zero() {
            continue;
        }
        let coop = tx
            .cooperative(&code)
            .await?
            .ok_or_else(|| StoreError(format!("wallet of unknown cooperative {code}")))?;
        held.push((coop, wallet));
    }
    if req.wallet == WalletDisposition::CashOut {
        if let Some(own) = &req.cooperative {
            if let Some((other, _)) = held.iter().find(|(c, _)| &c.code != own) {
                return Err(Rejection::invalid(
                    "wallet",
                    format!(
                        "the household also holds credit at cooperative {}: its accountant pays that out, or the wallets are transferred",
                        other.code
                    ),
                )
                .into());
            }
        }
    }

    let mut wallets = Vec::with_capacity(held.len());
    let mut facts = Vec::with_capacity(held.len());
    let (mut refunded, mut forfeited) = (Amount::ZERO, Amount::ZERO);
    for (coop, wallet) in held {
        let moved = match req.wallet {
            WalletDisposition::CashOut => {
                let refund = RefundCredit {
                    household: household.code.clone(),
                    cooperative: coop.code.clone(),
                    method: req.method,
                    amount: None,
                };
                let r = refund_credit(tx, ctx, &refund).await?;
                refunded = refunded.checked_add(r.refunded).ok_or_else(overflow)?;
                forfeited = forfeited.checked_add(r.forfeited).ok_or_else(overflow)?;
                MovedWallet {
                    cooperative: coop.code.clone(),
                    paid: wallet.paid,
                    bonus: wallet.bonus,
                    refunded: r.refunded,
                    forfeited: r.forfeited,
                    refund_entry: Some(r.entry),
                }
            }
            WalletDisposition::Transfer => MovedWallet {
                cooperative: coop.code.clone(),
                paid: wallet.paid,
                bonus: wallet.bonus,
                refunded: Amount::ZERO,
                forfeited: Amount::ZERO,
                refund_entry: None,
            },
        };
        facts.push((
            coop.id,
            wallet.paid.fen(),
            wallet.bonus.fen(),
            moved.refund_entry,
        ));
        wallets.push(moved);
    }

    let occupant = req.new_occupant.as_deref().map(str::trim);
    let previous_occupant = tx.replace_occupant(household.id, occupant).await?;
    tx.set_pin(household.id, None).await?;
    let link_version = tx.rotate_link(household.id).await?;

    let fact = Fact::MovedOut {
        household: household.id,
        previous_occupant,
        occupant: occupant.map(str::to_owned),
        wallet: req.wallet.as_str().into(),
        wallets: facts,
        fees: req.fees.as_str().into(),
        fee_balance: fee_balance.fen(),
        link_version,
    };
    let mut header = ctx.header(EntryKind::MasterData);
    header.facts = Some(fact.encode());
    header.memo = Some(format!(
        "move-out of {}: wallets {}, fees {}",
        household.code,
        req.wallet.as_str(),
        req.fees.as_str()
    ));
    let entry = EntryDraft::new(header)
        .balanced()
        .map_err(|e| StoreError(e.to_string()))?;
    let posted = tx.post(entry, "household").await?;
    Ok(MoveOutReceipt {
        entry: posted.id,
        household: household.code,
        wallet: req.wallet,
        method: req.method,
        wallets,
        refunded,
        forfeited,
        fees: req.fees,
        fee_balance,
        arrears,
        occupant: occupant.map(str::to_owned),
        link_version,
        pin_cleared: true,
        business_date: posted.business_date,
    })
}
