//! Sessions of the web pages. A page never keeps a bearer token in script-readable storage:
//! signing in (a staff token, a till pairing code, or a resident's signed link or PIN) makes a
//! session token that expires, handed to the browser only as an `HttpOnly; SameSite=Strict`
//! cookie. Requests authenticated by that cookie must, unless they only read (GET/HEAD), carry
//! the session's CSRF token in `X-CSRF-Token`; the page learns it from the sign-in answer or
//! `GET /web/session`, which another site's page cannot read.
//!
//! A till pairing code lets a tablet sign in as a shop's cashier without anyone typing a long
//! token: the cooperative's accountant (or an admin) asks for one, it is good for ten minutes
//! and for one sign-in, here only (never as a bearer token: it is stored under a keyed hash a
//! bearer token's hash can never equal). The till's session then lasts the staff session
//! length; the accountant sees the cooperative's paired tills and can end any of them.

use std::net::IpAddr;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{Command, Receipt, Role};
use crate::http::error::ApiError;
use crate::http::extract::{keyed_hash, token_hash, ApiJson, ClientIp, Principal};
use crate::http::resident::{create_session_token, resident_sign_in, SessionRequest};
use crate::http::AppState;
use crate::store::{Envelope, TokenRecord};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "hx_session";
/// The header a cookie-authenticated request that changes something must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

const CSRF_LABEL: &[u8] = b"hongxin/csrf/v1\0";
/// The label of a pairing code's token row; such a row authenticates nothing but the pairing
/// sign-in.
pub const PAIRING_LABEL: &str = "till pairing";
/// The label of a paired till's session.
pub const PAIRED_TILL_LABEL: &str = "web session (paired till)";
/// The label of a staff session made from a token without a label of its own.
const STAFF_SESSION_LABEL: &str = "web session";
const PAIRING_MINUTES: i64 = 10;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/web/session",
            get(get_session).post(post_session).delete(delete_session),
        )
        .route("/web/pairings", post(post_pairing).get(get_paired_tills))
        .route("/web/pairings/{id}/end", post(post_end_paired_till))
}

/// The CSRF token of a session: derived from its secret, so it needs no storage, and only a
/// page that was given it (same origin) can send it.
pub fn csrf_for(session_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(CSRF_LABEL);
    h.update(session_token.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// The session token from the request's cookies, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty() && v.len() <= 200)
}

/// Whether a cookie-authenticated request carries its session's CSRF token.
pub fn csrf_ok(headers: &HeaderMap, session_token: &str) -> bool {
    let expected = csrf_for(session_token);
    headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|given| {
            // Constant time: the comparison must not leak how much of a guess was right.
            given.len() == expected.len()
                && given
                    .bytes()
                    .zip(expected.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        })
}

/// What the page needs to know about its session.
#[derive(Serialize)]
struct SessionInfo {
    role: Role,
    cooperative: Option<String>,
    shop: Option<String>,
    company: Option<String>,
    household: Option<String>,
    /// The shop's name, for the till's header and receipts.
    shop_name: Option<String>,
    /// The name of what the session is bound to: its shop, company or cooperative.
    scope_name: Option<String>,
    /// Who signed in: the label of the staff token the session was made from (the cashier's
    /// name on the till's receipts); absent for a paired till and an unlabelled token.
    staff: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    /// Send this in `X-CSRF-Token` with every request that changes something. Absent when the
    /// caller used a bearer token rather than the session cookie.
    csrf: Option<String>,
}

impl SessionInfo {
    async fn of(
        state: &AppState,
        record: &TokenRecord,
        csrf: Option<String>,
    ) -> Result<SessionInfo, ApiError> {
        let shop_name = match &record.shop {
            Some(code) => state
                .app
                .store
                .shops()
                .await?
                .into_iter()
                .find(|s| &s.code == code)
                .map(|s| s.name),
            None => None,
        };
        let scope_name = match (&shop_name, &record.company, &record.cooperative) {
            (Some(shop), _, _) => Some(shop.clone()),
            (None, Some(company), _) => state.app.store.names().await?.companies.remove(company),
            (None, None, Some(coop)) => state.app.store.names().await?.cooperatives.remove(coop),
            _ => None,
        };
        Ok(SessionInfo {
            role: record.role,
            cooperative: record.cooperative.clone(),
            shop: record.shop.clone(),
            company: record.company.clone(),
            household: record.household.clone(),
            shop_name,
            scope_name,
            staff: record
                .label
                .clone()
                .filter(|l| {
                    l != STAFF_SESSION_LABEL && l != PAIRED_TILL_LABEL && l != PAIRING_LABEL
                })
                .filter(|_| record.role != Role::Resident),
            expires_at: record.expires_at,
            csrf,
        })
    }
}

/// How the page signs in: exactly one of a staff token, a pairing code, or a resident's
/// household with the link's version and signature or a PIN.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SignIn {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    pairing_code: Option<String>,
    #[serde(default)]
    household: Option<String>,
    #[serde(default)]
    version: Option<i64>,
    #[serde(default)]
    signature: Option<String>,
    #[serde(default)]
    pin: Option<String>,
}

