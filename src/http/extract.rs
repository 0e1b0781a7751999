//! Extractors that turn requests into domain input or a problem+json error: JSON bodies
//! (content type, size, unknown fields, the field at fault), path parameters, the caller's
//! token and address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::AppState;
use crate::domain::Role;
use crate::money::AmountError;
use crate::store::TokenRecord;
use crate::web::session;

/// A JSON body parsed into `T`, with the raw bytes kept for the idempotency fingerprint.
pub struct ApiJson<T> {
    pub value: T,
    pub raw: Bytes,
}

fn is_json(req: &Request) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let mime = v
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            mime == "application/json" || mime.ends_with("+json")
        })
        .unwrap_or(false)
}

fn malformed(e: &serde_json::Error) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "malformed_json",
        format!("the body is not valid JSON: {e}"),
    )
}

/// Parses JSON naming the field at fault; amounts get `invalid_amount`.
pub fn parse_json<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let value = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => v,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let message = inner.to_string();
            // serde_json appends " at line L column C"; the field name says more.
            let reason = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(m, _)| m)
                .to_string();
            if inner.is_syntax() || inner.is_eof() {
                return Err(malformed(&inner));
            }
            // A missing field is reported at its parent; name the field itself.
            let missing = reason
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next());
            let field = match (path.as_str(), missing) {
                (".", Some(name)) => name.to_string(),
                (".", None) => "body".to_string(),
                (_, Some(name)) => format!("{path}.{name}"),
                (_, None) => path,
            };
            let code = if is_amount_error(&reason) {
                "invalid_amount"
            } else {
                "invalid_input"
            };
            return Err(ApiError::bad_request(
                code,
                &field,
                format!("{field}: {reason}"),
            ));
        }
    };
    // Trailing bytes after the value make the whole body malformed, not ignored.
    de.end().map_err(|e| malformed(&e))?;
    Ok(value)
}

/// Whether serde's message comes from [`Amount`]'s deserializer: a value of the wrong JSON type
/// for an amount, or one of its parse errors. (Not merely a message that mentions "amount",
/// such as an unknown field of that name.)
fn is_amount_error(reason: &str) -> bool {
    reason.contains("expected an amount")
        || [
            AmountError::Empty,
            AmountError::Invalid,
            AmountError::TooPrecise,
            AmountError::Overflow,
        ]
        .iter()
        .any(|e| reason == e.to_string())
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body as application/json",
    )
}

/// The whole body, within the configured limit.
async fn body_bytes(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body is larger than {} bytes", state.config.body_limit),
            )
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_body", e.body_text())
        }
    })
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if !is_json(&req) {
            return Err(unsupported_media_type());
        }
        let raw = body_bytes(req, state).await?;
        let value = parse_json(&raw)?;
        Ok(ApiJson { value, raw })
    }
}

/// A JSON body that may be absent (empty), for actions whose every field has a default.
pub struct OptionalJson<T> {
    pub value: T,
    pub raw: Bytes,
}

impl<T: DeserializeOwned + Default + Send> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        // Judged by the bytes, not by Content-Length: a chunked body has none, and taking it
        // for "no body" would turn a partial refund into a whole one.
        let json = is_json(&req);
        let raw = body_bytes(req, state).await?;
        if raw.is_empty() {
            return Ok(OptionalJson {
                value: T::default(),
                raw,
            });
        }
        if !json {
            return Err(unsupported_media_type());
        }
        let value = parse_json(&raw)?;
        Ok(OptionalJson { value, raw })
    }
}

/// The authenticated caller.
#[derive(Clone, Debug)]
pub struct Principal {
    pub token: TokenRecord,
}

impl Principal {
    pub fn role(&self) -> Role {
        self.token.role
    }

    pub fn id(&self) -> i64 {
        self.token.id
    }

    /// A resident's reads of their own figures are limited per household (429 past the quota):
    /// they cost the server more than a till's work and must not crowd it out.
    pub fn resident_read(&self, state: &AppState) -> Result<(), ApiError> {
        match (&self.token.role, &self.token.household) {
            (Role::Resident, Some(h)) => state.limits.resident_read(h),
            _ => Ok(()),
        }
    }

