//! Property fees and the second policy over HTTP (SPEC §7, §9): a company's monthly bills and
//! the payments it records, the cooperative's month close (profit → allocation toward fees) and
//! its settlements with the companies, a company's statement (JSON, CSV, XLSX) and its arrears
//! by age.
//!
//! A company token acts for its own company only: another company's households, statements and
//! arrears do not exist for it (404). An accountant acts for their own cooperative; an admin
//! names the company or cooperative.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::{ApiJson, OptionalJson, Principal};
use super::{submit, AppState, Key};
use crate::domain::{
    BillsReceipt, CloseMonth, CloseReceipt, Command, FeePayment, FeePaymentReceipt, GenerateBills,
    PayMethod, Role, Settlement, SettlementReceipt,
};
use crate::fees::statement::Statement;
use crate::fees::{age_bucket, month_bounds, AGE_BUCKETS};
use crate::money::Amount;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_bills))
        .routes(routes!(post_payment))
        .routes(routes!(post_till_payment))
        .routes(routes!(get_till_household_fees))
        .routes(routes!(get_receipt))
        .routes(routes!(post_close, get_close))
        .routes(routes!(post_settlement))
        .routes(routes!(get_statement))
        .routes(routes!(get_arrears))
}

/// The company a company-side operation concerns: a company token's own; an admin names one.
fn company_for(principal: &Principal, requested: Option<&str>) -> Result<String, ApiError> {
    match (principal.role(), &principal.token.company, requested) {
        (Role::Company, Some(own), None) => Ok(own.clone()),
        (Role::Company, Some(own), Some(r)) if r == own => Ok(own.clone()),
        (Role::Admin, _, Some(r)) => Ok(r.to_string()),
        (Role::Admin, _, None) => Err(ApiError::bad_request(
            "invalid_input",
            "company",
            "company: an admin names the company",
        )),
        _ => Err(ApiError::forbidden()),
    }
}

/// Reading a company's books: its own staff and admins; to another company it does not exist.
pub(super) fn may_read_company(principal: &Principal, company: &str) -> Result<(), ApiError> {
    principal.allow(&[Role::Company, Role::Admin])?;
    match principal.role() {
        Role::Company if principal.token.company.as_deref() != Some(company) => {
            Err(ApiError::not_found("company"))
        }
        _ => Ok(()),
    }
}

/// A `YYYY-MM` path or body value, checked before it reaches the store.
fn check_month(month: &str) -> Result<(NaiveDate, NaiveDate), ApiError> {
    month_bounds("month", month).map_err(ApiError::from)
}

// ---------------------------------------------------------------------------------------------
// Bills and payments

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BillsRequest {
    /// The month billed, `YYYY-MM`; it must have begun.
    #[schema(value_type = crate::openapi::Month)]
    month: String,
    /// Only an admin names the company; a company token fixes it.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::Code>)]
    company: Option<String>,
}

