//! The alliance's reports over HTTP (src/reports/alliance.rs): the programme's figures for the
//! `alliance` role (read-only, every company, no personal data) and admins, as JSON, CSV or
//! XLSX, the board's monthly summary, and the compound takeover date the admin sets.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::{ApiJson, Principal};
use super::{submit, AppState, Key};
use crate::domain::{Command, Created, Role};
use crate::reports::alliance::{self, AllianceReport, MonthSummary};
use crate::reports::alliance_export::{self, TABLES};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_report))
        .routes(routes!(get_summary))
        .routes(routes!(put_takeover))
}

const CSV_TYPE: &str = "text/csv; charset=utf-8";
const XLSX_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// Who reads the alliance's figures.
const READERS: &[Role] = &[Role::Alliance, Role::Admin];

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// The month (`YYYY-MM`) of the grid and building tables; default the latest with figures.
    #[param(value_type = Option<crate::openapi::Month>)]
    month: Option<String>,
    /// `json` (default), `csv` (one table, see `table`) or `xlsx` (every table, a sheet each).
    #[param(value_type = Option<crate::openapi::Format>)]
    format: Option<String>,
    /// For CSV only (with `format=csv`; refused otherwise): `totals`, `compounds` (default),
    /// `grids`, `buildings`, `cooperatives`, `companies` or `arrears`.
    #[param(value_type = Option<crate::openapi::AllianceTable>)]
    table: Option<String>,
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| ApiError::bad_request("invalid_input", "query", e.body_text()))
}

fn attachment(content_type: &'static str, name: &str, body: Vec<u8>) -> Response {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

async fn report(state: &AppState, month: Option<&str>) -> Result<AllianceReport, ApiError> {
    Ok(alliance::alliance(
        state.app.store.as_ref(),
        &state.app.policies,
        state.app.clock.today(),
        month,
    )
    .await?)
}

/// The programme's figures (红心物业联盟): per compound and month, grid and building, cooperative
/// and company. No names, no household rows.
#[utoipa::path(get, path = "/v1/alliance/report", tag = "alliance", params(ReportQuery),
    responses((status = 200, content(
            (AllianceReport = "application/json"),
            (String = "text/csv"),
            (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn get_report(
    State(state): State<AppState>,
    principal: Principal,
    q: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    principal.allow(READERS)?;
    let q = query(q)?;
    let format = q.format.as_deref().unwrap_or("json");
    if !["json", "csv", "xlsx"].contains(&format) {
        return Err(ApiError::bad_request(
            "invalid_input",
            "format",
            "format: use json, csv or xlsx",
        ));
    }
    let table = q.table.as_deref().unwrap_or("compounds");
    if !TABLES.contains(&table) || (q.table.is_some() && format != "csv") {
        return Err(ApiError::bad_request(
            "invalid_input",
            "table",
            format!("table: for CSV only, one of {}", TABLES.join(", ")),
        ));
    }
    let report = report(&state, q.month.as_deref()).await?;
    match format {
        "csv" => {
            let tables = alliance_export::tables(&report);
            let chosen = tables
                .iter()
                .find(|t| t.name == table)
                .ok_or_else(ApiError::internal)?;
            let body = alliance_export::to_csv(chosen).map_err(|e| {
                tracing::error!(error = %e, "writing the alliance report as CSV");
                ApiError::internal()
            })?;
            Ok(attachment(
                CSV_TYPE,
                &format!("alliance-{table}-{}.csv", report.month),
                body,
            ))
        }
        "xlsx" => {
            let name = format!("alliance-{}.xlsx", report.month);
            // Building a workbook is CPU work: keep it off the request threads.
            let body = tokio::task::spawn_blocking(move || {
                alliance_export::to_xlsx(&alliance_export::tables(&report))
            })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "the XLSX task failed");
                ApiError::internal()
            })?
            .map_err(|e| {
                tracing::error!(error = %e, "writing the alliance report as XLSX");
                ApiError::internal()
            })?;
            Ok(attachment(XLSX_TYPE, &name, body))
        }
        _ => Ok(axum::Json(report).into_response()),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SummaryQuery {
    /// `YYYY-MM`; default the latest month with figures.
    #[param(value_type = Option<crate::openapi::Month>)]
    month: Option<String>,
}

/// The board's one-page monthly summary: the programme's totals, each compound, cooperative and company in the month.
#[utoipa::path(get, path = "/v1/alliance/summary", tag = "alliance", params(SummaryQuery),
    responses((status = 200, body = MonthSummary), (status = 403, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn get_summary(
    State(state): State<AppState>,
    principal: Principal,
    q: Result<Query<SummaryQuery>, QueryRejection>,
) -> Result<axum::Json<MonthSummary>, ApiError> {
    principal.allow(READERS)?;
    let q = query(q)?;
    let report = report(&state, q.month.as_deref()).await?;
    Ok(axum::Json(alliance::summary(&report)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TakeoverBody {
    /// The day the compound's company took it over (接管), `YYYY-MM-DD`; `null` clears it.
    /// Required: an empty object is refused rather than taken to clear it.
    #[serde(deserialize_with = "Option::deserialize")]
    #[schema(value_type = Option<NaiveDate>, required = true, example = "2025-03-01")]
    taken_over_on: Option<NaiveDate>,
}

/// Set the day a compound's company took it over, which the alliance's charts mark.
#[utoipa::path(put, path = "/v1/compounds/{compound}/takeover", tag = "master data",
    params(("compound" = crate::openapi::Code, Path, description = "Compound code")),
    request_body = TakeoverBody,
    responses((status = 200, body = Created), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn put_takeover(
    State(state): State<AppState>,
    principal: Principal,
    Path(compound): Path<String>,
    headers: HeaderMap,
    body: ApiJson<TakeoverBody>,
) -> Result<Response, ApiError> {
    principal.allow(&[Role::Admin])?;
    // The route names the compound: a key reused for another compound is another request.
    let route = format!("PUT /v1/compounds/{compound}/takeover");
    submit(
        &state,
        &principal,
        &headers,
        (&route, &body.raw),
        Command::SetCompoundTakeover {
            compound,
            taken_over_on: body.value.taken_over_on,
        },
        StatusCode::OK,
        Key::Optional,
    )
    .await
}
