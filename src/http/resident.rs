//! Residents without an account: a signed link printed on the household card (HMAC over the
//! household id and a link version; rotating the version revokes old cards), or the household
//! code and a PIN (argon2-hashed under the server's short-secret key). Either is exchanged for a
//! short-lived resident session token. Attempts are rate-limited per household and per client
//! address, failures count toward a lockout of the household's PIN, and a PIN check costs the
//! same work whether the household exists, has a PIN, is locked or not.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, ParamsBuilder, Version};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::admin::{new_token, Empty};
use super::error::{ApiError, Problem};
use super::extract::{token_hash, ApiJson, ClientIp, OptionalJson, Principal};
use super::AppState;
use crate::domain::{Command, NewToken, Receipt, Role};
use crate::store::{Envelope, HouseholdCredentials, HouseholdView};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_session))
        .routes(routes!(post_pin))
        .routes(routes!(get_link))
        .routes(routes!(get_link_qr))
        .routes(routes!(post_link_rotate))
}

const LINK_LABEL: &[u8] = b"hongxin/resident-link/v1\0";
/// Links signed since the code joined the signature.
const LINK_LABEL_V2: &[u8] = b"hongxin/resident-link/v2\0";
/// 128 bits of tag: the link is a bearer secret printed on a card.
const LINK_TAG_BYTES: usize = 16;

fn link_mac(secret: &[u8; 32], household_id: i64, version: i64) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(LINK_LABEL);
    mac.update(&household_id.to_be_bytes());
    mac.update(&version.to_be_bytes());
    mac
}

/// The signature over a household's id, code and link version (the code, so that a link can
/// never name another household than the one it was printed for, whatever happens to codes).
fn link_mac_v2(secret: &[u8; 32], household_id: i64, code: &str, version: i64) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(LINK_LABEL_V2);
    mac.update(&household_id.to_be_bytes());
    mac.update(&version.to_be_bytes());
    mac.update(&u32::try_from(code.len()).unwrap_or(u32::MAX).to_be_bytes());
    mac.update(code.as_bytes());
    mac
}

pub fn link_signature(secret: &[u8; 32], household_id: i64, code: &str, version: i64) -> String {
    hex::encode(
        &link_mac_v2(secret, household_id, code, version)
            .finalize()
            .into_bytes()[..LINK_TAG_BYTES],
    )
}

/// Whether `signature` signs this household's link under one of `secrets`: a link as signed
/// now, or one printed before the code was signed too (those end when the link secret is
/// rotated and its grace period is over, as nothing signs them any more).
fn link_ok<'a>(
    secrets: impl Iterator<Item = &'a [u8; 32]>,
    household_id: i64,
    code: &str,
    version: i64,
    signature: &str,
) -> bool {
    let Ok(tag) = hex::decode(signature) else {
        return false;
    };
    if tag.len() != LINK_TAG_BYTES {
        return false;
    }
    let mut ok = false;
    for secret in secrets {
        // Every candidate is checked, so the time does not tell which one matched.
        let v2 = link_mac_v2(secret, household_id, code, version)
            .verify_truncated_left(&tag)
            .is_ok();
        let v1 = link_mac(secret, household_id, version)
            .verify_truncated_left(&tag)
            .is_ok();
        ok |= v2 | v1;
    }
    ok
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    pub household: String,
    /// From the signed link: its version and signature.
    #[serde(default)]
    pub version: Option<i64>,
    #[serde(default)]
    pub signature: Option<String>,
    /// Or the household's PIN.
    #[serde(default)]
    pub pin: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SessionResponse {
    household: String,
    /// Bearer token of role resident, valid until `expires_at`.
    token: String,
    expires_at: DateTime<Utc>,
}

fn refused() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "sign_in_failed",
        "the link or PIN is not valid for this household",
    )
}

/// Whether a card link's version and signature are this household's current ones.
pub(crate) fn card_ok(
    state: &AppState,
    household: &HouseholdCredentials,
    version: i64,
    signature: &str,
) -> bool {
    version == household.link_version
        && link_ok(
            state.app.keys.link_secrets_at(Utc::now()),
            household.id,
            &household.code,
            version,
            signature,
        )
}