    /// 403 unless the caller has one of these roles.
    pub fn allow(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.token.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// The shop a till operation runs at: a cashier's own; an admin names one.
    pub fn shop_for(&self, requested: Option<&str>) -> Result<String, ApiError> {
        match (self.token.role, &self.token.shop, requested) {
            (Role::Cashier, Some(own), None) => Ok(own.clone()),
            (Role::Cashier, Some(own), Some(r)) if r == own => Ok(own.clone()),
            (Role::Cashier, _, _) => Err(ApiError::forbidden()),
            (Role::Admin, _, Some(r)) => Ok(r.to_string()),
            (Role::Admin, _, None) => Err(ApiError::bad_request(
                "invalid_input",
                "shop",
                "shop: an admin names the shop",
            )),
            _ => Err(ApiError::forbidden()),
        }
    }

    /// The cooperative an accountant's operation concerns: their own; an admin names one.
    pub fn cooperative_for(&self, requested: Option<&str>) -> Result<String, ApiError> {
        match (self.token.role, &self.token.cooperative, requested) {
            (Role::CoopAccountant | Role::Cashier, Some(own), None) => Ok(own.clone()),
            (Role::CoopAccountant | Role::Cashier, Some(own), Some(r)) if r == own => {
                Ok(own.clone())
            }
            (Role::Admin, _, Some(r)) => Ok(r.to_string()),
            (Role::Admin, _, None) => Err(ApiError::bad_request(
                "invalid_input",
                "cooperative",
                "cooperative: an admin names the cooperative",
            )),
            _ => Err(ApiError::forbidden()),
        }
    }
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The stored form of a short secret (a till pairing code): an HMAC under the server's key, so
/// that a copy of the database alone does not let anyone run through the few possible values.
/// `purpose` separates the uses. It has a token hash's shape (64 hex digits), and no bearer
/// secret's SHA-256 can be made to equal it without the key.
pub fn keyed_hash(key: &[u8; 32], purpose: &str, secret: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(b"hongxin/short-secret/v1\0");
    mac.update(purpose.as_bytes());
    mac.update(b"\0");
    mac.update(secret.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ip = client_ip(parts);
        // A bearer token (API clients), else the web pages' session cookie.
        let (token, kind) = match parts.headers.get(AUTHORIZATION) {
            Some(header) => {
                state.auth_allowed(ip, None)?;
                let token = header
                    .to_str()
                    .ok()
                    .and_then(|h| h.strip_prefix("Bearer "))
                    .map(str::trim)
                    .filter(|t| !t.is_empty() && t.len() <= 200);
                match token {
                    Some(t) => (t, "bearer"),
                    None => {
                        state.auth_failed(ip, None, "bearer");
                        return Err(ApiError::unauthorized());
                    }
                }
            }
            None => {
                let cookie =
                    session::session_cookie(&parts.headers).ok_or_else(ApiError::unauthorized)?;
                state.auth_allowed(ip, None)?;
                // A cookie is sent by the browser whoever made the page: a request that
                // changes something must prove it came from ours.
                let reads_only = matches!(parts.method, Method::GET | Method::HEAD);
                if !reads_only && !session::csrf_ok(&parts.headers, cookie) {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "csrf_failed",
                        "this request needs the page's X-CSRF-Token: reload the page",
                    )
                    .with_field("X-CSRF-Token"));
                }
                (cookie, "session")
            }
        };
        let record = state.app.store.token_by_hash(&token_hash(token)).await?;
        let now = chrono::Utc::now();
        // A pairing code is good for the pairing sign-in only, never as a bearer token (its
        // stored hash is keyed, so this is a second lock on the same door).
        let live = record.filter(|r| {
            !r.revoked
                && r.expires_at.is_none_or(|t| t > now)
                && r.label.as_deref() != Some(session::PAIRING_LABEL)
        });
        match live {
            Some(token) => Ok(Principal { token }),
            None => {
                state.auth_failed(ip, None, kind);
                Err(ApiError::unauthorized())
            }
        }
    }
}

fn client_ip(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// The caller's address, for rate limits (unspecified when not served over TCP).
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(ClientIp(client_ip(parts)))
    }
}

/// Parses a numeric path parameter, naming it when it is not one.
pub fn path_id(name: &str, value: &str) -> Result<i64, ApiError> {
    value.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_path_parameter",
            format!("{name} must be a positive whole number"),
        )
        .with_field(name)
    })
}
