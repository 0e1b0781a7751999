//! The alliance operator's master data, tokens and audit; the catalogue is also the
//! cooperative accountant's.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::{path_id, token_hash, ApiJson, OptionalJson, Principal};
use super::{submit, AppState, Key};
use crate::domain::{
    CatalogItemInput, Command, Created, MasterChange, MasterChangeRecord, NewCompany, NewCompound,
    NewCooperative, NewHousehold, NewShop, NewToken, Receipt, Rejection, Role, Subject,
};
use crate::ledger::{ExpectedHead, VerifyReport};
use crate::money::Amount;
use crate::store::Head;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_company))
        .routes(routes!(post_compound))
        .routes(routes!(post_cooperative))
        .routes(routes!(post_shop))
        .routes(routes!(post_household))
        .routes(routes!(post_catalog))
        .routes(routes!(post_token))
        .routes(routes!(post_token_revoke))
        .routes(routes!(post_master_change, get_master_changes))
        .routes(routes!(get_audit_head))
        .routes(routes!(get_audit_verify))
}

async fn create(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    route: &str,
    raw: &[u8],
    command: Command,
) -> Result<Response, ApiError> {
    principal.allow(&[Role::Admin])?;
    submit(
        state,
        principal,
        headers,
        (route, raw),
        command,
        StatusCode::CREATED,
        Key::Optional,
    )
    .await
}

/// Add a property company.
#[utoipa::path(post, path = "/v1/companies", tag = "master data", request_body = NewCompany,
    responses((status = 201, body = Created), (status = 409, body = Problem)), security(("bearer" = [])))]
async fn post_company(
    State(s): State<AppState>,
    p: Principal,
    h: HeaderMap,
    b: ApiJson<NewCompany>,
) -> Result<Response, ApiError> {
    create(
        &s,
        &p,
        &h,
        "POST /v1/companies",
        &b.raw,
        Command::CreateCompany(b.value),
    )
    .await
}

/// Add a residential compound (小区) to a company; `eligible` marks the programme's formerly unmanaged compounds.
#[utoipa::path(post, path = "/v1/compounds", tag = "master data", request_body = NewCompound,
    responses((status = 201, body = Created), (status = 409, body = Problem)), security(("bearer" = [])))]
async fn post_compound(
    State(s): State<AppState>,
    p: Principal,
    h: HeaderMap,
    b: ApiJson<NewCompound>,
) -> Result<Response, ApiError> {
    create(
        &s,
        &p,
        &h,
        "POST /v1/compounds",
        &b.raw,
        Command::CreateCompound(b.value),
    )
    .await
}

/// Add a farm cooperative (合作社).
#[utoipa::path(post, path = "/v1/cooperatives", tag = "master data", request_body = NewCooperative,
    responses((status = 201, body = Created), (status = 409, body = Problem)), security(("bearer" = [])))]
async fn post_cooperative(
    State(s): State<AppState>,
    p: Principal,
    h: HeaderMap,
    b: ApiJson<NewCooperative>,
) -> Result<Response, ApiError> {
    create(
        &s,
        &p,
        &h,
        "POST /v1/cooperatives",
        &b.raw,
        Command::CreateCooperative(b.value),
    )
    .await
}

/// Add a shop of a cooperative.
#[utoipa::path(post, path = "/v1/shops", tag = "master data", request_body = NewShop,
    responses((status = 201, body = Created), (status = 409, body = Problem)), security(("bearer" = [])))]
async fn post_shop(
    State(s): State<AppState>,
    p: Principal,
    h: HeaderMap,
    b: ApiJson<NewShop>,
) -> Result<Response, ApiError> {
    create(
        &s,
        &p,
        &h,
        "POST /v1/shops",
        &b.raw,
        Command::CreateShop(b.value),
    )
    .await
}

/// Add a household to a compound.
#[utoipa::path(post, path = "/v1/households", tag = "master data", request_body = NewHousehold,
    responses((status = 201, body = Created), (status = 409, body = Problem)), security(("bearer" = [])))]