/// The resident's presence at a till, for spending the household's wallet: the text scanned
/// from the household card (its signed link `…/r/{household}?v=…&s=…`) or the household PIN.
#[derive(Deserialize, ToSchema, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct ResidentProof {
    /// The text scanned from the household card: its signed link.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub card: Option<String>,
    /// Or the household's PIN, typed by the resident.
    #[serde(default)]
    #[schema(pattern = "^[0-9]{6,12}$")]
    pub pin: Option<String>,
}

/// `(household, version, signature)` of a card's signed link, from the scanned text: a whole
/// URL or its path.
fn parse_card(text: &str) -> Option<(&str, i64, &str)> {
    let text = text.trim();
    let (_, rest) = text.rsplit_once("/r/")?;
    let (household, query) = rest.split_once('?')?;
    let (mut version, mut signature) = (None, None);
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("v", v)) => version = v.parse::<i64>().ok(),
            Some(("s", s)) => signature = Some(s),
            _ => {}
        }
    }
    Some((household, version?, signature?))
}

fn presence_refused(field: &str) -> ApiError {
    ApiError::bad_request(
        "resident_proof_failed",
        field,
        format!("{field}: not this household's current card or PIN; ask the resident again"),
    )
}

/// Checks the resident's presence for spending `household`'s wallet: 422 `resident_required`
/// without a proof, 422 `resident_proof_failed` with a wrong one (a PIN failure counts toward
/// the household's lockout), 429 after too many failures from this address or on this household.
pub(crate) async fn check_presence(
    state: &AppState,
    ip: std::net::IpAddr,
    household: &str,
    proof: Option<&ResidentProof>,
) -> Result<(), ApiError> {
    let (card, pin) = match proof {
        Some(ResidentProof {
            card: Some(c),
            pin: None,
        }) => (Some(c.as_str()), None),
        Some(ResidentProof {
            card: None,
            pin: Some(p),
        }) => (None, Some(p.clone())),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_input",
                "resident",
                "resident: give either card (the scanned household card) or pin",
            ))
        }
        None => return Err(ApiError::bad_request(
            "resident_required",
            "resident",
            "resident: spending a household's credit needs the resident's card (scan it) or PIN",
        )),
    };
    state.auth_allowed(ip, Some(household))?;
    let credentials = state.app.store.household_credentials(household).await?;
    let (ok, field) = match (card, pin) {
        (Some(text), _) => {
            let ok = match (parse_card(text), credentials.as_ref()) {
                (Some((code, version, signature)), Some(h)) => {
                    code == h.code && card_ok(state, h, version, signature)
                }
                _ => false,
            };
            (ok, "resident.card")
        }
        (None, Some(pin)) => (
            pin_matches(state, credentials.as_ref(), pin).await?,
            "resident.pin",
        ),
        (None, None) => (false, "resident"),
    };
    if ok {
        Ok(())
    } else {
        state.auth_failed(ip, Some(household), "resident_proof");
        state.metrics.reject("resident_proof_failed");
        Err(presence_refused(field))
    }
}

/// A resident signs in with the card's signed link or with household code + PIN.
#[utoipa::path(post, path = "/v1/resident/sessions", tag = "residents", request_body = SessionRequest,
    responses((status = 201, body = SessionResponse), (status = 401, body = Problem), (status = 429, body = Problem)))]
async fn post_session(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: ApiJson<SessionRequest>,
) -> Result<Response, ApiError> {
    let session = resident_sign_in(&state, ip, body.value).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(SessionResponse {
            household: session.household,
            token: session.token,
            expires_at: session.expires_at,
        }),
    )
        .into_response())
}

/// A resident session just made: its secret is handed out once.
pub(crate) struct NewSession {
    pub household: String,
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// Checks a resident's link or PIN (rate-limited) and makes a session token for the household.
pub(crate) async fn resident_sign_in(
    state: &AppState,
    ip: std::net::IpAddr,
    req: SessionRequest,
) -> Result<NewSession, ApiError> {
    state.limits.resident(&req.household, ip)?;
    state.auth_allowed(ip, Some(&req.household))?;
    let kind = if req.pin.is_some() {
        "resident_pin"
    } else {
        "resident_link"
    };
    let Some(household) = state
        .app
        .store
        .household_credentials(&req.household)
        .await?
    else {
        if let (None, None, Some(pin)) = (req.version, req.signature.as_deref(), req.pin) {
            // The same work as a real check, so that time does not tell which codes exist.
            pin_matches(state, None, pin).await?;
        }
        state.auth_failed(ip, Some(&req.household), kind);
        return Err(refused());
    };
    let ok = match (req.version, req.signature.as_deref(), req.pin) {
        (Some(version), Some(signature), None) => card_ok(state, &household, version, signature),
        (None, None, Some(pin)) => pin_matches(state, Some(&household), pin).await?,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_input",
                "body",
                "give either version and signature from the link, or pin",
            ))
        }
    };
    if !ok {
        state.metrics.reject("sign_in_failed");
        state.auth_failed(ip, Some(&req.household), kind);
        return Err(refused());
    }
    let ttl = chrono::Duration::from_std(state.config.resident_session)
        .unwrap_or(chrono::Duration::minutes(30));
    let expires_at = Utc::now() + ttl;
    let (token, _) = create_session_token(
        state,
        Role::Resident,
        Some(household.code.clone()),
        "resident session",
        expires_at,
        None,
    )
    .await?;
    Ok(NewSession {
        household: household.code,
        token,
        expires_at,
    })
}

