//! What a cooperative owes the property companies over HTTP: for a month, per company, the
//! amount due at its start, what the month's closes allocated, what was settled, and what is
//! still outstanding (the `due_to:{company}` accounts, SPEC §4 templates 7 and 8). The
//! accountant's page (`/coop`) shows it beside the form that records a settlement.
//!
//! The figures are the ones each company's statement reports for the cooperative, so the two
//! sides of a settlement can never disagree: this module composes [`Store::statement`] rather
//! than computing the position again.
//!
//! [`Store::statement`]: crate::store::Store::statement

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::Principal;
use super::AppState;
use crate::domain::Role;
use crate::fees::{month_bounds, month_of};
use crate::money::Amount;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_settlements))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SettlementsQuery {
    /// Admins name the cooperative; an accountant's token fixes it.
    #[param(value_type = Option<crate::openapi::Code>)]
    cooperative: Option<String>,
    /// The month, `YYYY-MM`; by default the month of the business date.
    #[param(value_type = Option<crate::openapi::Month>)]
    month: Option<String>,
}

/// What the cooperative owes one company over a month.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct CompanyPosition {
    pub company: String,
    /// Due at the start of the month.
    pub opening: Amount,
    /// Added by the close of this month (its profit allocated toward the company's fees),
    /// whenever the close was posted.
    pub allocated: Amount,
    /// Property fees the cooperative's tills collected for the company during the month (代收):
    /// owed to it like the allocations, paid at settlement.
    pub collected: Amount,
    /// Paid to the company by bank transfer during the month.
    pub settled: Amount,
    /// Still due at the end of the month (now, for the current month).
    pub outstanding: Amount,
}

#[derive(Serialize, ToSchema)]
pub struct SettlementsResponse {
    pub cooperative: String,
    pub month: String,
    /// The business date the figures were read on.
    pub as_of: NaiveDate,
    /// Every company the cooperative has ever owed, by code.
    pub companies: Vec<CompanyPosition>,
    /// The sums over the companies (`company` is empty).
    pub total: CompanyPosition,
}

/// The account paths (`cooperative:{coop}:due_to:{company}`) name the companies owed.
fn companies_owed(cooperative: &str, paths: impl Iterator<Item = String>) -> (bool, Vec<String>) {
    let own = format!("cooperative:{cooperative}:");
    let due = format!("{own}due_to:");
    let mut known = false;
    let mut companies = Vec::new();
    for path in paths {
        if let Some(company) = path.strip_prefix(&due) {
            companies.push(company.to_string());
        }
        known |= path.starts_with(&own);
    }
    companies.sort();
    companies.dedup();
    (known, companies)
}

/// What the cooperative owes each property company (应付物业公司): due at the start of the month,
/// allocated by month closes, settled, and outstanding — as each company's statement states it.
#[utoipa::path(get, path = "/v1/settlements", tag = "month close", params(SettlementsQuery),
    responses((status = 200, body = SettlementsResponse), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn get_settlements(
    State(state): State<AppState>,
    principal: Principal,
    q: Result<Query<SettlementsQuery>, QueryRejection>,
) -> Result<axum::Json<SettlementsResponse>, ApiError> {
    principal.allow(&[Role::CoopAccountant, Role::Admin])?;
    let Query(q) = q.map_err(|e| ApiError::bad_request("invalid_input", "query", e.body_text()))?;
    let cooperative = principal.cooperative_for(q.cooperative.as_deref())?;
    let today = state.app.clock.today();
    let month = q.month.unwrap_or_else(|| month_of(today));
    month_bounds("month", &month).map_err(ApiError::from)?;
    let store = state.app.store.as_ref();
    let (known, codes) = companies_owed(&cooperative, store.balances().await?.into_keys());
    // An accountant's own cooperative may not have traded yet (nothing owed); a code an admin
    // names that no account carries is unknown.
    if !known && principal.role() == Role::Admin {
        return Err(ApiError::not_found("cooperative").with_field("cooperative"));
    }
    let mut companies = Vec::with_capacity(codes.len());
    let mut total = CompanyPosition::default();
    for company in codes {
        let Some(statement) = store.statement(&company, &month).await? else {
            continue;
        };
        let p = statement
            .cooperatives
            .into_iter()
            .find(|p| p.cooperative == cooperative)
            .unwrap_or_default();
        let sum = |a: Amount, b: Amount| a.checked_add(b).ok_or_else(ApiError::internal);
        total.opening = sum(total.opening, p.opening)?;
        total.allocated = sum(total.allocated, p.allocated)?;
        total.collected = sum(total.collected, p.collected)?;
        total.settled = sum(total.settled, p.settled)?;
        total.outstanding = sum(total.outstanding, p.outstanding)?;
        companies.push(CompanyPosition {
            company,
            opening: p.opening,
            allocated: p.allocated,
            collected: p.collected,
            settled: p.settled,
            outstanding: p.outstanding,
        });
    }
    Ok(axum::Json(SettlementsResponse {
        cooperative,
        month,
        as_of: today,
        companies,
        total,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_due_to_accounts_name_the_companies() {
        let paths = [
            "cooperative:COOP:due_to:K02",
            "cooperative:COOP:cash:bank",
            "cooperative:COOP:due_to:K01",
            "cooperative:COOP2:due_to:K03",
            "company:K01:due_from:COOP",
        ]
        .map(String::from);
        assert_eq!(
            companies_owed("COOP", paths.clone().into_iter()),
            (true, vec!["K01".to_string(), "K02".to_string()])
        );
        assert_eq!(
            companies_owed("COOP3", paths.into_iter()),
            (false, Vec::new())
        );
    }
}
