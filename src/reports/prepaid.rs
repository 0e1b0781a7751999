//! Outstanding prepaid liability (预付卡余额) of a cooperative: what its wallets and bearer
//! vouchers still owe residents, split into the paid part (the residents' own money) and the
//! bonus part (the 5.00 per 50.00 of 居民购物50元换55元), and the custody deposit (存管资金) it
//! implies: the top-up policy's `custody_deposit_ratio` × last quarter's prepaid balance.
//!
//! Vouchers past their validity are a line of their own: expiry moves no money (单用途商业预付卡
//! rules keep an expired card's balance owed and exchangeable, see `domain::vouchers`), so their
//! credit stays in the liability until it is exchanged (back to the vouchers line) or, under a
//! policy with `breakage_after_months`, recognised as breakage, which the report shows beside the
//! liability: the paid part taken to breakage income and the bonus forfeited, net of what
//! exchanges reinstated.
//!
//! "Last quarter's prepaid balance" is the paid part outstanding (wallets + vouchers) at the end
//! of the calendar quarter before the report date: the sum of the paid credit moved in every
//! month up to that quarter's last, which the write path keeps per cooperative and month
//! (`paid_credit_months`, migration 0022; `verify` recomputes it from the postings). Only the
//! paid part counts: the bonus was never money received.
//! The product is rounded once, half-up (四舍五入). The ratio is the one of the policy version in
//! effect on the report date.

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

