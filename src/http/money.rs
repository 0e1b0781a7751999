//! The till and the back office's money: top-ups, sales, sale refunds, credit refunds,
//! expenses, stock receipts and reversals.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::{path_id, ApiJson, ClientIp, OptionalJson, Principal};
use super::resident::{check_presence, ResidentProof};
use super::{submit, AppState, Key};
use crate::domain::{
    BonusRule, Command, CreditRefundReceipt, Delivery, Expense, PayMethod, PostedReceipt,
    RefundCredit, RefundSale, Reverse, Role, Sale, SaleLine, SaleReceipt, SaleRefundReceipt,
    StockReceipt, Tender, TenderType, TopUp, TopUpReceipt, TopUpVoidReceipt, VoidTopUp,
};
use crate::money::Amount;
use crate::openapi::{Code, RequestAmount, Text100, Text200};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_topup))
        .routes(routes!(post_sale))
        .routes(routes!(post_sale_refund))
        .routes(routes!(post_topup_void))
        .routes(routes!(post_credit_refund))
        .routes(routes!(post_expense))
        .routes(routes!(post_stock_receipt))
        .routes(routes!(post_reversal))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUpRequest {
    /// Household code.
    #[schema(value_type = Code)]
    household: String,
    /// What the resident pays: whole units of 50.00.
    #[schema(value_type = RequestAmount)]
    paid: Amount,
    method: PayMethod,
    #[serde(default)]
    deliver: Delivery,
    /// `allowed`: past the monthly bonus cap, take the top-up with the bonus the cap still
    /// allows (possibly none). Default `full`: past the cap the top-up is refused.
    #[serde(default)]
    bonus: BonusRule,
    /// Only an admin names the shop; a cashier's token fixes it.
    #[serde(default)]
    #[schema(value_type = Option<Code>)]
    shop: Option<String>,
}