/// Bill a month's property fees (物业费) to every household of the company not yet billed for
/// it. Money paid ahead settles the new bill at once. Billing a month again bills nobody twice.
#[utoipa::path(post, path = "/v1/fees/bills", tag = "property fees", request_body = BillsRequest,
    params(("Idempotency-Key" = String, Header, description = "one per attempt")),
    responses((status = 201, body = BillsReceipt), (status = 422, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
async fn post_bills(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: ApiJson<BillsRequest>,
) -> Result<Response, ApiError> {
    principal.allow(&[Role::Company, Role::Admin])?;
    let req = body.value;
    let command = Command::GenerateBills(GenerateBills {
        company: company_for(&principal, req.company.as_deref())?,
        month: req.month,
    });
    submit(
        &state,
        &principal,
        &headers,
        ("POST /v1/fees/bills", &body.raw),
        command,
        StatusCode::CREATED,
        Key::Required,
    )
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeePaymentRequest {
    /// Household code.
    #[schema(value_type = crate::openapi::Code)]
    household: String,
    #[schema(value_type = crate::openapi::RequestAmount)]
    amount: Amount,
    method: PayMethod,
    /// The receipt or transfer reference, up to 100 characters.
    #[schema(value_type = crate::openapi::Text100)]
    reference: String,
}

/// Record a resident's payment of property fees: applied to the oldest unpaid bill first,
/// anything beyond every bill is paid ahead.
#[utoipa::path(post, path = "/v1/fees/payments", tag = "property fees", request_body = FeePaymentRequest,
    params(("Idempotency-Key" = String, Header, description = "one per attempt")),
    responses((status = 201, body = FeePaymentReceipt), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn post_payment(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: ApiJson<FeePaymentRequest>,
) -> Result<Response, ApiError> {
    principal.allow(&[Role::Company, Role::Admin])?;
    let req = body.value;
    // A company records payments for its own households only; the ledger answers 404 for
    // another company's.
    let company = match principal.role() {
        Role::Company => Some(company_for(&principal, None)?),
        _ => None,
    };
    let command = Command::PayFee(FeePayment {
        household: req.household,
        amount: req.amount,
        method: req.method,
        reference: req.reference,
        company,
        shop: None,
    });
    submit(
        &state,
        &principal,
        &headers,
        ("POST /v1/fees/payments", &body.raw),
        command,
        StatusCode::CREATED,
        Key::Required,
    )
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TillFeePaymentRequest {
    /// Household code (the scanned household card).
    #[schema(value_type = crate::openapi::Code)]
    household: String,
    #[schema(value_type = crate::openapi::RequestAmount)]
    amount: Amount,
    /// `cash`, `wechat` or `alipay`. Shopping credit (`wallet`, `voucher`) never pays property
    /// fees: refused as `method_not_accepted` on `method`.
    #[schema(value_type = String, example = "cash")]
    method: String,
    /// Only an admin names the shop; a cashier's token fixes it.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::Code>)]
    shop: Option<String>,
}

/// Take a property-fee payment at a cooperative's till (代收物业费) for the household's company:
/// the money is the cooperative's, owed to the company (settled with the rest of what the
/// cooperative owes it), and the fee is applied to the oldest unpaid bill first, exactly as if
/// paid at the company's office. Answers the numbered receipt (收据): the company's next number.
#[utoipa::path(post, path = "/v1/till/fee-payments", tag = "till", request_body = TillFeePaymentRequest,
    params(("Idempotency-Key" = String, Header, description = "one per attempt")),
    responses((status = 201, body = FeePaymentReceipt), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn post_till_payment(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: ApiJson<TillFeePaymentRequest>,
) -> Result<Response, ApiError> {
    principal.allow(&[Role::Cashier, Role::Admin])?;
    let req = &body.value;
    let shop = principal.shop_for(req.shop.as_deref())?;
    let method = match req.method.as_str() {
        "cash" => PayMethod::Cash,
        "wechat" => PayMethod::Wechat,
        "alipay" => PayMethod::Alipay,
        other => {
            return Err(crate::domain::Rejection::MethodNotAccepted {
                field: "method".into(),
                method: other.chars().take(40).collect(),
            }
            .into())
        }
    };
    let command = Command::PayFee(FeePayment {
        household: req.household.clone(),
        amount: req.amount,
        method,
        reference: format!("till {shop}"),
        company: None,
        shop: Some(shop),
    });
    submit(
        &state,
        &principal,
        &headers,
        ("POST /v1/till/fee-payments", &body.raw),
        command,
        StatusCode::CREATED,
        Key::Required,
    )
    .await
}

/// One unpaid (or partly paid) bill, as a till shows it.
#[derive(Serialize, ToSchema)]
pub struct OpenBill {
    /// `YYYY-MM`.
    #[schema(value_type = crate::openapi::Month)]
    month: String,
    amount: Amount,
    settled: Amount,
    /// What is still owed on it.
    open: Amount,
}

/// What a household owes its property company, for the till taking a fee: amounts and the
/// company, nothing about the people who live there.
#[derive(Serialize, ToSchema)]
pub struct TillHouseholdFees {
    household: String,
    company: String,
    company_name: Option<String>,
    /// Positive: owed; negative: paid ahead.
    balance: Amount,
    arrears: Amount,
    prepaid: Amount,
    /// Unpaid bills owed to `company`, oldest first: a payment settles them in this order.
    bills: Vec<OpenBill>,
    /// The household's position with each company its compound has left (the months before a
    /// move), when not nil: a payment here does not settle it; it is paid at that company's
    /// office.
    owed_elsewhere: Vec<OwedElsewhere>,
    /// The business date.
    as_of: NaiveDate,
}

/// A household's position with a company its compound has left.
#[derive(Serialize, ToSchema)]
pub struct OwedElsewhere {
    company: String,
    company_name: Option<String>,
    /// Positive: owed to that company; negative: paid it ahead.
    balance: Amount,
    /// `YYYY-MM` of each month still unpaid there, oldest first.
    #[schema(value_type = Vec<crate::openapi::Month>)]
    months: Vec<String>,
}

/// What a household owes its property company, for a till taking its fee (代收物业费): the
/// balance and the unpaid bills, oldest first, with the company's name. A cashier may read any
/// household's, as any till may take any household's fee; only amounts and the company are
/// answered (no name, address or credit). Cashiers and admins only.
#[utoipa::path(get, path = "/v1/till/households/{household}/fees", tag = "till",
    params(("household" = crate::openapi::Code, Path)),
    responses((status = 200, body = TillHouseholdFees), (status = 404, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
async fn get_till_household_fees(
    State(state): State<AppState>,
    principal: Principal,
    Path(code): Path<String>,
) -> Result<axum::Json<TillHouseholdFees>, ApiError> {
    principal.allow(&[Role::Cashier, Role::Admin])?;
    let v = state.app.store.household(&code).await?.ok_or_else(|| {
        ApiError::from(crate::domain::Rejection::not_found(
            "household",
            "household",
            code.chars().take(40).collect::<String>(),
        ))
    })?;
    // A payment here settles the bills of the company the compound is with on the business
    // date; a compound that moved leaves the household's position with a former company (what
    // it owes it, or paid it ahead) apart, out of the balance the payment works on.
    let today = state.app.clock.today();
    let company = state
        .app
        .store
        .household_company_on(&v.code, today)
        .await?
        .ok_or_else(ApiError::internal)?;
    let positions = state.app.store.household_fee_positions(&v.code).await?;
    let mut bills = Vec::new();
    for (month, amount, settled) in state.app.store.open_bills(&v.code, Some(&company)).await? {
        let open = amount.checked_sub(settled).ok_or_else(ApiError::internal)?;
        bills.push(OpenBill {
            month,
            amount,
            settled,
            open,
        });
    }
    let names = state.app.store.names().await?;
    let mut balance = v.fees_balance;
    let mut owed_elsewhere = Vec::new();
    for (other, position) in positions {
        if other == company || position == Amount::ZERO {
            continue;
        }
        let company = other;
        balance = balance
            .checked_sub(position)
            .ok_or_else(ApiError::internal)?;
        let months = state
            .app
            .store
            .open_bills(&v.code, Some(&company))
            .await?
            .into_iter()
            .map(|(month, _, _)| month)
            .collect();
        owed_elsewhere.push(OwedElsewhere {
            company_name: names.companies.get(&company).cloned(),
            company,
            balance: position,
            months,
        });
    }
    Ok(axum::Json(TillHouseholdFees {
        household: v.code,
        company_name: names.companies.get(&company).cloned(),
        company,
        balance,
        arrears: balance.max(Amount::ZERO),
        prepaid: balance
            .checked_neg()
            .ok_or_else(ApiError::internal)?
            .max(Amount::ZERO),
        bills,
        owed_elsewhere,
        as_of: today,
    }))
}

/// A numbered fee receipt, to reprint: the company's staff see their own company's; a cashier
/// or accountant those their cooperative collected; an admin any. Others get 404.
#[utoipa::path(get, path = "/v1/companies/{company}/fee-receipts/{number}", tag = "property fees",
    params(("company" = crate::openapi::Code, Path), ("number" = i64, Path, minimum = 1)),
    responses((status = 200, body = crate::fees::FeeReceiptView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn get_receipt(
    State(state): State<AppState>,
    principal: Principal,
    Path((company, number)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    principal.allow(&[
        Role::Company,
        Role::Cashier,
        Role::CoopAccountant,
        Role::Admin,
    ])?;
    let not_found = || {
        ApiError::from(crate::domain::Rejection::not_found(
            "number",
            "receipt",
            number.to_string(),
        ))
    };
    let receipt = state
        .app
        .store
        .fee_receipt(&company, number)
        .await?
        .ok_or_else(not_found)?;
    let visible = match principal.role() {
        Role::Admin => true,
        Role::Company => principal.token.company.as_deref() == Some(receipt.company.as_str()),
        Role::Cashier | Role::CoopAccountant => {
            receipt.cooperative.is_some() && principal.token.cooperative == receipt.cooperative
        }
        _ => false,
    };
    if !visible {
        return Err(not_found());
    }
    Ok(axum::Json(receipt).into_response())
}

// ---------------------------------------------------------------------------------------------
// Month close

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    /// Compute and answer 200 with what a close would do; post nothing.
    #[serde(default)]
    dry_run: bool,
    /// Only an admin names the cooperative; an accountant's token fixes it.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::Code>)]
    cooperative: Option<String>,
}

/// Close a month (合作社盈利用物业): the cooperative's profit of the month, less losses carried,
/// times the policy's share, plus the reserve carried in, is allocated toward residents'
/// property fees and posted as one entry. Only after the month has ended; a second close of the
/// same month answers the first result again and posts nothing. `dry_run` answers 200.
#[utoipa::path(post, path = "/v1/months/{month}/close", tag = "month close", request_body = CloseRequest,
    params(("month" = crate::openapi::Month, Path, example = "2026-10"),
        ("Idempotency-Key" = String, Header, description = "one per attempt")),
    responses((status = 201, body = CloseReceipt), (status = 200, description = "a dry run", body = CloseReceipt),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn post_close(
    State(state): State<AppState>,
    principal: Principal,
    Path(month): Path<String>,
    headers: HeaderMap,
    body: OptionalJson<CloseRequest>,
) -> Result<Response, ApiError> {
    principal.allow(&[Role::CoopAccountant, Role::Admin])?;
    let req = body.value;
    let command = Command::CloseMonth(CloseMonth {
        cooperative: principal.cooperative_for(req.cooperative.as_deref())?,
        month: month.clone(),
        dry_run: req.dry_run,
        estimate: false,
    });
    let status = if req.dry_run {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let route = format!("POST /v1/months/{month}/close");
    submit(
        &state,
        &principal,
        &headers,
        (&route, &body.raw),
        command,
        status,
        Key::Required,
    )
    .await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CloseQuery {
    /// Only an admin names the cooperative.
    #[param(value_type = Option<crate::openapi::Code>)]
    cooperative: Option<String>,
    /// `true`: a month not yet ended, estimated from its first day to the business date.
    estimate: Option<bool>,
}

/// What closing the month would do (a dry run), or the stored result once it is closed. With
/// `?estimate=true`, the month so far (first day to the business date), marked `estimated_to`.
#[utoipa::path(get, path = "/v1/months/{month}/close", tag = "month close",
    params(("month" = crate::openapi::Month, Path, example = "2026-10"), CloseQuery),
    responses((status = 200, body = CloseReceipt), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn get_close(
    State(state): State<AppState>,
    principal: Principal,
    Path(month): Path<String>,
    query: Result<Query<CloseQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    principal.allow(&[Role::CoopAccountant, Role::Admin])?;
    let Query(q) =
        query.map_err(|e| ApiError::bad_request("invalid_input", "query", e.body_text()))?;
    let command = Command::CloseMonth(CloseMonth {
        cooperative: principal.cooperative_for(q.cooperative.as_deref())?,
        month: month.clone(),
        dry_run: true,
        estimate: q.estimate.unwrap_or(false),
    });
    // A preview posts nothing, so it takes no Idempotency-Key (any sent is not remembered).
    let route = format!("GET /v1/months/{month}/close");
    submit(
        &state,
        &principal,
        &HeaderMap::new(),
        (&route, b""),
        command,
        StatusCode::OK,
        Key::Optional,
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Settlements

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettlementRequest {
    /// The company paid.
    #[schema(value_type = crate::openapi::Code)]
    company: String,
    /// At most what the cooperative owes the company.
    #[schema(value_type = crate::openapi::RequestAmount)]
    amount: Amount,
    /// The bank transfer's reference.
    #[schema(value_type = crate::openapi::Text100)]
    reference: String,
    /// Only an admin names the cooperative.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::Code>)]
    cooperative: Option<String>,
}

/// The cooperative pays a company, by bank transfer, what it owes for fees its profit covered.
#[utoipa::path(post, path = "/v1/settlements", tag = "month close", request_body = SettlementRequest,
    params(("Idempotency-Key" = String, Header, description = "one per attempt")),
    responses((status = 201, body = SettlementReceipt), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn post_settlement(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: ApiJson<SettlementRequest>,
) -> Result<Response, ApiError> {
    principal.allow(&[Role::CoopAccountant, Role::Admin])?;
    let req = body.value;
    let command = Command::Settle(Settlement {
        cooperative: principal.cooperative_for(req.cooperative.as_deref())?,
        company: req.company,
        amount: req.amount,
        reference: req.reference,
    });
    submit(
        &state,
        &principal,
        &headers,
        ("POST /v1/settlements", &body.raw),
        command,
        StatusCode::CREATED,
        Key::Required,
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Statement

pub const CSV_TYPE: &str = "text/csv; charset=utf-8";
pub const XLSX_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatementQuery {
    /// `json` (default), `csv` or `xlsx`.
    #[param(value_type = Option<crate::openapi::Format>)]
    format: Option<String>,
    /// The CSV's words: `zh-CN` (default, for people) or `en` (the JSON's field names).
    #[param(value_type = Option<crate::openapi::Lang>)]
    lang: Option<String>,
}

/// `statement-K01-2026-11.csv`: only characters that need no quoting in a header.
fn file_name(company: &str, month: &str, ext: &str) -> String {
    let safe: String = company
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("statement-{safe}-{month}.{ext}")
}

pub(super) fn attachment(content_type: &'static str, name: &str, body: Vec<u8>) -> Response {
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

/// A company's statement for a month (对账单): per compound and household the opening balance,
/// billed, paid, covered by the cooperative and the closing balance; the summary; what the
/// cooperative owes; the journal head. JSON, or `?format=csv` / `?format=xlsx`.
#[utoipa::path(get, path = "/v1/companies/{company}/statements/{month}", tag = "property fees",
    params(("company" = crate::openapi::Code, Path), ("month" = crate::openapi::Month, Path, example = "2026-11"), StatementQuery),
    responses((status = 200, content(
            (Statement = "application/json"),
            (String = "text/csv"),
            (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn get_statement(
    State(state): State<AppState>,
    principal: Principal,
    Path((company, month)): Path<(String, String)>,
    query: Result<Query<StatementQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::bad_request("invalid_input", "query", e.body_text()))?;
    may_read_company(&principal, &company)?;
    check_month(&month)?;
    let format = q.format.as_deref().unwrap_or("json");
    if !["json", "csv", "xlsx"].contains(&format) {
        return Err(ApiError::bad_request(
            "invalid_input",
            "format",
            "format: use json, csv or xlsx",
        ));
    }
    // Checked whatever the format, as the till report does: a bad value is refused, not ignored.
    let chinese = match q.lang.as_deref() {
        None | Some("zh-CN") => true,
        Some("en") => false,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_input",
                "lang",
                "lang: use zh-CN or en",
            ))
        }
    };
    let mut statement = state
        .app
        .store
        .statement(&company, &month)
        .await?
        .ok_or_else(|| ApiError::not_found("company"))?;
    let mut names = state.app.store.names().await?;
    statement.company_name = names.companies.remove(&statement.company);
    for c in &mut statement.compounds {
        c.name = names.compounds.get(&c.compound).cloned();
    }
    for c in &mut statement.cooperatives {
        c.cooperative_name = names.cooperatives.get(&c.cooperative).cloned();
    }
    match format {
        "csv" => {
            let body = crate::fees::statement::to_csv_in(&statement, chinese).map_err(|e| {
                tracing::error!(error = %e, "writing a statement as CSV");
                ApiError::internal()
            })?;
            Ok(attachment(
                CSV_TYPE,
                &file_name(&company, &month, "csv"),
                body,
            ))
        }
        "xlsx" => {
            // Building a workbook is CPU work: keep it off the request threads.
            let body = tokio::task::spawn_blocking(move || crate::fees::xlsx::to_xlsx(&statement))
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "the XLSX task failed");
                    ApiError::internal()
                })?
                .map_err(|e| {
                    tracing::error!(error = %e, "writing a statement as XLSX");
                    ApiError::internal()
                })?;
            Ok(attachment(
                XLSX_TYPE,
                &file_name(&company, &month, "xlsx"),
                body,
            ))
        }
        _ => Ok(axum::Json(statement).into_response()),
    }
}

// ---------------------------------------------------------------------------------------------
// Arrears by age

/// Unpaid fees by how long ago their bill's month began (`0-30`, `31-90`, `91-180`,
/// `over-180` days, as [`AGE_BUCKETS`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ArrearsByAge {
    #[serde(rename = "0-30")]
    pub days_0_30: Amount,
    #[serde(rename = "31-90")]
    pub days_31_90: Amount,
    #[serde(rename = "91-180")]
    pub days_91_180: Amount,
    #[serde(rename = "over-180")]
    pub over_180: Amount,
}

impl ArrearsByAge {
    fn slot(&mut self, bucket: usize) -> &mut Amount {
        match bucket {
            0 => &mut self.days_0_30,
            1 => &mut self.days_31_90,
            2 => &mut self.days_91_180,
            _ => &mut self.over_180,
        }
    }

    /// Adds an open amount of a bill for `month`, aged at `today`.
    fn add(&mut self, month: &str, open: Amount, today: NaiveDate) -> Result<(), ApiError> {
        let (first, _) = check_month(month)?;
        let slot = self.slot(age_bucket(first, today));
        *slot = slot.checked_add(open).ok_or_else(ApiError::internal)?;
        Ok(())
    }

    fn merge(&mut self, other: &ArrearsByAge) -> Result<(), ApiError> {
        for (bucket, a) in other.amounts().into_iter().enumerate() {
            let slot = self.slot(bucket);
            *slot = slot.checked_add(a).ok_or_else(ApiError::internal)?;
        }
        Ok(())
    }

    fn amounts(&self) -> [Amount; 4] {
        [
            self.days_0_30,
            self.days_31_90,
            self.days_91_180,
            self.over_180,
        ]
    }

    pub fn total(&self) -> Result<Amount, ApiError> {
        Amount::checked_sum(self.amounts()).ok_or_else(ApiError::internal)
    }
}

/// Ages a household's open bills `(month, amount, settled)` at `today`.
pub(super) fn arrears_by_age(
    bills: &[(String, Amount, Amount)],
    today: NaiveDate,
) -> Result<ArrearsByAge, ApiError> {
    let mut ages = ArrearsByAge::default();
    for (month, amount, settled) in bills {
        let open = amount
            .checked_sub(*settled)
            .ok_or_else(ApiError::internal)?;
        ages.add(month, open, today)?;
    }
    Ok(ages)
}

#[derive(Serialize, ToSchema)]
pub struct HouseholdArrears {
    household: String,
    /// The oldest unpaid month.
    oldest: String,
    bills: u64,
    total: Amount,
    by_age: ArrearsByAge,
}

#[derive(Serialize, ToSchema)]
pub struct ArrearsResponse {
    company: String,
    /// The business date the bills are aged at.
    as_of: NaiveDate,
    /// The bucket labels, youngest first.
    buckets: Vec<String>,
    /// Households with unpaid bills, by code.
    households: Vec<HouseholdArrears>,
    by_age: ArrearsByAge,
    total: Amount,
}

/// A company's households with unpaid bills, each with its arrears by age, and the totals per
/// age bucket.
#[utoipa::path(get, path = "/v1/companies/{company}/arrears", tag = "property fees",
    params(("company" = crate::openapi::Code, Path)),
    responses((status = 200, body = ArrearsResponse), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn get_arrears(
    State(state): State<AppState>,
    principal: Principal,
    Path(company): Path<String>,
) -> Result<axum::Json<ArrearsResponse>, ApiError> {
    may_read_company(&principal, &company)?;
    let bills = state
        .app
        .store
        .company_open_bills(&company)
        .await?
        .ok_or_else(|| ApiError::not_found("company"))?;
    let today = state.app.clock.today();
    let mut households: Vec<HouseholdArrears> = Vec::new();
    let mut by_age = ArrearsByAge::default();
    for (household, month, amount, settled) in bills {
        let open = amount.checked_sub(settled).ok_or_else(ApiError::internal)?;
        if households.last().is_none_or(|h| h.household != household) {
            households.push(HouseholdArrears {
                household,
                oldest: month.clone(),
                bills: 0,
                total: Amount::ZERO,
                by_age: ArrearsByAge::default(),
            });
        }
        if let Some(h) = households.last_mut() {
            h.bills += 1;
            h.by_age.add(&month, open, today)?;
            h.total = h.total.checked_add(open).ok_or_else(ApiError::internal)?;
        }
    }
    for h in &households {
        by_age.merge(&h.by_age)?;
    }
    Ok(axum::Json(ArrearsResponse {
        company,
        as_of: today,
        buckets: AGE_BUCKETS.iter().map(|b| b.to_string()).collect(),
        households,
        total: by_age.total()?,
        by_age,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_are_the_domain_s() {
        let v = serde_json::to_value(ArrearsByAge::default()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = AGE_BUCKETS.to_vec();
        expected.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, expected);
    }

    #[test]
    fn bills_are_aged_from_their_month() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let fen = Amount::from_fen;
        let bills = vec![
            ("2026-01".to_string(), fen(4804), fen(0)),
            ("2026-07".to_string(), fen(4804), fen(1000)),
            ("2026-09".to_string(), fen(4804), fen(0)),
            ("2026-11".to_string(), fen(4804), fen(4)),
        ];
        let ages = arrears_by_age(&bills, d("2026-11-16")).unwrap();
        assert_eq!(ages.amounts(), [fen(4800), fen(4804), fen(3804), fen(4804)]);
        assert_eq!(ages.total().unwrap(), fen(4800 + 4804 + 3804 + 4804));
        assert_eq!(
            file_name("K01", "2026-11", "csv"),
            "statement-K01-2026-11.csv"
        );
        assert_eq!(
            file_name("K\"1", "2026-11", "csv"),
            "statement-K_1-2026-11.csv"
        );
    }
}
