//! Top-up under 居民购物50元换55元 (spend-50-get-55): the resident pays whole units of 50.00 and
//! is credited 55.00 per unit, into the household's wallet or onto a new bearer voucher.
//!
//! Entry: Dr cooperative cash:{method} paid, Dr promotion bonus; Cr wallet (or voucher) paid and
//! bonus.

use super::*;
use crate::ledger::chart;
use crate::policy::{TopupPolicy, TopupRuleError, Versioned};

pub(crate) async fn wallet_balance<T: Tx>(
    tx: &mut T,
    household: i64,
    coop_code: &str,
) -> OpResult<WalletBalance> {
    let paid = tx
        .balance(&chart::household_wallet_paid(household, coop_code))
        .await?;
    let bonus = tx
        .balance(&chart::household_wallet_bonus(household, coop_code))
        .await?;
    let total = paid.checked_add(bonus).ok_or_else(overflow)?;
    Ok(WalletBalance { paid, bonus, total })
}

pub(crate) fn overflow() -> OpError {
    Rejection::bad_amount("amount", "is too large").into()
}

/// What a top-up would credit: the policy's arithmetic and limits, computed once here for the
/// top-up itself and for the till's preview (`GET /v1/topups/quote`), so the two never differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopUpTerms {
    pub bonus: Amount,
    pub credited: Amount,
    /// The bonus is less than the policy's rate gives, because the monthly cap allowed no more
    /// (only with [`BonusRule::Allowed`]).
    pub capped: bool,
}

/// What the policy weighs about the household at the moment of the top-up.
#[derive(Clone, Copy, Debug)]
pub struct TopUpFacts<'a> {
    pub household: &'a str,
    pub compound: &'a str,
    pub compound_eligible: bool,
    /// Bonus already granted this calendar month.
    pub bonus_this_month: Amount,
    /// The household's wallet total at the cooperative before the top-up.
    pub wallet_total: Amount,
}

/// The terms of paying `paid` by `method` under `policy`, or the refusal a cashier can explain,
/// checked in this order: method, whole units, eligibility, monthly bonus cap (which
/// `BonusRule::Allowed` turns into a smaller bonus), wallet or voucher cap.
pub fn top_up_terms(
    policy: &Versioned<TopupPolicy>,
    paid: Amount,
    method: PayMethod,
    deliver: Delivery,
    bonus_rule: BonusRule,
    facts: &TopUpFacts<'_>,
) -> Result<TopUpTerms, Rejection> {
    let rules = &policy.rules;
    let overflow = || Rejection::bad_amount("amount", "is too large");
    if !rules.methods.iter().any(|m| m.as_str() == method.as_str()) {
        return Err(Rejection::MethodNotAccepted {
            field: "method".into(),
            method: method.as_str().into(),
        });
    }
    let full_bonus = match rules.bonus_for(paid) {
        Ok(b) => b.bonus,
        Err(TopupRuleError::NotWholeUnits { unit }) => {
            return Err(Rejection::NotWholeUnits {
                field: "paid".into(),
                unit,
            })
        }
        Err(TopupRuleError::TooManyUnits { max }) => {
            let limit = rules
                .unit
                .checked_mul(i64::from(max))
                .ok_or_else(overflow)?;
            return Err(Rejection::CapExceeded {
                field: "paid".into(),
                cap: "per top-up".into(),
                limit,
                available: limit,
            });
        }
        Err(e) => return Err(Rejection::bad_amount("paid", e.to_string())),
    };
    if !rules
        .eligibility
        .admits(facts.compound, facts.compound_eligible)
    {
        return Err(Rejection::NotEligible {
            household: facts.household.to_string(),
            policy: policy.reference.to_string(),
        });
    }
    let bonus_after = facts
        .bonus_this_month
        .checked_add(full_bonus)
        .ok_or_else(overflow)?;
    let capped = bonus_after > rules.monthly_bonus_cap;
    let bonus = if !capped {
        full_bonus
    } else if bonus_rule == BonusRule::Allowed {
        rules.bonus_room(facts.bonus_this_month)
    } else {
        return Err(Rejection::CapExceeded {
            field: "paid".into(),
            cap: "monthly bonus".into(),
            limit: rules.monthly_bonus_cap,
            available: rules.bonus_room(facts.bonus_this_month),
        });
    };
    let credited = paid.checked_add(bonus).ok_or_else(overflow)?;
    match deliver {
        Delivery::Wallet => {
            let after = facts
                .wallet_total
                .checked_add(credited)
                .ok_or_else(overflow)?;
            if after > rules.wallet_cap {
                return Err(Rejection::CapExceeded {
                    field: "paid".into(),
                    cap: "wallet balance".into(),
                    limit: rules.wallet_cap,
                    available: rules
                        .wallet_cap
                        .checked_sub(facts.wallet_total)
                        .unwrap_or(Amount::ZERO)
                        .max(Amount::ZERO),
                });
            }
        }
        Delivery::Voucher => {
            if credited > rules.voucher_face_cap {
                return Err(Rejection::CapExceeded {
                    field: "paid".into(),
                    cap: "voucher face value".into(),
                    limit: rules.voucher_face_cap,
                    available: rules.voucher_face_cap,
                });
            }
        }
    }
    Ok(TopUpTerms {
        bonus,
        credited,
        capped,
    })
}