/// The argon2 context of household PINs: keyed with the server's short-secret key, so a copy of
/// the database alone cannot be searched through the million 6-digit values.
fn pin_argon2(state: &AppState) -> Result<Argon2<'_>, ApiError> {
    Argon2::new_with_secret(
        state.app.keys.short_secret_key(),
        Algorithm::Argon2id,
        Version::V0x13,
        pin_params()?,
    )
    .map_err(|_| ApiError::internal())
}

/// argon2's default cost, with a key id saying the hash is keyed (hashes made before PINs were
/// keyed have none and are checked without the key).
fn pin_params() -> Result<Params, ApiError> {
    let keyid = argon2::KeyId::new(b"k1").map_err(|_| ApiError::internal())?;
    ParamsBuilder::new()
        .keyid(keyid)
        .build()
        .map_err(|_| ApiError::internal())
}

/// The stored form of a PIN.
pub(crate) async fn hash_pin(state: &AppState, pin: String) -> Result<String, ApiError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        pin_argon2(&state)?
            .hash_password(pin.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|_| ApiError::internal())
    })
    .await
    .map_err(|_| ApiError::internal())?
}

/// A hash no PIN matches, of the same cost as a real one: checked when there is no real one.
fn decoy_hash(state: &AppState) -> Result<String, ApiError> {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(h) = DECOY.get() {
        return Ok(h.clone());
    }
    let mut secret = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut secret);
    let salt = SaltString::generate(&mut OsRng);
    let made = pin_argon2(state)?
        .hash_password(hex::encode(secret).as_bytes(), &salt)
        .map_err(|_| ApiError::internal())?
        .to_string();
    Ok(DECOY.get_or_init(|| made).clone())
}

/// Whether `pin` is this household's PIN: one argon2 verification whatever the case (no such
/// household, no PIN set, PIN locked, wrong or right), so that neither the answer nor its time
/// tells them apart except for the right PIN of an unlocked household. A household with a PIN
/// has the attempt recorded toward its lockout (or the count cleared), without waiting for it.
pub(crate) async fn pin_matches(
    state: &AppState,
    household: Option<&HouseholdCredentials>,
    pin: String,
) -> Result<bool, ApiError> {
    let now = Utc::now();
    let stored = household.and_then(|h| h.pin_hash.clone());
    let locked = household
        .and_then(|h| h.pin_locked_until)
        .is_some_and(|t| t > now);
    let decoy = decoy_hash(state)?;
    let worker = state.clone();
    let matched = tokio::task::spawn_blocking(move || {
        let candidate = stored.clone().unwrap_or(decoy);
        let Ok(parsed) = PasswordHash::new(&candidate) else {
            return false;
        };
        let keyed = parsed.params.get("keyid").is_some();
        let verified = if keyed {
            pin_argon2(&worker).is_ok_and(|a| a.verify_password(pin.as_bytes(), &parsed).is_ok())
        } else {
            Argon2::default()
                .verify_password(pin.as_bytes(), &parsed)
                .is_ok()
        };
        verified && stored.is_some()
    })
    .await
    .map_err(|_| ApiError::internal())?;
    let ok = matched && !locked;
    if let Some(h) = household.filter(|h| h.pin_hash.is_some()) {
        let recorder = state.clone();
        let command = Command::RecordPinAttempt {
            household: h.code.clone(),
            ok,
            at: now,
        };
        tokio::spawn(async move {
            let done = recorder
                .app
                .execute(Envelope {
                    actor: None,
                    idempotency: None,
                    command,
                })
                .await;
            if let Err(e) = done {
                tracing::warn!(error = %e, "recording a PIN attempt failed");
            }
        });
    }
    Ok(ok)
}

