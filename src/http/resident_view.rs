//! A household's property-fee status (物业费) in one answer, for the resident's page: what is
//! owed or paid ahead now, its recent months as the company's statement reports them, and what
//! the cooperative's profit covered after each month close. Built from what the server already
//! keeps and computes — the statement lines, the open bills and the stored month closes — so
//! the resident sees exactly the figures the company and the cooperative see.
//!
//! Readers: the resident (own household), the household's company, admins. To any other
//! resident or company the household does not exist (404); other roles are refused (403).

use axum::extract::{Path, Query, State};
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::Principal;
use super::fees::{arrears_by_age, ArrearsByAge};
use super::AppState;
use crate::domain::Role;
use crate::money::Amount;
use crate::store::HouseholdView;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_household_fees))
}

/// The most months one answer covers: each is one statement read.
const MAX_MONTHS: u32 = 12;
const DEFAULT_MONTHS: u32 = 6;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeesQuery {
    /// How many calendar months, up to the business date's, to look back: 1–12, default 6.
    #[param(minimum = 1, maximum = 12)]
    months: Option<u32>,
}

/// One month of a household's fees, as the company's statement for that month reports the
/// household's line, with what is still unpaid of that month's bill.
#[derive(Serialize, ToSchema)]
pub struct FeeMonth {
    /// `YYYY-MM`.
    month: String,
    /// Owed (positive) or paid ahead (negative) when the month began.
    opening: Amount,
    /// The bill for the month, whenever it was made.
    billed: Amount,
    /// Paid by the resident in the month (by payment date).
    paid: Amount,
    /// Covered by the cooperative's profit of the month (its month close, whenever posted).
    covered: Amount,
    /// Owed (positive) or paid ahead (negative) when the month ended, or now for the current
    /// month: opening + billed − paid − covered.
    closing: Amount,
    /// What is still unpaid today of the bill for this month (zero when paid or not billed).
    outstanding: Amount,
}

/// What one month close of a cooperative credited toward this household's fees.
#[derive(Serialize, ToSchema)]
pub struct ProfitCover {
    cooperative: String,
    /// The month whose profit was shared, `YYYY-MM`.
    month: String,
    amount: Amount,
}

#[derive(Serialize, ToSchema)]
pub struct HouseholdFeesResponse {
    household: String,
    company: String,
    /// The business date the figures are as of.
    as_of: NaiveDate,
    /// Positive: owed; negative: paid ahead.
    balance: Amount,
    arrears: Amount,
    prepaid: Amount,
    /// Unpaid bills by how long ago their month began.
    arrears_by_age: ArrearsByAge,
    /// Recent months, newest first; months with no fees at all are left out.
    months: Vec<FeeMonth>,
    /// Every month close that credited the household, newest first.
    covered: Vec<ProfitCover>,
    /// The sum of `covered`.
    covered_total: Amount,
}

fn may_see(principal: &Principal, view: &HouseholdView) -> bool {
    match principal.role() {
        Role::Admin => true,
        Role::Company => principal.token.company.as_deref() == Some(view.company.as_str()),
        Role::Resident => principal.token.household.as_deref() == Some(view.code.as_str()),
        Role::Cashier | Role::CoopAccountant | Role::Alliance => false,
    }
}

/// `count` months ending with the one `today` falls in, newest first.
fn recent_months(today: NaiveDate, count: u32) -> Vec<String> {
    let mut index = today.year() * 12 + today.month0() as i32;
    let mut months = Vec::with_capacity(count as usize);
    for _ in 0..count {
        months.push(format!("{:04}-{:02}", index / 12, index % 12 + 1));
        index -= 1;
    }
    months
}

/// A household's property-fee status: balance, arrears by age, recent months (billed, paid,
/// covered by the cooperative, still outstanding) and what each month close covered.
#[utoipa::path(get, path = "/v1/households/{household}/fees", tag = "households",
    params(("household" = crate::openapi::Code, Path), FeesQuery),
    responses((status = 200, body = HouseholdFeesResponse), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn get_household_fees(
    State(state): State<AppState>,
    principal: Principal,
    Path(code): Path<String>,
    query: Result<Query<FeesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<HouseholdFeesResponse>, ApiError> {
    principal.allow(&[Role::Admin, Role::Company, Role::Resident])?;
    principal.resident_read(&state)?;
    let Query(q) =
        query.map_err(|e| ApiError::bad_request("invalid_input", "months", e.body_text()))?;
    let count = q.months.unwrap_or(DEFAULT_MONTHS);
    if !(1..=MAX_MONTHS).contains(&count) {
        return Err(ApiError::bad_request(
            "invalid_input",
            "months",
            "months must be 1–12",
        ));
    }
    let view = match state.app.store.household(&code).await? {
        Some(v) if may_see(&principal, &v) => v,
        _ => return Err(ApiError::not_found("household")),
    };
    let today = state.app.clock.today();
    let open_bills = state.app.store.open_bills(&view.code, None).await?;

    // The household's own movements, one query, summed per month as its company's statement
    // sums them (not a whole-company statement per month: a resident's view stays cheap).
    let movements = state.app.store.household_fee_movements(&view.code).await?;
    let lines = crate::fees::statement::household_months(&movements, &recent_months(today, count))
        .ok_or_else(ApiError::internal)?;
    let mut months = Vec::new();
    for (month, line) in lines {
        let outstanding = match open_bills.iter().find(|(m, _, _)| *m == month) {
            Some((_, amount, settled)) => amount
                .checked_sub(*settled)
                .ok_or_else(ApiError::internal)?,
            None => Amount::ZERO,
        };
        let quiet = [
            line.opening,
            line.billed,
            line.paid,
            line.allocated,
            line.closing,
            outstanding,
        ]
        .iter()
        .all(|a| a.is_zero());
        if quiet {
            continue;
        }
        months.push(FeeMonth {
            month,
            opening: line.opening,
            billed: line.billed,
            paid: line.paid,
            covered: line.allocated,
            closing: line.closing,
            outstanding,
        });
    }

    let covered: Vec<ProfitCover> = state
        .app
        .store
        .household_close_credits(&view.code)
        .await?
        .into_iter()
        .filter(|(_, _, amount)| !amount.is_zero())
        .map(|(cooperative, month, amount)| ProfitCover {
            cooperative,
            month,
            amount,
        })
        .collect();
    let covered_total =
        Amount::checked_sum(covered.iter().map(|c| c.amount)).ok_or_else(ApiError::internal)?;

    let balance = view.fees_balance;
    Ok(axum::Json(HouseholdFeesResponse {
        household: view.code.clone(),
        company: view.company.clone(),
        as_of: today,
        balance,
        arrears: balance.max(Amount::ZERO),
        prepaid: balance
            .checked_neg()
            .ok_or_else(ApiError::internal)?
            .max(Amount::ZERO),
        arrears_by_age: arrears_by_age(&open_bills, today)?,
        months,
        covered,
        covered_total,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_months_cross_the_year() {
        let d = NaiveDate::from_ymd_opt(2026, 2, 10).unwrap();
        assert_eq!(recent_months(d, 3), ["2026-02", "2026-01", "2025-12"]);
        assert_eq!(recent_months(d, 1), ["2026-02"]);
    }
}
