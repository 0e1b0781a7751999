//! A household's move-out (搬离/换户), one request for the whole change of occupant.
//!
//! Who does what: the company's office runs move-outs of its own households where the wallets
//! go to the new occupant (`wallet: transfer`: no money moves); a cash-out takes money out of a
//! cooperative's till, so only that cooperative's accountant (or an admin) runs the move-out
//! with `wallet: cash_out`. Either way the household's fees must be settled, or the request
//! says `fees: carry` and the arrears stay on the household for the company to pursue.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::{ApiJson, Principal};
use super::{submit, AppState, Key};
use crate::domain::{
    Command, FeesOnMoveOut, MoveOut, MoveOutReceipt, PayMethod, Role, WalletDisposition,
};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_move_out))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveOutRequest {
    /// `transfer`: the wallets stay with the household for the new occupant (both agreed; the
    /// company's office may do it). `cash_out`: every wallet's paid credit is handed back and
    /// its bonus forfeited (the cooperative's accountant or an admin).
    wallet: WalletDisposition,
    /// The new occupant's name; absent: none recorded.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::Text50>)]
    new_occupant: Option<String>,
    /// How a cash-out is handed over (default cash).
    #[serde(default)]
    method: Option<PayMethod>,
    /// `settled` (default): refused while the household owes fees (`arrears_outstanding`).
    /// `carry`: the arrears stay on the household for the company to pursue.
    #[serde(default)]
    fees: FeesOnMoveOut,
    /// Only an admin names it, to pay a cash-out from one cooperative only; an accountant's
    /// token fixes it.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::Code>)]
    cooperative: Option<String>,
}

/// Move a household's occupant out: wallets cashed out or transferred, fees settled or
/// carried, the new occupant's name recorded, the card's link rotated and the PIN cleared.
#[utoipa::path(post, path = "/v1/households/{household}/move-out", tag = "households",
    request_body = MoveOutRequest,
    params(("household" = crate::openapi::Code, Path), ("Idempotency-Key" = String, Header, description = "one per attempt")),
    responses((status = 201, body = MoveOutReceipt), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn post_move_out(
    State(state): State<AppState>,
    principal: Principal,
    Path(household): Path<String>,
    headers: HeaderMap,
    body: ApiJson<MoveOutRequest>,
) -> Result<Response, ApiError> {
    principal.allow(&[Role::Company, Role::CoopAccountant, Role::Admin])?;
    let req = body.value;
    let (company, cooperative) = match (principal.role(), req.wallet) {
        (Role::Company, WalletDisposition::Transfer) if req.cooperative.is_none() => {
            (principal.token.company.clone(), None)
        }
        (Role::Company, WalletDisposition::CashOut) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "a cash-out pays money out of a cooperative: its accountant runs this move-out",
            )
            .with_field("wallet"))
        }
        (Role::CoopAccountant, WalletDisposition::CashOut) => (
            None,
            Some(principal.cooperative_for(req.cooperative.as_deref())?),
        ),
        (Role::CoopAccountant, WalletDisposition::Transfer) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "a transfer to the new occupant is the company office's move-out",
            )
            .with_field("wallet"))
        }
        (Role::Admin, _) => (None, req.cooperative.clone()),
        _ => return Err(ApiError::forbidden()),
    };
    let command = Command::MoveOut(MoveOut {
        household: household.clone(),
        new_occupant: req.new_occupant,
        wallet: req.wallet,
        method: req.method.unwrap_or(PayMethod::Cash),
        fees: req.fees,
        cooperative,
        company,
    });
    let route = format!("POST /v1/households/{household}/move-out");
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