async fn post_household(
    State(s): State<AppState>,
    p: Principal,
    h: HeaderMap,
    b: ApiJson<NewHousehold>,
) -> Result<Response, ApiError> {
    create(
        &s,
        &p,
        &h,
        "POST /v1/households",
        &b.raw,
        Command::CreateHousehold(b.value),
    )
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogRequest {
    #[schema(value_type = crate::openapi::Code)]
    sku: String,
    #[schema(value_type = crate::openapi::Text100)]
    name: String,
    /// Selling unit, e.g. 斤, kg, 个, 袋.
    #[schema(value_type = crate::openapi::Text10)]
    unit: String,
    #[schema(value_type = crate::openapi::Price)]
    price: Amount,
    #[schema(value_type = crate::openapi::Price)]
    cost: Amount,
    /// The printed product barcode the till scans (8 to 14 digits); none for loose goods.
    #[serde(default)]
    #[schema(pattern = "^[0-9]{8,14}$")]
    barcode: Option<String>,
    /// Only an admin names it; an accountant's token fixes it.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::Code>)]
    cooperative: Option<String>,
}

/// Add or update a catalogue item (price and cost) of a cooperative.
#[utoipa::path(post, path = "/v1/catalog", tag = "master data", request_body = CatalogRequest,
    responses((status = 201, body = Created), (status = 422, body = Problem)), security(("bearer" = [])))]
async fn post_catalog(
    State(s): State<AppState>,
    p: Principal,
    h: HeaderMap,
    b: ApiJson<CatalogRequest>,
) -> Result<Response, ApiError> {
    p.allow(&[Role::CoopAccountant, Role::Admin])?;
    let req = b.value;
    let command = Command::UpsertCatalogItem {
        cooperative: p.cooperative_for(req.cooperative.as_deref())?,
        item: CatalogItemInput {
            sku: req.sku,
            name: req.name,
            unit: req.unit,
            price: req.price,
            cost: req.cost,
            barcode: req.barcode,
        },
    };
    submit(
        &s,
        &p,
        &h,
        ("POST /v1/catalog", &b.raw),
        command,
        StatusCode::CREATED,
        Key::Optional,
    )
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    role: Role,
    /// Code of the shop (cashier), cooperative (coop_accountant), company or household (resident).
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::Code>)]
    scope: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::Text100>)]
    label: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    id: i64,
    role: Role,
    /// Shown once; only its SHA-256 is stored.
    token: String,
}

/// A fresh bearer token: 32 random bytes, `hx_` + hex.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("hx_{}", hex::encode(bytes))
}

/// Create a bearer token; the secret is in this response only.
#[utoipa::path(post, path = "/v1/tokens", tag = "access", request_body = TokenRequest,
    responses((status = 201, body = TokenResponse), (status = 422, body = Problem)), security(("bearer" = [])))]
async fn post_token(
    State(s): State<AppState>,
    p: Principal,
    b: ApiJson<TokenRequest>,
) -> Result<Response, ApiError> {
    p.allow(&[Role::Admin])?;
    let token = new_token();
    let req = b.value;
    let command = Command::CreateToken(NewToken {
        parent: None,
        hash: token_hash(&token),
        role: req.role,
        scope: req.scope,
        label: req.label,
        expires_at: None,
    });
    match s
        .app
        .execute(crate::store::Envelope {
            actor: Some(p.id()),
            idempotency: None,
            command,
        })
        .await?
        .result
    {
        Ok(Receipt::Created(c)) => Ok((
            StatusCode::CREATED,
            axum::Json(TokenResponse {
                id: c.id,
                role: req.role,
                token,
            }),
        )
            .into_response()),
        Ok(_) => Err(ApiError::internal()),
        Err(r) => Err(r.into()),
    }
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// Revoke a token; it stops working at once.
#[utoipa::path(post, path = "/v1/tokens/{id}/revoke", tag = "access",
    params(("id" = i64, Path)),
    responses((status = 200, body = Created), (status = 404, body = Problem)), security(("bearer" = [])))]
async fn post_token_revoke(
    State(s): State<AppState>,
    p: Principal,
    h: HeaderMap,
    Path(id): Path<String>,
    b: OptionalJson<Empty>,
) -> Result<Response, ApiError> {
    p.allow(&[Role::Admin])?;
    let id = path_id("id", &id)?;
    let route = format!("POST /v1/tokens/{id}/revoke");
    submit(
        &s,
        &p,
        &h,
        (&route, &b.raw),
        Command::RevokeToken { id },
        StatusCode::OK,
        Key::Optional,
    )
    .await
}

/// The journal's head: sequence and hash, for tamper evidence.
#[utoipa::path(get, path = "/v1/audit/head", tag = "audit",
    responses((status = 200, body = Object)), security(("bearer" = [])))]
async fn get_audit_head(
    State(s): State<AppState>,
    p: Principal,
) -> Result<axum::Json<Head>, ApiError> {
    p.allow(&[Role::Admin])?;
    Ok(axum::Json(s.app.store.head().await?))
}

