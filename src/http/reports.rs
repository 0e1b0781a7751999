//! Cooperative reports over HTTP: the daily till report (cashiers for their own shop,
//! accountants for their cooperative's shops, admins for any) and the outstanding prepaid
//! liability with its custody deposit (accountants for their own cooperative, admins for any).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::Principal;
use super::AppState;
use crate::domain::Role;
use crate::reports::{self, PrepaidReport, ReportError, ShopFilter, TillReport};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_till))
        .routes(routes!(get_prepaid))
}

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> ApiError {
        match e {
            ReportError::Store(e) => e.into(),
            ReportError::Rejected(r) => r.into(),
            ReportError::Overflow => {
                tracing::error!("amount overflow in a report");
                ApiError::internal()
            }
        }
    }
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| ApiError::bad_request("invalid_input", "query", e.body_text()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TillQuery {
    /// Business date, `YYYY-MM-DD`.
    date: NaiveDate,
    /// One shop; a cashier's token fixes it, an accountant's must be of its cooperative.
    #[param(value_type = Option<crate::openapi::Code>)]
    shop: Option<String>,
    /// Admins only: the shops of one cooperative.
    #[param(value_type = Option<crate::openapi::Code>)]
    cooperative: Option<String>,
    /// `json` (default) or `csv`: a row per shop and a total row.
    #[param(value_type = Option<crate::openapi::TillFormat>)]
    format: Option<String>,
    /// The CSV's headers: `zh-CN` (default) or `en`.
    #[param(value_type = Option<crate::openapi::Lang>)]
    lang: Option<String>,
}

/// Daily till report (日结) per shop and over all of them: top-ups by method, sales by tender,
/// refunds, vouchers redeemed, what each till should hold. JSON, or `?format=csv`.
#[utoipa::path(get, path = "/v1/reports/till", tag = "reports", params(TillQuery),
    responses((status = 200, content(
            (TillReport = "application/json"),
            (String = "text/csv"))), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn get_till(
    State(state): State<AppState>,
    principal: Principal,
    q: Result<Query<TillQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    principal.allow(&[Role::Cashier, Role::CoopAccountant, Role::Admin])?;
    let q = query(q)?;
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_input",
                "format",
                "format: use json or csv",
            ))
        }
    };
    let english = match q.lang.as_deref() {
        None | Some("zh-CN") => false,
        Some("en") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_input",
                "lang",
                "lang: use zh-CN or en",
            ))
        }
    };
    let store = state.app.store.as_ref();
    let filter = match principal.role() {
        Role::Cashier => {
            if q.cooperative.is_some() {
                return Err(ApiError::forbidden());
            }
            ShopFilter::Shop(principal.shop_for(q.shop.as_deref())?)
        }
        Role::CoopAccountant => {
            let own = principal.cooperative_for(q.cooperative.as_deref())?;
            match q.shop {
                None => ShopFilter::Cooperative(own),
                Some(shop) => {
                    // Another cooperative's shop, or none at all: outside this token's scope.
                    let shops = store.shops().await?;
                    if !shops.iter().any(|s| s.code == shop && s.cooperative == own) {
                        return Err(ApiError::forbidden());
                    }
                    ShopFilter::Shop(shop)
                }
            }
        }
        _ => match (q.shop, q.cooperative) {
            (Some(shop), _) => ShopFilter::Shop(shop),
            (None, Some(coop)) => {
                // An unknown cooperative is 404, as in the other reports; one without shops yet
                // is an empty report.
                if !store.names().await?.cooperatives.contains_key(&coop) {
                    return Err(ApiError::not_found("cooperative"));
                }
                ShopFilter::Cooperative(coop)
            }
            (None, None) => ShopFilter::All,
        },
    };
    let report = reports::till(store, q.date, &filter)
        .await?
        .ok_or_else(|| ApiError::not_found("shop"))?;
    if csv {
        let body = reports::till_csv(&report, english).map_err(|e| {
            tracing::error!(error = %e, "writing a till report as CSV");
            ApiError::internal()
        })?;
        let name = format!("till-{}.csv", report.date);
        return Ok(super::fees::attachment(super::fees::CSV_TYPE, &name, body));
    }
    Ok(axum::Json(report).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PrepaidQuery {
    /// Admins and the alliance name the cooperative; an accountant's token fixes it.
    #[param(value_type = Option<crate::openapi::Code>)]
    cooperative: Option<String>,
    /// Balances at the end of this business date (default today).
    date: Option<NaiveDate>,
}

/// Outstanding prepaid liability (wallets, vouchers within validity, expired vouchers still owed; paid vs bonus), the breakage recognised to date, and the custody deposit it implies.
#[utoipa::path(get, path = "/v1/reports/prepaid", tag = "reports", params(PrepaidQuery),
    responses((status = 200, body = PrepaidReport), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn get_prepaid(
    State(state): State<AppState>,
    principal: Principal,
    q: Result<Query<PrepaidQuery>, QueryRejection>,
) -> Result<axum::Json<PrepaidReport>, ApiError> {
    principal.allow(&[Role::CoopAccountant, Role::Admin, Role::Alliance])?;
    let q = query(q)?;
    // The alliance reads every cooperative's liability (no personal data in it), naming one.
    let cooperative = match (principal.role(), q.cooperative) {
        (Role::Alliance, Some(c)) => c,
        (Role::Alliance, None) => {
            return Err(ApiError::bad_request(
                "invalid_input",
                "cooperative",
                "cooperative: name the cooperative",
            ))
        }
        (_, requested) => principal.cooperative_for(requested.as_deref())?,
    };
    let report = reports::prepaid(
        state.app.store.as_ref(),
        &state.app.policies,
        &cooperative,
        state.app.clock.today(),
        q.date,
    )
    .await?
    .ok_or_else(|| ApiError::not_found("cooperative"))?;
    Ok(axum::Json(report))
}