/// Top up credit under 居民购物50元换55元: pay 100.00, get 110.00.
#[utoipa::path(post, path = "/v1/topups", tag = "till", request_body = TopUpRequest,
    params(("Idempotency-Key" = String, Header, description = "one per attempt")),
    responses((status = 201, body = TopUpReceipt), (status = 422, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
async fn post_topup(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: ApiJson<TopUpRequest>,
) -> Result<Response, ApiError> {
    principal.allow(&[Role::Cashier, Role::Admin])?;
    let req = body.value;
    let command = Command::TopUp(TopUp {
        shop: principal.shop_for(req.shop.as_deref())?,
        household: req.household,
        paid: req.paid,
        method: req.method,
        deliver: req.deliver,
        bonus: req.bonus,
    });
    submit(
        &state,
        &principal,
        &headers,
        ("POST /v1/topups", &body.raw),
        command,
        StatusCode::CREATED,
        Key::Required,
    )
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaleRequest {
    /// Needed for a wallet tender; optional for cash and vouchers.
    #[serde(default)]
    #[schema(value_type = Option<Code>)]
    household: Option<String>,
    /// Catalogue lines, or else `amount`.
    #[serde(default)]
    lines: Vec<SaleLine>,
    #[serde(default)]
    #[schema(value_type = Option<RequestAmount>)]
    amount: Option<Amount>,
    tenders: Vec<Tender>,
    /// Only an admin names the shop; a cashier's token fixes it.
    #[serde(default)]
    #[schema(value_type = Option<Code>)]
    shop: Option<String>,
    /// The resident's presence, needed when the wallet tenders exceed the policy's
    /// `resident_factor_over` (0.00 by default: any wallet spending).
    #[serde(default)]
    resident: Option<ResidentProof>,
}

/// The request's bytes without its `resident` proof, for the idempotency fingerprint: a PIN is
/// not kept in any form, and the same sale proved another way is the same sale.
fn without_proof(raw: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(raw) {
        Ok(serde_json::Value::Object(mut map)) if map.contains_key("resident") => {
            map.remove("resident");
            serde_json::to_vec(&map).unwrap_or_default()
        }
        _ => raw.to_vec(),
    }
}

/// Sell by catalogue lines or by amount, paid by wallet, voucher, cash, WeChat or Alipay.
#[utoipa::path(post, path = "/v1/sales", tag = "till", request_body = SaleRequest,
    params(("Idempotency-Key" = String, Header, description = "one per attempt")),
    responses((status = 201, body = SaleReceipt),
        (status = 422, body = Problem, description = "invalid input; `resident_required` or `resident_proof_failed` when the wallet is spent without the resident's card or PIN"),
        (status = 429, body = Problem)),
    security(("bearer" = [])))]
async fn post_sale(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: ApiJson<SaleRequest>,
) -> Result<Response, ApiError> {
    principal.allow(&[Role::Cashier, Role::Admin])?;
    let req = body.value;
    if req.tenders.iter().any(|t| t.kind == TenderType::Voucher) {
        // Redeeming is a way to probe codes too.
        state.limits.voucher(principal.id(), ip)?;
    }
    let mut from_wallet = Amount::ZERO;
    for t in req.tenders.iter().filter(|t| t.kind == TenderType::Wallet) {
        from_wallet = from_wallet.checked_add(t.amount).ok_or_else(|| {
            ApiError::bad_request("invalid_amount", "tenders", "tenders: the amounts overflow")
        })?;
    }
    let today = state.app.clock.today();
    let free = state
        .app
        .policies
        .topup(today)
        .map_or(Amount::ZERO, |p| p.rules.resident_factor_over);
    if from_wallet > free {
        if let Some(household) = req.household.as_deref() {
            check_presence(&state, ip, household, req.resident.as_ref()).await?;
        }
        // Without a household the engine refuses the wallet tender itself.
    }
    let command = Command::Sale(Sale {
        shop: principal.shop_for(req.shop.as_deref())?,
        household: req.household,
        lines: req.lines,
        amount: req.amount,
        tenders: req.tenders,
    });
    submit(
        &state,
        &principal,
        &headers,
        ("POST /v1/sales", &without_proof(&body.raw)),
        command,
        StatusCode::CREATED,
        Key::Required,
    )
    .await
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// Omit to refund everything not yet refunded.
    #[serde(default)]
    #[schema(value_type = Option<RequestAmount>)]
    amount: Option<Amount>,
}

/// Refund a sale, whole or in part; each tender gets back its share.
#[utoipa::path(post, path = "/v1/sales/{sale}/refunds", tag = "till", request_body = RefundRequest,
    params(("sale" = i64, Path), ("Idempotency-Key" = String, Header, description = "one per attempt")),
    responses((status = 201, body = SaleRefundReceipt), (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
async fn post_sale_refund(
    State(state): State<AppState>,
    principal: Principal,
    Path(sale): Path<String>,
    headers: HeaderMap,
    body: OptionalJson<RefundRequest>,
) -> Result<Response, ApiError> {
    principal.allow(&[Role::Cashier, Role::CoopAccountant, Role::Admin])?;
    let sale = path_id("sale", &sale)?;
    let (shop, cooperative) = match principal.role() {
        Role::Cashier => (principal.token.shop.clone(), None),
        Role::CoopAccountant => (None, principal.token.cooperative.clone()),
        _ => (None, None),
    };
    let command = Command::RefundSale(RefundSale {
        sale,
        shop,
        cooperative,
        amount: body.value.amount,
    });
    let route = format!("POST /v1/sales/{sale}/refunds");
    submit(
        &state,
        &principal,
        &headers,
        (&route, &body.raw),
        command,
        StatusCode::CREATED,
        Key::Required,
    )
    .await
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TopUpVoidRequest {
    /// Why (kept in the void entry's hashed memo).
    #[serde(default)]
    #[schema(value_type = Option<Text200>)]
    memo: Option<String>,
}

/// Void (作废) a top-up, named by its receipt's `entry`, while none of its credit was used: the
/// paid part goes back by the method it was paid with, the bonus is withdrawn, a voucher
/// top-up's voucher is void, and the month's bonus room is given back. A cashier voids only
/// their shop's top-ups of the business day; an accountant their cooperative's, any day.
/// Refused (409 `not_voidable`, field `topup`) when it was voided already, when credit was
/// drawn from the wallet after it (refund what is left instead: a credit refund), or when its
/// voucher was used.
#[utoipa::path(post, path = "/v1/topups/{topup}/void", tag = "till", request_body = TopUpVoidRequest,
    params(("topup" = i64, Path, description = "the top-up's entry, as its receipt names it"),
        ("Idempotency-Key" = String, Header, description = "one per attempt")),
    responses((status = 201, body = TopUpVoidReceipt), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
async fn post_topup_void(
    State(state): State<AppState>,
    principal: Principal,
    Path(topup): Path<String>,
    headers: HeaderMap,
    body: OptionalJson<TopUpVoidRequest>,
) -> Result<Response, ApiError> {
    principal.allow(&[Role::Cashier, Role::CoopAccountant, Role::Admin])?;
    let topup = path_id("topup", &topup)?;
    let (shop, cooperative) = match principal.role() {
        Role::Cashier => (principal.token.shop.clone(), None),
        Role::CoopAccountant => (None, principal.token.cooperative.clone()),
        _ => (None, None),
    };
    if principal.role() != Role::Admin && shop.is_none() && cooperative.is_none() {
        return Err(crate::domain::Rejection::Forbidden.into());
    }
    let command = Command::VoidTopUp(VoidTopUp {
        topup,
        shop,
        cooperative,
        memo: body.value.memo.clone(),
    });
    let route = format!("POST /v1/topups/{topup}/void");
    submit(
        &state,
        &principal,
        &headers,
        (&route, &body.raw),
        command,
        StatusCode::CREATED,
        Key::Required,
    )
    .await
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CreditRefundRequest {
    /// How the paid part is handed back (default cash).
    #[serde(default)]
    method: Option<PayMethod>,
    /// Paid credit to pay out (a partial cash-out; the bonus is forfeited in proportion).
    /// Absent: the whole wallet.
    #[serde(default)]
    #[schema(value_type = Option<RequestAmount>)]
    amount: Option<Amount>,
    /// Only an admin names it; an accountant's token fixes it.
    #[serde(default)]
    #[schema(value_type = Option<Code>)]
    cooperative: Option<String>,
}

/// Cash out a household's unused credit: the paid part back (all of it, or `amount`), the
/// bonus forfeited (all of it, or in proportion).
#[utoipa::path(post, path = "/v1/households/{household}/credit-refunds", tag = "back office",
    request_body = CreditRefundRequest,
    params(("household" = crate::openapi::Code, Path), ("Idempotency-Key" = String, Header, description = "one per attempt")),
    responses((status = 201, body = CreditRefundReceipt), (status = 409, body = Problem)),
    security(("bearer" = [])))]
async fn post_credit_refund(
    State(state): State<AppState>,
    principal: Principal,
    Path(household): Path<String>,
    headers: HeaderMap,
    body: OptionalJson<CreditRefundRequest>,
) -> Result<Response, ApiError> {
    principal.allow(&[Role::CoopAccountant, Role::Admin])?;
    let req = body.value;
    let command = Command::RefundCredit(RefundCredit {
        cooperative: principal.cooperative_for(req.cooperative.as_deref())?,
        household: household.clone(),
        method: req.method.unwrap_or(PayMethod::Cash),
        amount: req.amount,
    });
    let route = format!("POST /v1/households/{household}/credit-refunds");
    submit(
        &state,
        &principal,
        &headers,
        (&route, &body.raw),
        command,
        StatusCode::CREATED,
        Key::Required,
    )
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpenseRequest {
    /// e.g. rent, wages, spoilage, utilities: 1–32 lowercase letters, digits or '_'.
    #[schema(pattern = "^[a-z0-9_]{1,32}$")]
    category: String,
    #[schema(value_type = RequestAmount)]
    amount: Amount,
    /// The day it was incurred.
    date: NaiveDate,
    #[serde(default)]
    #[schema(value_type = Option<Text200>)]
    memo: Option<String>,
    #[serde(default)]
    method: Option<PayMethod>,
    /// Only an admin names it; an accountant's token fixes it.
    #[serde(default)]
    #[schema(value_type = Option<Code>)]
    cooperative: Option<String>,
}

/// Record an expense of the cooperative.
#[utoipa::path(post, path = "/v1/expenses", tag = "back office", request_body = ExpenseRequest,
    params(("Idempotency-Key" = String, Header, description = "one per attempt")),
    responses((status = 201, body = PostedReceipt), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn post_expense(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: ApiJson<ExpenseRequest>,
) -> Result<Response, ApiError> {
    principal.allow(&[Role::CoopAccountant, Role::Admin])?;
    let req = body.value;
    let command = Command::Expense(Expense {
        cooperative: principal.cooperative_for(req.cooperative.as_deref())?,
        category: req.category,
        amount: req.amount,
        date: req.date,
        memo: req.memo,
        method: req.method.unwrap_or(PayMethod::Cash),
    });
    submit(
        &state,
        &principal,
        &headers,
        ("POST /v1/expenses", &body.raw),
        command,
        StatusCode::CREATED,
        Key::Required,
    )
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockReceiptRequest {
    #[schema(value_type = RequestAmount)]
    amount: Amount,
    #[serde(default)]
    #[schema(value_type = Option<Text100>)]
    supplier: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Text200>)]
    memo: Option<String>,
    #[serde(default)]
    method: Option<PayMethod>,
    /// Only an admin names it; an accountant's token fixes it.
    #[serde(default)]
    #[schema(value_type = Option<Code>)]
    cooperative: Option<String>,
}

/// Record goods bought into stock.
#[utoipa::path(post, path = "/v1/stock-receipts", tag = "back office", request_body = StockReceiptRequest,
    params(("Idempotency-Key" = String, Header, description = "one per attempt")),
    responses((status = 201, body = PostedReceipt), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn post_stock_receipt(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: ApiJson<StockReceiptRequest>,
) -> Result<Response, ApiError> {
    principal.allow(&[Role::CoopAccountant, Role::Admin])?;
    let req = body.value;
    let command = Command::StockReceipt(StockReceipt {
        cooperative: principal.cooperative_for(req.cooperative.as_deref())?,
        amount: req.amount,
        supplier: req.supplier,
        memo: req.memo,
        method: req.method.unwrap_or(PayMethod::Cash),
    });
    submit(
        &state,
        &principal,
        &headers,
        ("POST /v1/stock-receipts", &body.raw),
        command,
        StatusCode::CREATED,
        Key::Required,
    )
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReversalRequest {
    /// Why the entry is reversed.
    #[schema(value_type = Text200)]
    memo: String,
}

/// Reverse an expense or stock receipt posted in error (entries are never edited).
#[utoipa::path(post, path = "/v1/entries/{entry}/reversal", tag = "back office", request_body = ReversalRequest,
    params(("entry" = i64, Path), ("Idempotency-Key" = String, Header, description = "one per attempt")),
    responses((status = 201, body = PostedReceipt), (status = 409, body = Problem)),
    security(("bearer" = [])))]
async fn post_reversal(
    State(state): State<AppState>,
    principal: Principal,
    Path(entry): Path<String>,
    headers: HeaderMap,
    body: ApiJson<ReversalRequest>,
) -> Result<Response, ApiError> {
    // Reversals cross cooperatives' books only through an admin.
    principal.allow(&[Role::Admin])?;
    let entry = path_id("entry", &entry)?;
    let command = Command::Reverse(Reverse {
        entry,
        memo: body.value.memo,
    });
    let route = format!("POST /v1/entries/{entry}/reversal");
    submit(
        &state,
        &principal,
        &headers,
        (&route, &body.raw),
        command,
        StatusCode::CREATED,
        Key::Required,
    )
    .await
}
