//! Top-up under 居民购物50元换55元 (spend-50-get-55): the resident pays whole units of 50.00 and
//! is credited 55.00 per unit, into the household's wallet or onto a new bearer voucher.
//!
//! Entry: Dr cooperative cash:{method} paid, Dr promotion bonus; Cr wallet (or voucher) paid and
//! bonus.

use chrono::Months;

use super::*;
use crate::ledger::chart;
use crate::policy::{TopupPolicy, TopupRuleError, Versioned};
use crate::voucher::{random_serial, VoucherCode};

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
/// checked in this order: method, whole units, eligibility, monthly bonus cap, wallet or
/// voucher cap.
pub fn top_up_terms(
    policy: &Versioned<TopupPolicy>,
    paid: Amount,
    method: PayMethod,
    deliver: Delivery,
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
    let bonus = match rules.bonus_for(paid) {
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
        .checked_add(bonus)
        .ok_or_else(overflow)?;
    if bonus_after > rules.monthly_bonus_cap {
        return Err(Rejection::CapExceeded {
            field: "paid".into(),
            cap: "monthly bonus".into(),
            limit: rules.monthly_bonus_cap,
            available: rules.bonus_room(facts.bonus_this_month),
        });
    }
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
    Ok(TopUpTerms { bonus, credited })
}

pub(crate) async fn top_up<T: Tx>(
    tx: &mut T,
    ctx: &Ctx<'_>,
    req: &TopUp,
) -> OpResult<TopUpReceipt> {
    let shop = tx
        .shop(&req.shop)
        .await?
        .ok_or_else(|| Rejection::not_found("shop", "shop", &req.shop))?;
    let household = tx
        .household(&req.household)
        .await?
        .ok_or_else(|| Rejection::not_found("household", "household", &req.household))?;
    let policy = ctx
        .policies
        .topup(ctx.today)
        .ok_or_else(|| Rejection::NoPolicy {
            kind: "top-up".into(),
            date: ctx.today,
        })?;
    let rules = &policy.rules;
    let policy_name = policy.reference.to_string();
    let coop = &shop.coop;
    let bonus_so_far = tx.bonus_in_month(household.id, &ctx.month()).await?;
    let wallet_before = wallet_balance(tx, household.id, &coop.code).await?;
    let TopUpTerms { bonus, credited } = top_up_terms(
        policy,
        req.paid,
        req.method,
        req.deliver,
        &TopUpFacts {
            household: &household.code,
            compound: &household.compound_code,
            compound_eligible: household.compound_eligible,
            bonus_this_month: bonus_so_far,
            wallet_total: wallet_before.total,
        },
    )?;

    let mut issue_fact = None;
    let (paid_account, bonus_account, voucher) = match req.deliver {
        Delivery::Wallet => (
            chart::household_wallet_paid(household.id, &coop.code),
            chart::household_wallet_bonus(household.id, &coop.code),
            None,
        ),
        Delivery::Voucher => {
            let expires_on = ctx
                .today
                .checked_add_months(Months::new(rules.voucher_validity_months))
                .ok_or_else(|| Rejection::invalid("deliver", "voucher expiry out of range"))?;
            let mut serial = random_serial();
            // 48 random bits: a collision is rare, but a duplicate serial must never be issued.
            while tx.voucher_exists(serial).await? {
                serial = random_serial();
            }
            let issued = NewVoucher {
                serial,
                key_id: ctx.keys.active().id,
                coop: coop.id,
                household: Some(household.id),
                issued_on: ctx.today,
                expires_on,
            };
            let id = tx.insert_voucher(&issued).await?;
            // The chain covers what the voucher is: whose, until when, under which serial.
            issue_fact = Some(crate::ledger::Fact::VoucherIssued {
                voucher: id,
                serial: issued.serial,
                key_id: issued.key_id,
                cooperative: issued.coop,
                household: issued.household,
                issued_on: issued.issued_on,
                expires_on: issued.expires_on,
                shop: Some(shop.id),
            });
            let code = VoucherCode::issue(ctx.keys, serial).encode();
            (
                chart::voucher_paid(id),
                chart::voucher_bonus(id),
                Some((
                    id,
                    IssuedVoucher {
                        code,
                        balance: credited,
                        expires_on,
                    },
                )),
            )
        }
    };

    let mut header = ctx.header(EntryKind::TopUp);
    header.policy = Some((policy_name.clone(), policy.reference.hash.clone()));
    // The chain names the till that took the money: in the voucher's issue, or on its own.
    let fact = issue_fact.unwrap_or(crate::ledger::Fact::ToppedUp { shop: shop.id });
    header.facts = Some(fact.encode());
    let mut entry = EntryDraft::new(header);
    entry
        .debit(chart::coop_cash(coop.id, req.method.as_str()), req.paid)
        .debit(chart::coop_promotion(coop.id), bonus)
        .credit(paid_account, req.paid)
        .credit(bonus_account, bonus);
    let entry = entry.balanced().map_err(|e| StoreError(e.to_string()))?;
    let posted = tx.post(entry, "paid").await?;
    tx.insert_topup(&TopupRecord {
        entry: posted.id,
        coop: coop.id,
        shop: shop.id,
        household: household.id,
        method: req.method,
        paid: req.paid,
        bonus,
        voucher: voucher.as_ref().map(|(id, _)| *id),
        business_date: ctx.today,
    })
    .await?;
    let wallet = match req.deliver {
        Delivery::Wallet => wallet_balance(tx, household.id, &coop.code).await?,
        Delivery::Voucher => wallet_before,
    };
    Ok(TopUpReceipt {
        entry: posted.id,
        household: household.code,
        paid: req.paid,
        bonus,
        credited,
        method: req.method,
        wallet,
        voucher: voucher.map(|(_, v)| v),
        policy: policy_name,
        business_date: ctx.today,
    })
}
