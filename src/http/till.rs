//! What the till page reads besides balances: the preview of a top-up under the policy in
//! force, computed by the same function as the top-up itself but posting nothing, and the
//! catalogue the till sells from, and the top-ups the till took today (to void a mistaken one).

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
use crate::domain::{
    amount_within_ceiling, business_date, month_of, price_line, top_up_terms, BonusRule, Delivery,
    PayMethod, Rejection, Role, TopUpFacts,
};
use crate::money::Amount;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_topup_quote))
        .routes(routes!(get_catalog))
        .routes(routes!(get_line_price))
        .routes(routes!(get_till_topups))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QuoteQuery {
    /// Household code.
    #[param(value_type = crate::openapi::Code)]
    household: String,
    /// What the resident would pay, e.g. `100.00`.
    #[param(value_type = crate::openapi::RequestAmount)]
    paid: String,
    /// Default cash.
    #[serde(default)]
    method: Option<PayMethod>,
    /// Default wallet.
    #[serde(default)]
    deliver: Option<Delivery>,
    /// Default `full` (refused past the monthly bonus cap); `allowed`: the bonus the cap allows.
    #[serde(default)]
    bonus: Option<BonusRule>,
    /// Only an admin names the shop; a cashier's token fixes it.
    #[serde(default)]
    #[param(value_type = Option<crate::openapi::Code>)]
    shop: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TopUpQuote {
    household: String,
    paid: Amount,
    bonus: Amount,
    /// paid + bonus: what the wallet or the voucher would be credited.
    credited: Amount,
    method: PayMethod,
    deliver: Delivery,
    /// The household's wallet at the shop's cooperative now.
    wallet: Amount,
    /// The wallet after the top-up (unchanged when delivered as a voucher).
    wallet_after: Amount,
    /// Bonus already granted this month, and what the monthly cap still allows after this.
    bonus_this_month: Amount,
    bonus_room_after: Amount,
    /// True when the monthly cap makes the bonus smaller than the policy's rate would
    /// (only asked with `bonus=allowed`): the till says so before the resident pays.
    bonus_capped: bool,
    /// `id@version` of the policy that would apply.
    policy: String,
    business_date: NaiveDate,
}

/// Preview a top-up: what paying `paid` would credit today, or the refusal (with its code and
/// field) that the top-up itself would give. Nothing is posted.
#[utoipa::path(get, path = "/v1/topups/quote", tag = "till", params(QuoteQuery),
    responses((status = 200, body = TopUpQuote), (status = 422, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
async fn get_topup_quote(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<QuoteQuery>, QueryRejection>,
) -> Result<axum::Json<TopUpQuote>, ApiError> {
    principal.allow(&[Role::Cashier, Role::Admin])?;
    let Query(q) =
        query.map_err(|e| ApiError::bad_request("invalid_input", "query", e.body_text()))?;
    // Written exactly as the top-up's body takes it (no spaces around it): the quote refuses
    // what the top-up would.
    let paid = Amount::parse(&q.paid).map_err(|e| Rejection::bad_amount("paid", e.to_string()))?;
    let shop = principal.shop_for(q.shop.as_deref())?;
    let cooperative = match principal.role() {
        Role::Cashier => principal.token.cooperative.clone(),
        _ => state
            .app
            .store
            .shops()
            .await?
            .into_iter()
            .find(|s| s.code == shop)
            .map(|s| s.cooperative),
    }
    .ok_or_else(|| Rejection::not_found("shop", "shop", &shop))?;
    let household = state
        .app
        .store
        .household(&q.household)
        .await?
        .ok_or_else(|| Rejection::not_found("household", "household", &q.household))?;
    // The date the top-up would be given, not the clock's alone: the journal never runs back.
    let journal = state.app.store.head().await?.business_date;
    let today = business_date(journal, state.app.clock.today());
    let policy = state
        .app
        .policies
        .topup(today)
        .ok_or_else(|| Rejection::NoPolicy {
            kind: "top-up".into(),
            date: today,
        })?;
    let bonus_this_month = state
        .app
        .store
        .bonus_in_month(&household.code, &month_of(today))
        .await?
        .ok_or_else(|| Rejection::not_found("household", "household", &q.household))?;
    let wallet = household
        .wallets
        .iter()
        .find(|w| w.cooperative == cooperative)
        .map_or(Amount::ZERO, |w| w.total);
    amount_within_ceiling(&state.app.policies, today, "paid", paid)?;
    let method = q.method.unwrap_or(PayMethod::Cash);
    let deliver = q.deliver.unwrap_or_default();
    // The eligibility in force on the day of the top-up, as the top-up itself reads it.
    let eligible = state
        .app
        .store
        .eligible_on(&household.code, today)
        .await?
        .unwrap_or(household.eligible);
    let terms = top_up_terms(
        policy,
        paid,
        method,
        deliver,
        q.bonus.unwrap_or_default(),
        &TopUpFacts {
            household: &household.code,
            compound: &household.compound,
            compound_eligible: eligible,
            bonus_this_month,
            wallet_total: wallet,
        },
    )?;
    let overflow = || Rejection::bad_amount("paid", "is too large");
    let wallet_after = match deliver {
        Delivery::Wallet => wallet.checked_add(terms.credited).ok_or_else(overflow)?,
        Delivery::Voucher => wallet,
    };
    let granted = bonus_this_month
        .checked_add(terms.bonus)
        .ok_or_else(overflow)?;
    Ok(axum::Json(TopUpQuote {
        household: household.code,
        paid,
        bonus: terms.bonus,
        credited: terms.credited,
        method,
        deliver,
        wallet,
        wallet_after,
        bonus_this_month,
        bonus_room_after: policy.rules.bonus_room(granted),
        bonus_capped: terms.capped,
        policy: policy.reference.to_string(),
        business_date: today,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CatalogQuery {
    /// Only an admin names the cooperative; a cashier's token fixes it.
    #[serde(default)]
    #[param(value_type = Option<crate::openapi::Code>)]
    cooperative: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CatalogLine {
    sku: String,
    name: String,
    /// e.g. 斤, 个, 袋.
    unit: String,
    /// Price per unit.
    price: Amount,
    /// The name's pinyin initials (大白菜 → `dbc`), for finding the item by typing.
    initials: String,
    /// The printed product barcode the till's scanner reads, where the item has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    barcode: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CatalogResponse {
    cooperative: String,
    /// By SKU; at most 5,000.
    items: Vec<CatalogLine>,
}

/// The catalogue a till sells from: SKU, name, unit and price (costs stay in the back office).
#[utoipa::path(get, path = "/v1/catalog", tag = "till", params(CatalogQuery),
    responses((status = 200, body = CatalogResponse), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn get_catalog(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<CatalogQuery>, QueryRejection>,
) -> Result<axum::Json<CatalogResponse>, ApiError> {
    principal.allow(&[Role::Cashier, Role::Admin])?;
    let Query(q) =
        query.map_err(|e| ApiError::bad_request("invalid_input", "query", e.body_text()))?;
    let cooperative = catalog_cooperative(&principal, q.cooperative)?;
    let items = state
        .app
        .store
        .catalog(&cooperative)
        .await?
        .ok_or_else(|| Rejection::not_found("cooperative", "cooperative", &cooperative))?;
    Ok(axum::Json(CatalogResponse {
        cooperative,
        items: items
            .into_iter()
            .map(|i| CatalogLine {
                initials: crate::domain::pinyin_initials(&i.name),
                sku: i.sku,
                name: i.name,
                unit: i.unit,
                price: i.price,
                barcode: i.barcode,
            })
            .collect(),
    }))
}

/// The cooperative whose catalogue the caller reads: a cashier's own; an admin names one.
fn catalog_cooperative(principal: &Principal, asked: Option<String>) -> Result<String, ApiError> {
    let own = principal.token.cooperative.clone();
    match (principal.role(), asked) {
        (Role::Cashier, None) => own.ok_or_else(ApiError::forbidden),
        (Role::Cashier, Some(c)) if own.as_deref() == Some(c.as_str()) => Ok(c),
        (Role::Cashier, Some(_)) => Err(ApiError::forbidden()),
        (_, Some(c)) => Ok(c),
        (_, None) => Err(ApiError::bad_request(
            "invalid_input",
            "cooperative",
            "cooperative: an admin names the cooperative",
        )),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinePriceQuery {
    #[param(value_type = crate::openapi::Code)]
    sku: String,
    /// Up to three decimals, e.g. `1.5` (斤).
    #[param(value_type = crate::openapi::Quantity)]
    qty: String,
    /// Only an admin names the cooperative.
    #[serde(default)]
    #[param(value_type = Option<crate::openapi::Code>)]
    cooperative: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LinePrice {
    sku: String,
    name: String,
    unit: String,
    price: Amount,
    /// As the sale will record it.
    qty: String,
    /// price × qty, rounded once half-up: what this line adds to a sale.
    amount: Amount,
}

/// Price one catalogue line exactly as a sale will, so the till can show a basket's total
/// before it is paid for. Nothing is posted.
#[utoipa::path(get, path = "/v1/catalog/price", tag = "till", params(LinePriceQuery),
    responses((status = 200, body = LinePrice), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn get_line_price(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<LinePriceQuery>, QueryRejection>,
) -> Result<axum::Json<LinePrice>, ApiError> {
    principal.allow(&[Role::Cashier, Role::Admin])?;
    let Query(q) =
        query.map_err(|e| ApiError::bad_request("invalid_input", "query", e.body_text()))?;
    let cooperative = catalog_cooperative(&principal, q.cooperative)?;
    // As a sale's line takes it: no spaces around it.
    let qty = crate::money::parse_plain_decimal(&q.qty)
        .ok_or_else(|| Rejection::invalid("qty", "a quantity such as 1 or 1.5"))?;
    let item = state
        .app
        .store
        .catalog(&cooperative)
        .await?
        .ok_or_else(|| Rejection::not_found("cooperative", "cooperative", &cooperative))?
        .into_iter()
        .find(|i| i.sku == q.sku)
        .ok_or_else(|| Rejection::not_found("sku", "catalogue item", &q.sku))?;
    let line = price_line(0, &item, qty).map_err(|r| match r {
        Rejection::InvalidInput { reason, .. } => Rejection::invalid("qty", reason),
        other => other,
    })?;
    Ok(axum::Json(LinePrice {
        sku: item.sku,
        name: item.name,
        unit: item.unit,
        price: item.price,
        qty: line.qty,
        amount: line.amount,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TillTopUpsQuery {
    /// Business date (default: the business day the till is taking).
    date: Option<NaiveDate>,
    /// Only an admin names the shop; a cashier's token fixes it.
    #[param(value_type = Option<crate::openapi::Code>)]
    shop: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TillTopUps {
    shop: String,
    date: NaiveDate,
    /// Newest first, voided ones included and marked.
    topups: Vec<crate::store::ShopTopUp>,
}

/// The top-ups a shop's till took on a business date (default today), newest first: receipt
/// (entry) number, household code, wallet or voucher, method, paid, bonus, time, and whether it
/// was voided: what the till lists to void a mistaken one (`POST /v1/topups/{topup}/void`). A
/// cashier sees only its own shop's; no personal data beyond the household code, and no
/// voucher code.
#[utoipa::path(get, path = "/v1/till/topups", tag = "till", params(TillTopUpsQuery),
    responses((status = 200, body = TillTopUps), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn get_till_topups(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<TillTopUpsQuery>, QueryRejection>,
) -> Result<axum::Json<TillTopUps>, ApiError> {
    principal.allow(&[Role::Cashier, Role::Admin])?;
    let Query(q) =
        query.map_err(|e| ApiError::bad_request("invalid_input", "query", e.body_text()))?;
    let shop = principal.shop_for(q.shop.as_deref())?;
    let date = match q.date {
        Some(d) => d,
        None => {
            let journal = state.app.store.head().await?.business_date;
            business_date(journal, state.app.clock.today())
        }
    };
    let topups = state
        .app
        .store
        .shop_topups(&shop, date)
        .await?
        .ok_or_else(|| Rejection::not_found("shop", "shop", &shop))?;
    Ok(axum::Json(TillTopUps { shop, date, topups }))
}