/// Makes a token that expires, for a session; returns its secret and id.
pub(crate) async fn create_session_token(
    state: &AppState,
    role: Role,
    scope: Option<String>,
    label: &str,
    expires_at: DateTime<Utc>,
    parent: Option<i64>,
) -> Result<(String, i64), ApiError> {
    let token = new_token();
    let command = Command::CreateToken(NewToken {
        parent,
        hash: token_hash(&token),
        role,
        scope,
        label: Some(label.into()),
        expires_at: Some(expires_at),
    });
    match state
        .app
        .execute(Envelope {
            actor: None,
            idempotency: None,
            command,
        })
        .await?
        .result
    {
        Ok(Receipt::Created(c)) => Ok((token, c.id)),
        Ok(_) => Err(ApiError::internal()),
        Err(r) => Err(r.into()),
    }
}

/// The household, if this caller (admin, or its own company) manages it.
async fn managed(
    state: &AppState,
    principal: &Principal,
    code: &str,
) -> Result<HouseholdView, ApiError> {
    principal.allow(&[Role::Admin, Role::Company])?;
    match state.app.store.household(code).await? {
        Some(v)
            if principal.role() == Role::Admin
                || principal.token.company.as_deref() == Some(v.company.as_str()) =>
        {
            Ok(v)
        }
        _ => Err(ApiError::not_found("household")),
    }
}

/// A PIN's length: a million values at least, with the lockout and the keyed hash.
pub const PIN_DIGITS_MIN: usize = 6;
pub const PIN_DIGITS_MAX: usize = 12;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinRequest {
    /// 6 to 12 digits; stored only as a keyed argon2 hash.
    #[schema(pattern = "^[0-9]{6,12}$")]
    pin: String,
}

/// Set a household's PIN (the company's office or an admin).
#[utoipa::path(post, path = "/v1/households/{household}/pin", tag = "residents", request_body = PinRequest,
    params(("household" = crate::openapi::Code, Path)),
    responses((status = 200, body = crate::domain::Created), (status = 422, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn post_pin(
    State(state): State<AppState>,
    principal: Principal,
    Path(code): Path<String>,
    body: ApiJson<PinRequest>,
) -> Result<Response, ApiError> {
    managed(&state, &principal, &code).await?;
    let pin = body.value.pin;
    if !(PIN_DIGITS_MIN..=PIN_DIGITS_MAX).contains(&pin.len())
        || !pin.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(ApiError::bad_request(
            "invalid_input",
            "pin",
            format!("pin must be {PIN_DIGITS_MIN} to {PIN_DIGITS_MAX} digits"),
        ));
    }
    let hash = hash_pin(&state, pin).await?;
    let command = Command::SetHouseholdPin {
        household: code,
        pin_hash: Some(hash),
    };
    // No Idempotency-Key here: setting the same PIN twice is harmless, and a stored
    // fingerprint of a body holding a PIN is better not kept.
    match state
        .app
        .execute(Envelope {
            actor: Some(principal.id()),
            idempotency: None,
            command,
        })
        .await?
        .result
    {
        Ok(Receipt::Created(c)) => Ok((StatusCode::OK, axum::Json(c)).into_response()),
        Ok(_) => Err(ApiError::internal()),
        Err(r) => Err(r.into()),
    }
}

#[derive(Serialize, ToSchema)]
pub struct LinkResponse {
    household: String,
    version: i64,
    signature: String,
    /// What to print on the household card (as a QR code or text).
    url: String,
}

/// The signed link printed on a household's card (what a till scans as the resident's card).
pub fn card_url(
    keys: &crate::voucher::KeyFile,
    public_url: &str,
    household: &HouseholdCredentials,
) -> String {
    let version = household.link_version;
    let signature = link_signature(keys.link_secret(), household.id, &household.code, version);
    format!(
        "{}/r/{}?v={version}&s={signature}",
        public_url.trim_end_matches('/'),
        household.code
    )
}

fn link_response(state: &AppState, v: &HouseholdView, version: i64) -> LinkResponse {
    let signature = link_signature(state.app.keys.link_secret(), v.id, &v.code, version);
    LinkResponse {
        household: v.code.clone(),
        version,
        url: format!(
            "{}/r/{}?v={version}&s={signature}",
            state.config.public_url.trim_end_matches('/'),
            v.code
        ),
        signature,
    }
}

/// The signed link for a household's card.
#[utoipa::path(get, path = "/v1/households/{household}/link", tag = "residents",
    params(("household" = crate::openapi::Code, Path)),
    responses((status = 200, body = LinkResponse), (status = 404, body = Problem)), security(("bearer" = [])))]
