//! Top-up under 居民购物50元换55元 (spend-50-get-55): the resident pays whole units of 50.00 and
//! is credited 55.00 per unit, into the household's wallet or onto a new bearer voucher.
//!
//! Entry: Dr cooperative cash:{method} paid, Dr promotion bonus; Cr wallet (or voucher) paid and
//! bonus. The policy's arithmetic and limits are [`crate::domain::top_up_terms`], which the
//! till's quote shares.

use chrono::Months;

use super::*;
use crate::domain::{top_up_terms, TopUpFacts, TopUpTerms};
use crate::voucher::VoucherCode;

pub(crate) fn top_up(
    state: &mut State,
    ctx: &Ctx<'_>,
    req: &TopUp,
    drawn: &[u64],
) -> OpResult<TopUpReceipt> {
    let shop = state
        .shop(&req.shop)
        .ok_or_else(|| Rejection::not_found("shop", "shop", &req.shop))?;
    let household = state
        .household(&req.household)
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
    let bonus_so_far = state.bonus_in_month(household.id, &ctx.month())?;
    let wallet_before = wallet_balance(state, household.id, &coop.code)?;
    let TopUpTerms {
        bonus, credited, ..
    } = top_up_terms(
        policy,
        req.paid,
        req.method,
        req.deliver,
        req.bonus,
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
            // 48 random bits drawn before the batch and checked against the vouchers: a
            // collision is rare, but a duplicate serial must never be issued.
            let serial = state.free_serial(drawn)?;
            let issued = NewVoucher {
                serial,
                key_id: ctx.keys.active().id,
                coop: coop.id,
                household: Some(household.id),
                issued_on: ctx.today,
                expires_on,
            };
            let id = state.insert_voucher(&issued)?;
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
    let posted = state.post(entry, "paid")?;
    state.insert_topup(&TopupRecord {
        entry: posted.id,
        coop: coop.id,
        shop: shop.id,
        household: household.id,
        method: req.method,
        paid: req.paid,
        bonus,
        voucher: voucher.as_ref().map(|(id, _)| *id),
        business_date: ctx.today,
    });
    let wallet = match req.deliver {
        Delivery::Wallet => wallet_balance(state, household.id, &coop.code)?,
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