fn sign_in_failed() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "sign_in_failed",
        "the token or pairing code is not valid",
    )
}

/// The code a token of this role is bound to, as `NewToken::scope` takes it.
fn scope_of(record: &TokenRecord) -> Option<String> {
    match record.role {
        Role::Cashier => record.shop.clone(),
        Role::CoopAccountant => record.cooperative.clone(),
        Role::Company => record.company.clone(),
        Role::Resident => record.household.clone(),
        Role::Admin | Role::Alliance => None,
    }
}

/// A live token by its secret: not revoked, not expired.
async fn live_token(state: &AppState, secret: &str) -> Result<Option<TokenRecord>, ApiError> {
    let record = state.app.store.token_by_hash(&token_hash(secret)).await?;
    Ok(record.filter(|r| !r.revoked && r.expires_at.is_none_or(|t| t > Utc::now())))
}

/// A live pairing code's token row.
async fn live_pairing(state: &AppState, code: &str) -> Result<Option<TokenRecord>, ApiError> {
    let record = state
        .app
        .store
        .token_by_hash(&pairing_hash(state, code))
        .await?;
    Ok(record.filter(|r| {
        !r.revoked
            && r.expires_at.is_none_or(|t| t > Utc::now())
            && r.role == Role::Cashier
            && r.label.as_deref() == Some(PAIRING_LABEL)
    }))
}

pub(crate) async fn revoke(state: &AppState, id: i64) -> Result<(), ApiError> {
    match state
        .app
        .execute(Envelope {
            actor: None,
            idempotency: None,
            command: Command::RevokeToken { id },
        })
        .await?
        .result
    {
        Ok(_) => Ok(()),
        Err(r) => Err(r.into()),
    }
}

/// Makes the session of a staff member whose token (or spent pairing code) is `parent`. A
/// session never outlives a staff token that expires; a pairing code's ten minutes bound only
/// when it may be used, not how long the till it paired stays signed in.
async fn staff_session(
    state: &AppState,
    parent: &TokenRecord,
    label: &str,
) -> Result<String, ApiError> {
    let ttl = chrono::Duration::from_std(state.config.staff_session)
        .unwrap_or(chrono::Duration::hours(12));
    let mut expires_at = Utc::now() + ttl;
    if let Some(parent_end) = parent.expires_at.filter(|_| label != PAIRED_TILL_LABEL) {
        expires_at = expires_at.min(parent_end);
    }
    let (token, _) = create_session_token(
        state,
        parent.role,
        scope_of(parent),
        label,
        expires_at,
        Some(parent.id),
    )
    .await?;
    Ok(token)
}

fn digits(code: &str) -> String {
    code.chars().filter(char::is_ascii_digit).collect()
}

fn pairing_hash(state: &AppState, code: &str) -> String {
    keyed_hash(
        state.app.keys.short_secret_key(),
        "till-pairing",
        &digits(code),
    )
}

