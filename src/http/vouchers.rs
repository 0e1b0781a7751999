//! Voucher lookups for the till (one uniform answer for every unusable code), QR codes, and
//! voiding by the cooperative's accountant.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::{ClientIp, OptionalJson, Principal};
use super::{submit, AppState, Key};
use crate::domain::{
    Command, CreditRefundReceipt, ExchangeReceipt, ExchangeVoucher, PayMethod, Role, VoidVoucher,
    VoucherStatus,
};
use crate::money::Amount;
use crate::store::VoucherRow;
use crate::voucher::{qr_svg, VoucherCode, VoucherCodeError};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_voucher))
        .routes(routes!(get_voucher_qr))
        .routes(routes!(post_void))
        .routes(routes!(post_exchange))
}

#[derive(Serialize, ToSchema)]
pub struct VoucherStatusView {
    status: VoucherStatus,
    balance: Amount,
    paid: Amount,
    bonus: Amount,
    expires_on: NaiveDate,
    /// An expired voucher with credit left: the till offers to exchange it (换新券). Only
    /// such a voucher is answered with `status = expired`; other dead codes stay `voucher_invalid`.
    exchangeable: bool,
}

/// The one answer for unknown, forged, spent, void and expired codes alike.
fn invalid() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "voucher_invalid",
        "voucher not valid",
    )
    .with_field("code")
}

fn typo() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "voucher_typo",
        "the check character does not match; the code was probably mistyped",
    )
    .with_field("code")
}

/// A usable voucher for this caller, or the uniform refusal.
async fn usable(
    state: &AppState,
    principal: &Principal,
    code: &str,
) -> Result<VoucherRow, ApiError> {
    let found = match state.app.voucher_lookup(code).await? {
        Err(VoucherCodeError::Typo) => return Err(typo()),
        Err(_) | Ok(None) => return Err(invalid()),
        Ok(Some(v)) => v,
    };
    let visible = match principal.role() {
        Role::Admin => true,
        Role::Cashier | Role::CoopAccountant => {
            principal.token.cooperative.as_deref() == Some(found.cooperative.as_str())
        }
        Role::Resident => found.household.is_some() && found.household == principal.token.household,
        Role::Company | Role::Alliance => false,
    };
    if visible {
        Ok(found)
    } else {
        Err(invalid())
    }
}

/// A genuine code of the caller's cooperative whose voucher has expired with credit left: what
/// the till may exchange. One already exchanged is refused with `voucher_exchanged` (as a sale
/// tender is); anything else stays the uniform refusal.
async fn exchangeable(
    state: &AppState,
    principal: &Principal,
    code: &str,
) -> Result<Option<VoucherRow>, ApiError> {
    let Ok(c) = VoucherCode::verify(&state.app.keys.vouchers, code) else {
        return Ok(None);
    };
    let Some(v) = state.app.store.voucher(c.serial()).await? else {
        return Ok(None);
    };
    let own = principal.role() == Role::Admin
        || principal.token.cooperative.as_deref() == Some(v.cooperative.as_str());
    if own && v.status == VoucherStatus::Exchanged {
        // As a sale tender answers it: a genuine code tells its holder to use the new one.
        return Err(ApiError::from(crate::domain::Rejection::VoucherExchanged {
            field: "code".into(),
        }));
    }
    let expired = v.expires_on < state.app.clock.today()
        && matches!(v.status, VoucherStatus::Active | VoucherStatus::Expired);
    Ok((own && expired && v.balance.is_positive()).then_some(v))
}

/// Check a voucher at the till. An expired voucher with credit left answers `expired` and
/// `exchangeable`; one of the caller's cooperative already exchanged `voucher_exchanged` (409);
/// every other unusable code the uniform `voucher_invalid`.
#[utoipa::path(get, path = "/v1/vouchers/{code}", tag = "till",
    params(("code" = String, Path, description = "as printed; case, hyphens and I/L/O look-alikes do not matter")),
    responses((status = 200, body = VoucherStatusView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)),
    security(("bearer" = [])))]
async fn get_voucher(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Path(code): Path<String>,
) -> Result<axum::Json<VoucherStatusView>, ApiError> {
    principal.allow(&[Role::Cashier, Role::Admin])?;
    state.limits.voucher(principal.id(), ip)?;
    let v = match usable(&state, &principal, &code).await {
        Ok(v) => v,
        Err(refused) => exchangeable(&state, &principal, &code)
            .await?
            .ok_or(refused)?,
    };
    let today = state.app.clock.today();
    let exchangeable = v.expires_on < today
        && matches!(v.status, VoucherStatus::Active | VoucherStatus::Expired)
        && v.balance.is_positive();
    Ok(axum::Json(VoucherStatusView {
        status: if exchangeable {
            VoucherStatus::Expired
        } else {
            v.status
        },
        balance: v.balance,
        paid: v.paid,
        bonus: v.bonus,
        expires_on: v.expires_on,
        exchangeable,
    }))
}