#[derive(Serialize, ToSchema)]
pub struct VerifyResponse {
    ok: bool,
    #[schema(value_type = Object)]
    report: VerifyReport,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct VerifyQuery {
    /// `SEQ:HASH`, a head published earlier: the check fails unless that entry is still in the
    /// chain with that hash.
    expect_head: Option<String>,
}

/// Recompute the hash chain and every balance from postings, and every stored figure that
/// derives from them.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", params(VerifyQuery),
    responses((status = 200, body = VerifyResponse), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn get_audit_verify(
    State(s): State<AppState>,
    p: Principal,
    query: Result<Query<VerifyQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<VerifyResponse>, ApiError> {
    p.allow(&[Role::Admin])?;
    let Query(q) =
        query.map_err(|e| ApiError::bad_request("invalid_input", "query", e.body_text()))?;
    let expect = q
        .expect_head
        .as_deref()
        .map(str::parse::<ExpectedHead>)
        .transpose()
        .map_err(|e| Rejection::invalid("expect_head", e))?;
    let report = s.app.verify_expecting(expect.as_ref()).await?;
    Ok(axum::Json(VerifyResponse {
        ok: report.ok(),
        report,
    }))
}

/// Change master data from a date (a compound's eligibility from a day, its company or a
/// household's area from a month, a name from now on); the chain records who, when, old and new.
/// The admin changes anything; a company office corrects its own households' area and name.
#[utoipa::path(post, path = "/v1/master-changes", tag = "master data", request_body = MasterChange,
    responses((status = 200, body = MasterChangeRecord), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn post_master_change(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: ApiJson<MasterChange>,
) -> Result<Response, ApiError> {
    principal.allow(&[Role::Admin, Role::Company])?;
    let change = body.value;
    if principal.role() == Role::Company {
        if change.subject != Subject::Household {
            return Err(Rejection::Forbidden.into());
        }
        // Another company's household does not exist, as far as this caller is concerned.
        let own = state
            .app
            .store
            .household(&change.code)
            .await?
            .is_some_and(|h| principal.token.company.as_deref() == Some(h.company.as_str()));
        if !own {
            return Err(Rejection::not_found("code", "household", &change.code).into());
        }
        if !matches!(change.field.as_str(), "name" | "area_m2") {
            return Err(Rejection::Forbidden.into());
        }
    }
    submit(
        &state,
        &principal,
        &headers,
        ("POST /v1/master-changes", &body.raw),
        Command::ChangeMasterData(change),
        StatusCode::OK,
        Key::Optional,
    )
    .await
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    /// Only changes of this kind of master data.
    subject: Option<Subject>,
    /// Only changes of the row with this code (with `subject`).
    #[param(value_type = Option<crate::openapi::Code>)]
    code: Option<String>,
}

/// The master data changes, oldest first: what changed, old and new value, in force from when,
/// recorded when and by which token (its label and role). The admin reads them all; a company
/// office reads one of its own households' (`subject=household&code=…`, as the office's
/// household desk shows them).
#[utoipa::path(get, path = "/v1/master-changes", tag = "master data", params(ChangesQuery),
    responses((status = 200, body = Vec<MasterChangeRecord>), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn get_master_changes(
    State(state): State<AppState>,
    principal: Principal,
    q: Result<Query<ChangesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Vec<MasterChangeRecord>>, ApiError> {
    principal.allow(&[Role::Admin, Role::Company])?;
    let Query(q) = q.map_err(|e| ApiError::bad_request("invalid_input", "query", e.body_text()))?;
    let code_ok = |c: &str| {
        (1..=32).contains(&c.len())
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if let Some(code) = q.code.as_deref().filter(|c| !code_ok(c)) {
        return Err(ApiError::bad_request(
            "invalid_input",
            "code",
            format!("{code:?} must be 1–32 letters, digits, '-' or '_'"),
        ));
    }
    if principal.role() == Role::Company {
        // One household of the company's own at a time; another company's household does not
        // exist, as far as this caller is concerned.
        let (Some(Subject::Household), Some(code)) = (q.subject, q.code.as_deref()) else {
            return Err(Rejection::Forbidden.into());
        };
        let own = state
            .app
            .store
            .household(code)
            .await?
            .is_some_and(|h| principal.token.company.as_deref() == Some(h.company.as_str()));
        if !own {
            return Err(Rejection::not_found("code", "household", code).into());
        }
    }
    Ok(axum::Json(
        state
            .app
            .store
            .master_changes(q.subject, q.code.as_deref())
            .await?,
    ))
}