async fn sign_in(state: &AppState, ip: IpAddr, req: SignIn) -> Result<String, ApiError> {
    let resident = req.household.is_some();
    match (req.token, req.pairing_code, resident) {
        (Some(token), None, false) => {
            state.auth_allowed(ip, None)?;
            state.limits.sign_in(ip)?;
            let parent = live_token(state, token.trim())
                .await?
                .filter(|r| r.role != Role::Resident && r.label.as_deref() != Some(PAIRING_LABEL));
            let Some(parent) = parent else {
                state.auth_failed(ip, None, "staff_sign_in");
                return Err(sign_in_failed());
            };
            // The session carries its token's label (the cashier's or clerk's name, as the
            // admin wrote it), for the page's header and receipts.
            let label = parent
                .label
                .clone()
                .filter(|l| l != PAIRED_TILL_LABEL)
                .unwrap_or_else(|| STAFF_SESSION_LABEL.to_string());
            staff_session(state, &parent, &label).await
        }
        (None, Some(code), false) => {
            state.auth_allowed(ip, None)?;
            state.limits.sign_in(ip)?;
            if digits(&code).len() != 8 {
                return Err(ApiError::bad_request(
                    "invalid_input",
                    "pairing_code",
                    "pairing_code: eight digits, as shown on the accountant's screen",
                ));
            }
            let Some(pairing) = live_pairing(state, &code).await? else {
                state.auth_failed(ip, None, "pairing");
                return Err(sign_in_failed());
            };
            // One sign-in per code: it is spent before the session is made, and of two
            // sign-ins racing with it only the one whose revocation took effect goes on.
            if revoke(state, pairing.id).await.is_err() {
                state.auth_failed(ip, None, "pairing");
                return Err(sign_in_failed());
            }
            staff_session(state, &pairing, PAIRED_TILL_LABEL).await
        }
        (None, None, true) => {
            let session = resident_sign_in(
                state,
                ip,
                SessionRequest {
                    household: req.household.unwrap_or_default(),
                    version: req.version,
                    signature: req.signature,
                    pin: req.pin,
                },
            )
            .await?;
            Ok(session.token)
        }
        _ => Err(ApiError::bad_request(
            "invalid_input",
            "body",
            "give one of: token; pairing_code; household with version and signature or pin",
        )),
    }
}

fn cookie(state: &AppState, value: &str, max_age: i64) -> HeaderValue {
    let secure = if state.config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("hx_session=; Path=/; Max-Age=0"))
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Signs in and sets the session cookie.
async fn post_session(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: ApiJson<SignIn>,
) -> Result<Response, ApiError> {
    let token = sign_in(&state, ip, body.value).await?;
    let record = live_token(&state, &token)
        .await?
        .ok_or_else(ApiError::internal)?;
    let max_age = record
        .expires_at
        .map_or(0, |t| (t - Utc::now()).num_seconds().max(0));
    let mut response = (
        StatusCode::CREATED,
        axum::Json(SessionInfo::of(&state, &record, Some(csrf_for(&token))).await?),
    )
        .into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, cookie(&state, &token, max_age));
    Ok(no_store(response))
}

/// Who this session is, and its CSRF token.
async fn get_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    p: Principal,
) -> Result<Response, ApiError> {
    let csrf = session_cookie(&headers)
        .filter(|_| !headers.contains_key(axum::http::header::AUTHORIZATION))
        .map(csrf_for);
    Ok(no_store(
        axum::Json(SessionInfo::of(&state, &p.token, csrf).await?).into_response(),
    ))
}

/// Signs out: the session token is revoked and the cookie cleared.
async fn delete_session(State(state): State<AppState>, p: Principal) -> Result<Response, ApiError> {
    if p.token.expires_at.is_some() {
        // Only sessions end here; a long-lived staff token is revoked by an admin.
        revoke(&state, p.id()).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, cookie(&state, "", 0));
    Ok(no_store(response))
}

/// Paired tills listed at most.
const PAIRED_TILLS_SHOWN: u32 = 500;