async fn get_link(
    State(state): State<AppState>,
    principal: Principal,
    Path(code): Path<String>,
) -> Result<axum::Json<LinkResponse>, ApiError> {
    let v = managed(&state, &principal, &code).await?;
    Ok(axum::Json(link_response(&state, &v, v.link_version)))
}

/// Issue a new card link; every earlier link of this household stops working.
#[utoipa::path(post, path = "/v1/households/{household}/link/rotate", tag = "residents",
    params(("household" = crate::openapi::Code, Path)),
    responses((status = 200, body = LinkResponse), (status = 404, body = Problem)), security(("bearer" = [])))]
async fn post_link_rotate(
    State(state): State<AppState>,
    principal: Principal,
    Path(code): Path<String>,
    _body: OptionalJson<Empty>,
) -> Result<axum::Json<LinkResponse>, ApiError> {
    let v = managed(&state, &principal, &code).await?;
    let command = Command::RotateHouseholdLink { household: code };
    match state
        .app
        .execute(Envelope {
            actor: Some(principal.id()),
            idempotency: None,
            command,
        })
        .await?
        .result
    {
        Ok(Receipt::Created(c)) => Ok(axum::Json(link_response(&state, &v, c.id))),
        Ok(_) => Err(ApiError::internal()),
        Err(r) => Err(r.into()),
    }
}

/// The household card's QR code (its signed link): for the office to print on the card, and
/// for the resident to show at a till from the phone.
#[utoipa::path(get, path = "/v1/households/{household}/link/qr.svg", tag = "residents",
    params(("household" = crate::openapi::Code, Path)),
    responses((status = 200, content_type = "image/svg+xml", body = String), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn get_link_qr(
    State(state): State<AppState>,
    principal: Principal,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    let v = if principal.role() == Role::Resident {
        match state.app.store.household(&code).await? {
            Some(v) if principal.token.household.as_deref() == Some(v.code.as_str()) => v,
            _ => return Err(ApiError::not_found("household")),
        }
    } else {
        managed(&state, &principal, &code).await?
    };
    let link = link_response(&state, &v, v.link_version);
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "image/svg+xml"),
            (axum::http::header::CACHE_CONTROL, "private, no-store"),
        ],
        crate::voucher::qr_svg(&link.url),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_sign_the_code_and_verify_under_the_previous_secret_for_its_grace_only() {
        let mut keys = crate::voucher::KeyFile::generate();
        let now = Utc::now();
        let old = link_signature(keys.link_secret(), 7, "H7", 1);
        assert!(link_ok(keys.link_secrets_at(now), 7, "H7", 1, &old));
        // Another code, id or version: refused.
        assert!(!link_ok(keys.link_secrets_at(now), 7, "H8", 1, &old));
        assert!(!link_ok(keys.link_secrets_at(now), 8, "H7", 1, &old));
        assert!(!link_ok(keys.link_secrets_at(now), 7, "H7", 2, &old));
        // A card printed before the code was signed still verifies, until a rotation's grace.
        let legacy = hex::encode(
            &link_mac(keys.link_secret(), 7, 1).finalize().into_bytes()[..LINK_TAG_BYTES],
        );
        assert!(link_ok(keys.link_secrets_at(now), 7, "H7", 1, &legacy));

        keys.rotate_link_secret(chrono::Duration::days(30));
        let new = link_signature(keys.link_secret(), 7, "H7", 1);
        assert_ne!(new, old);
        for sig in [&old, &legacy, &new] {
            assert!(link_ok(keys.link_secrets_at(now), 7, "H7", 1, sig));
        }
        let later = now + chrono::Duration::days(31);
        assert!(link_ok(keys.link_secrets_at(later), 7, "H7", 1, &new));
        assert!(!link_ok(keys.link_secrets_at(later), 7, "H7", 1, &old));
        assert!(!link_ok(keys.link_secrets_at(later), 7, "H7", 1, &legacy));
    }
}
