//! A household's balances and history: for the resident (own), a cashier (name masked), the
//! household's company, and admins. To anyone else the household does not exist (404).

use axum::extract::{Path, Query, State};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::Principal;
use super::fees::{arrears_by_age, ArrearsByAge};
use super::AppState;
use crate::domain::{Role, VoucherStatus, WalletBalance};
use crate::money::Amount;
use crate::store::HouseholdView;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_household))
        .routes(routes!(get_history))
}

#[derive(Serialize, ToSchema)]
pub struct CoopWallet {
    cooperative: String,
    paid: Amount,
    bonus: Amount,
    total: Amount,
}

#[derive(Serialize, ToSchema)]
pub struct VoucherView {
    /// The printed code: to the household itself and to admins only; `null` for cashiers and
    /// company offices.
    code: Option<String>,
    cooperative: String,
    status: VoucherStatus,
    balance: Amount,
    paid: Amount,
    bonus: Amount,
    issued_on: NaiveDate,
    expires_on: NaiveDate,
}

#[derive(Serialize, ToSchema)]
pub struct FeesView {
    /// Positive: owed; negative: paid ahead.
    balance: Amount,
    arrears: Amount,
    prepaid: Amount,
    /// Unpaid bills by how long ago their month began, at the business date.
    arrears_by_age: ArrearsByAge,
}

#[derive(Serialize, ToSchema)]
pub struct HouseholdResponse {
    household: String,
    compound: String,
    /// The compound's and the company's names, shown beside their codes.
    compound_name: Option<String>,
    company: String,
    company_name: Option<String>,
    eligible: bool,
    /// Floor area in m².
    area_m2: String,
    /// The building (楼栋) and grid (网格) it is in, where known.
    building: Option<String>,
    grid: Option<String>,
    /// Masked for cashiers.
    name: Option<String>,
    /// Credit at the caller's cooperative (a cashier's), or over all cooperatives.
    wallet: WalletBalance,
    wallets: Vec<CoopWallet>,
    vouchers: Vec<VoucherView>,
    fees: FeesView,
    /// The household's PIN as the office sees it; only for the household's company and admins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pin: Option<PinStatus>,
}

#[derive(Serialize, ToSchema)]
pub struct PinStatus {
    /// Whether a PIN is set.
    set: bool,
    /// Wrong PINs in a row since the last right one (or since it was set).
    failures: i64,
    /// Until when the PIN is refused after too many failures; `null` when it is not locked.
    locked_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// 王小明 → 王**: enough for a cashier to greet the resident, no more.
fn mask(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => std::iter::once(first).chain(chars.map(|_| '*')).collect(),
        None => String::new(),
    }
}

/// Whether this caller may see this household at all.
fn may_see(principal: &Principal, view: &HouseholdView) -> bool {
    match principal.role() {
        // The cooperative's accountant pays wallets out (credit refunds), as a till sells
        // against them: both see any household, with their own cooperative's credit only.
        Role::Admin | Role::Cashier | Role::CoopAccountant => true,
        Role::Company => principal.token.company.as_deref() == Some(view.company.as_str()),
        Role::Resident => principal.token.household.as_deref() == Some(view.code.as_str()),
        Role::Alliance => false,
    }
}

async fn visible(
    state: &AppState,
    principal: &Principal,
    code: &str,
) -> Result<HouseholdView, ApiError> {
    principal.allow(&[
        Role::Admin,
        Role::Cashier,
        Role::CoopAccountant,
        Role::Company,
        Role::Resident,
    ])?;
    principal.resident_read(state)?;
    match state.app.store.household(code).await? {
        Some(v) if may_see(principal, &v) => Ok(v),
        _ => Err(ApiError::not_found("household")),
    }
}