use super::{no_policy, ReportError};
use crate::domain::month_of;
use crate::money::{mul_rate, Amount, Rounding};
use crate::policy::PolicySet;
use crate::store::{paid_credit_at, CreditFigures, PaidCreditMonth, Store};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct PrepaidReport {
    pub cooperative: String,
    /// Balances at the end of this business date.
    pub as_of: NaiveDate,
    pub wallets: CreditLine,
    /// Vouchers within their validity on `as_of`.
    pub vouchers: CreditLine,
    /// Vouchers past their validity (`expires_on` before `as_of`, marked expired by the expiry
    /// run or not yet) with credit still owed: the holder may have them exchanged.
    pub expired_vouchers: CreditLine,
    /// Wallets, vouchers and expired vouchers together: the whole prepaid liability.
    pub total: CreditLine,
    /// Breakage recognised on the cooperative's vouchers to `as_of` (not a liability any more).
    pub breakage: Breakage,
    pub custody: Custody,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Breakage {
    /// Unused paid credit of expired vouchers taken to the cooperative's breakage income, net
    /// of what exchanges reinstated: the balance of its `breakage` account.
    pub paid: Amount,
    /// Unused bonus of those vouchers forfeited (back against promotion), net likewise.
    pub bonus: Amount,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct CreditLine {
    /// Wallets (households) or vouchers with credit left.
    pub count: u64,
    pub paid: Amount,
    pub bonus: Amount,
    /// paid + bonus.
    pub total: Amount,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Custody {
    /// The end of the calendar quarter before `as_of`.
    pub quarter_end: NaiveDate,
    /// Paid credit outstanding at `quarter_end`, in wallets…
    pub wallets_paid: Amount,
    /// …and in vouchers…
    pub vouchers_paid: Amount,
    /// …together: last quarter's prepaid balance.
    pub prepaid_balance: Amount,
    /// `custody_deposit_ratio` of the top-up policy in effect on `as_of`.
    #[schema(value_type = String, example = "0.40")]
    #[serde(with = "rust_decimal::serde::str")]
    pub ratio: Decimal,
    /// The policy it comes from, `id@version`.
    pub policy: String,
    /// ratio × prepaid_balance, rounded once, half-up.
    pub deposit: Amount,
}

/// The last day of the calendar quarter before the one `date` is in.
pub fn previous_quarter_end(date: NaiveDate) -> NaiveDate {
    let first_month = (date.month0() / 3) * 3 + 1;
    NaiveDate::from_ymd_opt(date.year(), first_month, 1)
        .and_then(|start| start.pred_opt())
        .unwrap_or(NaiveDate::MIN)
}

fn line(f: &CreditFigures) -> Result<CreditLine, ReportError> {
    Ok(CreditLine {
        count: f.holders,
        paid: f.paid,
        bonus: f.bonus,
        total: f.paid.checked_add(f.bonus).ok_or(ReportError::Overflow)?,
    })
}

/// What is left of `all` once `part` is taken out (vouchers less the expired ones).
fn less(all: &CreditFigures, part: &CreditFigures) -> Result<CreditFigures, ReportError> {
    let sub = |x: Amount, y: Amount| x.checked_sub(y).ok_or(ReportError::Overflow);
    Ok(CreditFigures {
        holders: all
            .holders
            .checked_sub(part.holders)
            .ok_or(ReportError::Overflow)?,
        paid: sub(all.paid, part.paid)?,
        bonus: sub(all.bonus, part.bonus)?,
    })
}

fn sum(a: &CreditLine, b: &CreditLine) -> Result<CreditLine, ReportError> {
    let add = |x: Amount, y: Amount| x.checked_add(y).ok_or(ReportError::Overflow);
    Ok(CreditLine {
        count: a.count + b.count,
        paid: add(a.paid, b.paid)?,
        bonus: add(a.bonus, b.bonus)?,
        total: add(a.total, b.total)?,
    })
}

/// The prepaid report of `cooperative` as of `as_of` (default `today`: stored balances; an
/// earlier date is recomputed from postings). `None` for an unknown cooperative.
pub async fn prepaid(
    store: &dyn Store,
    policies: &PolicySet,
    cooperative: &str,
    today: NaiveDate,
    as_of: Option<NaiveDate>,
) -> Result<Option<PrepaidReport>, ReportError> {
    let date = as_of.unwrap_or(today);
    let recompute = as_of.filter(|d| *d < today);
    let Some(now) = store.prepaid_figures(cooperative, today, recompute).await? else {
        return Ok(None);
    };
    let months = store
        .paid_credit_months(cooperative)
        .await?
        .unwrap_or_default();
    let wallets = line(&now.wallets)?;
    let vouchers = line(&less(&now.vouchers, &now.expired)?)?;
    let expired_vouchers = line(&now.expired)?;
    Ok(Some(PrepaidReport {
        cooperative: cooperative.to_string(),
        as_of: date,
        total: sum(&sum(&wallets, &vouchers)?, &expired_vouchers)?,
        wallets,
        vouchers,
        expired_vouchers,
        breakage: Breakage {
            paid: now.breakage_paid,
            bonus: now.breakage_bonus,
        },
        custody: custody(policies, &months, date)?,
    }))
}

/// The custody deposit due on `date`: the ratio of the top-up policy in effect that day × the
/// paid credit outstanding at the end of the quarter before, summed from a cooperative's
/// maintained months (`paid_credit_months`).
pub fn custody(
    policies: &PolicySet,
    months: &[PaidCreditMonth],
    date: NaiveDate,
) -> Result<Custody, ReportError> {
    let quarter_end = previous_quarter_end(date);
    let (wallets_paid, vouchers_paid) =
        paid_credit_at(months, &month_of(quarter_end)).ok_or(ReportError::Overflow)?;
    let policy = policies
        .topup(date)
        .ok_or_else(|| no_policy("topup_bonus", date))?;
    let ratio = policy.rules.custody_deposit_ratio;
    let prepaid_balance = wallets_paid
        .checked_add(vouchers_paid)
        .ok_or(ReportError::Overflow)?;
    Ok(Custody {
        quarter_end,
        wallets_paid,
        vouchers_paid,
        prepaid_balance,
        ratio,
        policy: policy.reference.to_string(),
        deposit: mul_rate(prepaid_balance, ratio, Rounding::HalfUp)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn quarter_ends() {
        for (date, end) in [
            ("2026-11-16", "2026-09-30"),
            ("2026-10-01", "2026-09-30"),
            ("2026-09-30", "2026-06-30"),
            ("2026-04-01", "2026-03-31"),
            ("2026-03-31", "2025-12-31"),
            ("2026-01-01", "2025-12-31"),
            ("2026-07-15", "2026-06-30"),
        ] {
            assert_eq!(previous_quarter_end(d(date)), d(end), "{date}");
        }
    }
}