/// The voucher's QR code, for printing on a receipt or showing on a phone.
#[utoipa::path(get, path = "/v1/vouchers/{code}/qr.svg", tag = "till",
    params(("code" = String, Path)),
    responses((status = 200, content_type = "image/svg+xml", body = String), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn get_voucher_qr(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    principal.allow(&[Role::Cashier, Role::Resident, Role::Admin])?;
    state.limits.voucher(principal.id(), ip)?;
    let v = usable(&state, &principal, &code).await?;
    let printed = state.app.voucher_code(&v).ok_or_else(invalid)?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "private, no-store"),
        ],
        qr_svg(&printed),
    )
        .into_response())
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct VoidRequest {
    /// How the remaining paid part is handed back (default cash).
    #[serde(default)]
    method: Option<PayMethod>,
    #[serde(default)]
    memo: Option<String>,
}

/// Void a voucher: its remaining paid part is handed back, the bonus forfeited.
#[utoipa::path(post, path = "/v1/vouchers/{code}/void", tag = "back office", request_body = VoidRequest,
    params(("code" = String, Path), ("Idempotency-Key" = String, Header, description = "one per attempt")),
    responses((status = 200, body = CreditRefundReceipt), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn post_void(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Path(code): Path<String>,
    headers: HeaderMap,
    body: OptionalJson<VoidRequest>,
) -> Result<Response, ApiError> {
    principal.allow(&[Role::CoopAccountant, Role::Admin])?;
    // Voiding answers differently for live and dead codes: limited like a lookup.
    state.limits.voucher(principal.id(), ip)?;
    let cooperative = match principal.role() {
        Role::Admin => {
            // An admin acts in the voucher's own cooperative.
            let serial = match VoucherCode::verify(&state.app.keys.vouchers, &code) {
                Ok(c) => c.serial(),
                Err(VoucherCodeError::Typo) => return Err(typo()),
                Err(_) => return Err(invalid()),
            };
            state
                .app
                .store
                .voucher(serial)
                .await?
                .ok_or_else(invalid)?
                .cooperative
        }
        _ => principal.cooperative_for(None)?,
    };
    let req = body.value;
    let command = Command::VoidVoucher(VoidVoucher {
        code: code.clone(),
        cooperative,
        method: req.method.unwrap_or(PayMethod::Cash),
        memo: req.memo,
    });
    let route = format!("POST /v1/vouchers/{code}/void");
    submit(
        &state,
        &principal,
        &headers,
        (&route, &body.raw),
        command,
        StatusCode::OK,
        Key::Required,
    )
    .await
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ExchangeRequest {
    /// The shop whose till makes the exchange: a cashier's own (the default); an admin names it.
    #[serde(default)]
    shop: Option<String>,
}

/// Exchange an expired voucher with credit left for a new one (换新券): the new voucher carries
/// the same paid and bonus credit with a fresh validity, the old code stops working
/// (`voucher_exchanged`). Credit already taken as breakage is given back. Refused, changing
/// nothing: a voucher not yet expired or with nothing left (`voucher_not_exchangeable`), one
/// already exchanged (`voucher_exchanged`), a void or unknown code (`voucher_invalid`).
#[utoipa::path(post, path = "/v1/vouchers/{code}/exchange", tag = "till", request_body = ExchangeRequest,
    params(("code" = String, Path), ("Idempotency-Key" = String, Header, description = "one per attempt")),
    responses((status = 200, body = ExchangeReceipt), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)),
    security(("bearer" = [])))]
async fn post_exchange(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Path(code): Path<String>,
    headers: HeaderMap,
    body: OptionalJson<ExchangeRequest>,
) -> Result<Response, ApiError> {
    principal.allow(&[Role::Cashier, Role::Admin])?;
    // An exchange answers differently for live and dead codes: limited like a lookup.
    state.limits.voucher(principal.id(), ip)?;
    let shop = principal.shop_for(body.value.shop.as_deref())?;
    let command = Command::ExchangeVoucher(ExchangeVoucher {
        code: code.clone(),
        shop,
    });
    let route = format!("POST /v1/vouchers/{code}/exchange");
    submit(
        &state,
        &principal,
        &headers,
        (&route, &body.raw),
        command,
        StatusCode::OK,
        Key::Required,
    )
    .await
}