/// Balances of a household: wallet (paid and bonus parts), vouchers, property fees.
#[utoipa::path(get, path = "/v1/households/{household}", tag = "households",
    params(("household" = crate::openapi::Code, Path)),
    responses((status = 200, body = HouseholdResponse), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn get_household(
    State(state): State<AppState>,
    principal: Principal,
    Path(code): Path<String>,
) -> Result<axum::Json<HouseholdResponse>, ApiError> {
    let v = visible(&state, &principal, &code).await?;
    let own_coop = match principal.role() {
        Role::Cashier | Role::CoopAccountant => principal.token.cooperative.clone(),
        _ => None,
    };
    let mut wallet = WalletBalance {
        paid: Amount::ZERO,
        bonus: Amount::ZERO,
        total: Amount::ZERO,
    };
    for w in v
        .wallets
        .iter()
        .filter(|w| own_coop.as_ref().is_none_or(|c| *c == w.cooperative))
    {
        let add = |a: Amount, b: Amount| a.checked_add(b).ok_or_else(ApiError::internal);
        wallet = WalletBalance {
            paid: add(wallet.paid, w.paid)?,
            bonus: add(wallet.bonus, w.bonus)?,
            total: add(wallet.total, w.total)?,
        };
    }
    // A code is a bearer instrument: only the household itself (and an admin) may read it.
    // A company office has no part in vouchers (SPEC §10), so it sees them as a cashier does.
    let own_vouchers = matches!(principal.role(), Role::Resident | Role::Admin);
    let fees = v.fees_balance;
    let open_bills = state.app.store.open_bills(&v.code, None).await?;
    let arrears_by_age = arrears_by_age(&open_bills, state.app.clock.today())?;
    let mut names = state.app.store.names().await?;
    let pin =
        match principal.role() {
            Role::Admin | Role::Company => state
                .app
                .store
                .household_credentials(&v.code)
                .await?
                .map(|c| PinStatus {
                    set: c.pin_hash.is_some(),
                    failures: c.pin_failures,
                    locked_until: c.pin_locked_until.filter(|t| *t > chrono::Utc::now()),
                }),
            _ => None,
        };
    Ok(axum::Json(HouseholdResponse {
        household: v.code.clone(),
        compound: v.compound.clone(),
        compound_name: names.compounds.remove(&v.compound),
        company: v.company.clone(),
        company_name: names.companies.remove(&v.company),
        eligible: v.eligible,
        area_m2: format!("{}.{:02}", v.area_dm2 / 100, v.area_dm2 % 100),
        building: v.building.clone(),
        grid: v.grid.clone(),
        name: match principal.role() {
            Role::Cashier | Role::CoopAccountant => v.name.as_deref().map(mask),
            _ => v.name.clone(),
        },
        wallet,
        wallets: v
            .wallets
            .iter()
            .map(|w| CoopWallet {
                cooperative: w.cooperative.clone(),
                paid: w.paid,
                bonus: w.bonus,
                total: w.total,
            })
            .collect(),
        vouchers: v
            .vouchers
            .iter()
            .filter(|x| own_coop.as_ref().is_none_or(|c| *c == x.cooperative))
            .map(|x| VoucherView {
                code: if own_vouchers {
                    state.app.voucher_code(x)
                } else {
                    None
                },
                cooperative: x.cooperative.clone(),
                status: x.status,
                balance: x.balance,
                paid: x.paid,
                bonus: x.bonus,
                issued_on: x.issued_on,
                expires_on: x.expires_on,
            })
            .collect(),
        fees: FeesView {
            balance: fees,
            arrears: fees.max(Amount::ZERO),
            prepaid: fees.checked_neg().unwrap_or(Amount::ZERO).max(Amount::ZERO),
            arrears_by_age,
        },
        pin,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Entry id from the previous page's `next_before`.
    before: Option<i64>,
    /// 1–100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct Change {
    account: String,
    amount: Amount,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryEntry {
    entry: i64,
    kind: String,
    business_date: NaiveDate,
    memo: Option<String>,
    changes: Vec<Change>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryResponse {
    items: Vec<HistoryEntry>,
    next_before: Option<i64>,
}

/// A household's entries, newest first, paginated.
#[utoipa::path(get, path = "/v1/households/{household}/history", tag = "households",
    params(("household" = crate::openapi::Code, Path), HistoryQuery),
    responses((status = 200, body = HistoryResponse), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn get_history(
    State(state): State<AppState>,
    principal: Principal,
    Path(code): Path<String>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<HistoryResponse>, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::bad_request("invalid_input", "query", e.body_text()))?;
    visible(&state, &principal, &code).await?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_input",
            "limit",
            "limit must be 1–100",
        ));
    }
    let page = state
        .app
        .store
        .history(&code, q.before, limit)
        .await?
        .ok_or_else(|| ApiError::not_found("household"))?;
    Ok(axum::Json(HistoryResponse {
        items: page
            .items
            .into_iter()
            .map(|i| HistoryEntry {
                entry: i.entry,
                kind: i.kind,
                business_date: i.business_date,
                memo: i.memo,
                changes: i
                    .changes
                    .into_iter()
                    .map(|(account, amount)| Change { account, amount })
                    .collect(),
            })
            .collect(),
        next_before: page.next_before,
    }))
}
