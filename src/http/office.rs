//! The company office's month series (`GET /v1/companies/{company}/months`): for each of the
//! last months, what was billed, paid by residents and covered by the cooperative, taken from
//! the very statements `GET /v1/companies/{company}/statements/{month}` serves, and whether a
//! cooperative has closed the month. The office page draws its chart and picks its default
//! month (the latest closed one) from it.

use std::collections::BTreeSet;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use chrono::{Datelike, Months, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::Principal;
use super::fees::may_read_company;
use super::AppState;
use crate::fees::statement::Totals;
use crate::money::Amount;

/// The most months one request may ask for: each is one statement query.
pub const MAX_MONTHS: u32 = 24;
/// Months answered when the request does not say.
pub const DEFAULT_MONTHS: u32 = 12;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_months))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MonthsQuery {
    /// How many months, ending with the current one: 1 to 24 (default 12).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 24)]
    last: Option<String>,
}

/// One month of a company's fees, as its statement totals them.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonthFigures {
    /// `YYYY-MM`.
    month: String,
    /// A cooperative has closed the month: its profit allocation is posted and the month's
    /// statement is final.
    closed: bool,
    /// Owed (positive) or paid ahead (negative) at the start of the month.
    opening: Amount,
    billed: Amount,
    /// Paid by residents.
    paid: Amount,
    /// Covered by the cooperative's profit allocation of this month (its close, whenever
    /// posted); bills count in the month they are for, payments in the month they were made.
    covered: Amount,
    closing: Amount,
    /// The statement's own tie-out: opening + billed − paid − covered = closing.
    ties_out: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MonthsResponse {
    company: String,
    /// The business date; its month is the last one answered.
    as_of: NaiveDate,
    /// The latest month answered that a cooperative has closed, if any.
    latest_closed: Option<String>,
    /// Oldest first, from the first month closed or with any fee movement or balance on.
    months: Vec<MonthFigures>,
}

/// The `count` months ending with `today`'s, oldest first, as `YYYY-MM`.
fn months_ending(today: NaiveDate, count: u32) -> Vec<String> {
    let first = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap_or(today);
    (0..count)
        .rev()
        .filter_map(|back| first.checked_sub_months(Months::new(back)))
        .map(|d| d.format("%Y-%m").to_string())
        .collect()
}

fn is_empty(t: &Totals) -> bool {
    [t.opening, t.billed, t.paid, t.allocated, t.closing]
        .iter()
        .all(|a| *a == Amount::ZERO)
}

/// A company's last months (物业费按月汇总): per month the statement's totals — opening,
/// billed, paid by residents, covered by the cooperative, closing — and whether a cooperative
/// has closed it. Months before the first that is closed or has a fee movement are left out.
#[utoipa::path(get, path = "/v1/companies/{company}/months", tag = "property fees",
    params(("company" = crate::openapi::Code, Path), MonthsQuery),
    responses((status = 200, body = MonthsResponse), (status = 404, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn get_months(
    State(state): State<AppState>,
    principal: Principal,
    Path(company): Path<String>,
    query: Result<Query<MonthsQuery>, QueryRejection>,
) -> Result<axum::Json<MonthsResponse>, ApiError> {
    may_read_company(&principal, &company)?;
    let Query(q) =
        query.map_err(|e| ApiError::bad_request("invalid_input", "query", e.body_text()))?;
    let last = match q.last.as_deref() {
        None => DEFAULT_MONTHS,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_MONTHS).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_input",
                    "last",
                    format!("last: a number of months from 1 to {MAX_MONTHS}"),
                )
            })?,
    };
    let store = state.app.store.as_ref();
    let today = state.app.clock.today();
    let closed: BTreeSet<String> = store
        .closed_months()
        .await?
        .into_iter()
        .map(|(_, month)| month)
        .collect();
    let mut months: Vec<MonthFigures> = Vec::new();
    for month in months_ending(today, last) {
        let statement = store
            .statement(&company, &month)
            .await?
            .ok_or_else(|| ApiError::not_found("company"))?;
        let t = &statement.totals;
        let is_closed = closed.contains(&month);
        if months.is_empty() && is_empty(t) && !is_closed {
            continue;
        }
        months.push(MonthFigures {
            closed: is_closed,
            month,
            opening: t.opening,
            billed: t.billed,
            paid: t.paid,
            covered: t.allocated,
            closing: t.closing,
            ties_out: statement.ties_out,
        });
    }
    let latest_closed = months
        .iter()
        .rev()
        .find(|m| m.closed)
        .map(|m| m.month.clone());
    Ok(axum::Json(MonthsResponse {
        company,
        as_of: today,
        latest_closed,
        months,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_end_with_today_s_and_cross_years() {
        let d = NaiveDate::from_ymd_opt(2026, 2, 28).unwrap();
        assert_eq!(months_ending(d, 3), ["2025-12", "2026-01", "2026-02"]);
        assert_eq!(months_ending(d, 1), ["2026-02"]);
    }
}