/// Voids a top-up whose credit is untouched (see [`VoidTopUp`]): Cr the method's cash account
/// the paid part, Cr promotion the bonus; Dr the wallet's (or the voucher's) paid and bonus —
/// the top-up's own postings, reversed. The entry `reverses` the top-up (so the chain names
/// it) and the top-up row is marked with the void's entry.
pub(crate) async fn void_top_up<T: Tx>(
    tx: &mut T,
    ctx: &Ctx<'_>,
    req: &VoidTopUp,
) -> OpResult<TopUpVoidReceipt> {
    if let Some(memo) = &req.memo {
        super::master::check_text("memo", memo, 200)?;
    }
    let missing = || Rejection::not_found("topup", "top-up", req.topup.to_string());
    let t = tx.topup(req.topup).await?.ok_or_else(missing)?;
    // Outside the caller's scope a top-up answers as unknown, as a sale does to its refund.
    if req.shop.as_ref().is_some_and(|s| *s != t.shop_code)
        || req.cooperative.as_ref().is_some_and(|c| *c != t.coop_code)
    {
        return Err(missing().into());
    }
    if let Some(void) = t.void_entry {
        return Err(Rejection::NotVoidable {
            field: "topup".into(),
            reason: format!("top-up {} is already voided (entry {void})", t.entry),
        }
        .into());
    }
    if req.shop.is_some() && t.business_date != ctx.today {
        return Err(Rejection::NotVoidable {
            field: "topup".into(),
            reason: format!(
                "the till voids only the top-ups of its business day ({}); this one is of {}: \
                 the cooperative's accountant can void it",
                ctx.today, t.business_date
            ),
        }
        .into());
    }
    let (paid_account, bonus_account) = match t.voucher {
        None => {
            let accounts = [
                chart::household_wallet_paid(t.household, &t.coop_code),
                chart::household_wallet_bonus(t.household, &t.coop_code),
            ];
            if let Some(used) = tx.first_debit_after(&accounts, t.entry).await? {
                return Err(Rejection::NotVoidable {
                    field: "topup".into(),
                    reason: format!(
                        "credit of household {}'s wallet was used after this top-up (entry \
                         {used}); refund what is left instead (credit refund)",
                        t.household_code
                    ),
                }
                .into());
            }
            let [paid, bonus] = accounts;
            (paid, bonus)
        }
        Some(v) => {
            let voucher = tx
                .voucher_by_id(v)
                .await?
                .ok_or_else(|| StoreError(format!("top-up {} names no voucher {v}", t.entry)))?;
            let paid = tx.balance(&chart::voucher_paid(v)).await?;
            let bonus = tx.balance(&chart::voucher_bonus(v)).await?;
            if voucher.status != VoucherStatus::Active || paid != t.paid || bonus != t.bonus {
                return Err(Rejection::NotVoidable {
                    field: "topup".into(),
                    reason: format!(
                        "the voucher of this top-up is {} with {} left of {}: only an unused \
                         voucher is voided with its top-up; void the voucher instead",
                        voucher.status.as_str(),
                        paid.checked_add(bonus).ok_or_else(overflow)?,
                        t.paid.checked_add(t.bonus).ok_or_else(overflow)?
                    ),
                }
                .into());
            }
            tx.set_voucher_status(v, VoucherStatus::Void).await?;
            (chart::voucher_paid(v), chart::voucher_bonus(v))
        }
    };
    let mut header = ctx.header(EntryKind::TopUpVoid);
    header.reverses = Some(t.entry);
    header.memo = req.memo.clone();
    // A voucher top-up's void ends the voucher: the chain says so as it does for a voucher void.
    header.facts = t
        .voucher
        .map(|voucher| crate::ledger::Fact::VoucherVoided { voucher }.encode());
    let mut entry = EntryDraft::new(header);
    entry
        .debit(paid_account, t.paid)
        .debit(bonus_account, t.bonus)
        .credit(chart::coop_cash(t.coop, t.method.as_str()), t.paid)
        .credit(chart::coop_promotion(t.coop), t.bonus);
    let entry = entry.balanced().map_err(|e| StoreError(e.to_string()))?;
    let posted = tx.post(entry, "topup").await?;
    tx.mark_topup_voided(t.entry, posted.id).await?;
    let wallet = match t.voucher {
        None => Some(wallet_balance(tx, t.household, &t.coop_code).await?),
        Some(_) => None,
    };
    Ok(TopUpVoidReceipt {
        entry: posted.id,
        topup: t.entry,
        household: t.household_code,
        paid: t.paid,
        bonus: t.bonus,
        method: t.method,
        wallet,
        business_date: posted.business_date,
    })
}