#[derive(Serialize)]
struct PairedTill {
    /// The session's id: end it with `POST /web/pairings/{id}/end`.
    id: i64,
    shop: Option<String>,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
struct PairedTills {
    tills: Vec<PairedTill>,
}

/// The cooperative whose paired tills the caller sees: an accountant's own; an admin's, all.
fn pairing_scope(p: &Principal) -> Result<Option<String>, ApiError> {
    p.allow(&[Role::Admin, Role::CoopAccountant])?;
    Ok(match p.role() {
        Role::CoopAccountant => Some(
            p.token
                .cooperative
                .clone()
                .ok_or_else(ApiError::forbidden)?,
        ),
        _ => None,
    })
}

async fn live_paired_tills(
    state: &AppState,
    cooperative: Option<&str>,
) -> Result<Vec<TokenRecord>, ApiError> {
    let now = Utc::now();
    Ok(state
        .app
        .store
        .tokens_labelled(PAIRED_TILL_LABEL, cooperative, PAIRED_TILLS_SHOWN)
        .await?
        .into_iter()
        .filter(|t| t.expires_at.is_none_or(|e| e > now))
        .collect())
}

/// The tills signed in by pairing code that are still signed in, for the cooperative's accountant.
async fn get_paired_tills(
    State(state): State<AppState>,
    p: Principal,
) -> Result<Response, ApiError> {
    let scope = pairing_scope(&p)?;
    let tills = live_paired_tills(&state, scope.as_deref())
        .await?
        .into_iter()
        .map(|t| PairedTill {
            id: t.id,
            shop: t.shop,
            expires_at: t.expires_at,
        })
        .collect();
    Ok(no_store(axum::Json(PairedTills { tills }).into_response()))
}

/// Signs a paired till out (a lost or stolen tablet): its session is revoked at once.
async fn post_end_paired_till(
    State(state): State<AppState>,
    p: Principal,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    let scope = pairing_scope(&p)?;
    let id = crate::http::extract::path_id("id", &id)?;
    let known = live_paired_tills(&state, scope.as_deref())
        .await?
        .iter()
        .any(|t| t.id == id);
    if !known {
        return Err(ApiError::not_found("paired till").with_field("id"));
    }
    revoke(&state, id).await?;
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PairingRequest {
    shop: String,
}

#[derive(Serialize)]
struct PairingResponse {
    /// Eight digits, shown as `1234-5678`; good for one sign-in.
    code: String,
    shop: String,
    expires_at: DateTime<Utc>,
}

/// A pairing code for a till tablet at one of the caller's shops.
async fn post_pairing(
    State(state): State<AppState>,
    p: Principal,
    body: ApiJson<PairingRequest>,
) -> Result<Response, ApiError> {
    p.allow(&[Role::Admin, Role::CoopAccountant])?;
    let shop = body.value.shop.trim().to_string();
    if shop.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_input",
            "shop",
            "shop: name the shop",
        ));
    }
    let number: u32 = rand::rng().random_range(0..100_000_000);
    let code = format!("{:04}-{:04}", number / 10_000, number % 10_000);
    let expires_at = Utc::now() + chrono::Duration::minutes(PAIRING_MINUTES);
    let created = state
        .app
        .execute(Envelope {
            actor: Some(p.id()),
            idempotency: None,
            command: Command::CreateToken(crate::domain::NewToken {
                parent: None,
                hash: pairing_hash(&state, &code),
                role: Role::Cashier,
                scope: Some(shop.clone()),
                label: Some(PAIRING_LABEL.into()),
                expires_at: Some(expires_at),
            }),
        })
        .await?
        .result;
    let id = match created {
        Ok(Receipt::Created(c)) => c.id,
        Ok(_) => return Err(ApiError::internal()),
        Err(r) => return Err(ApiError::from(r).with_field("shop")),
    };
    // An accountant pairs tills of their own cooperative's shops only.
    if p.role() == Role::CoopAccountant {
        let made = live_pairing(&state, &code).await?;
        if made.and_then(|r| r.cooperative) != p.token.cooperative {
            revoke(&state, id).await?;
            return Err(ApiError::not_found("shop").with_field("shop"));
        }
    }
    Ok(no_store(
        (
            StatusCode::CREATED,
            axum::Json(PairingResponse {
                code,
                shop,
                expires_at,
            }),
        )
            .into_response(),
    ))
}
