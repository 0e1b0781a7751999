//! One error type for the HTTP layer, rendered once as `application/problem+json` (RFC 9457)
//! with a stable `code`. Internal causes are logged, never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::{LineError, Rejection, StoreError};

/// Every `code` a problem+json answer of this server can carry. The web pages have a message
/// in each language for each of them (tests/browser checks every page); a test below reads the
/// sources so that a new code cannot be added without being listed here.
pub const PROBLEM_CODES: &[&str] = &[
    // Business rejections (`Rejection::code`, SPEC §9).
    "invalid_amount",
    "invalid_input",
    "not_whole_units",
    "cap_exceeded",
    "insufficient_funds",
    "not_found",
    "already_exists",
    "not_eligible",
    "method_not_accepted",
    "tender_mismatch",
    "voucher_invalid",
    "voucher_typo",
    "voucher_exchanged",
    "voucher_not_exchangeable",
    "not_refundable",
    "not_voidable",
    "no_policy",
    "period_closed",
    "import_failed",
    "idempotency_key_reused",
    "forbidden",
    "arrears_outstanding",
    // Spending a household's wallet: the resident's card or PIN (SPEC §10).
    "resident_required",
    "resident_proof_failed",
    // The HTTP layer: requests, sessions, idempotency.
    "bad_body",
    "bad_idempotency_key",
    "bad_path_parameter",
    "body_too_large",
    "csrf_failed",
    "idempotency_in_flight",
    "idempotency_key_required",
    "internal",
    "malformed_json",
    "method_not_allowed",
    "rate_limited",
    "request_timeout",
    "sign_in_failed",
    "unauthorized",
    "unsupported_media_type",
];

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `urn:hongxin:problem:{code}`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code, e.g. `insufficient_funds`.
    pub code: String,
    /// The request field at fault, e.g. `tenders[0].amount`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Bad rows of an import.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<LineError>>,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Boxed: errors travel in every handler's `Result`, which should stay small.
    pub problem: Box<Problem>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            problem: Box::new(Problem {
                kind: format!("urn:hongxin:problem:{code}"),
                title: status.canonical_reason().unwrap_or("Error").to_string(),
                status: status.as_u16(),
                detail: detail.into(),
                code: code.to_string(),
                field: None,
                errors: None,
            }),
            retry_after: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.problem.field = Some(field.into());
        self
    }

    pub fn code(&self) -> &str {
        &self.problem.code
    }

    pub fn bad_request(code: &str, field: &str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail).with_field(field)
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        )
    }

    pub fn forbidden() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token may not do that",
        )
    }

    /// For things whose very existence is private to the caller.
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what}"),
        )
    }

    pub fn too_many(retry_after_secs: u64) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many attempts; wait and try again",
        );
        e.retry_after = Some(retry_after_secs.max(1));
        e
    }

    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server could not complete the request; it is safe to retry with the same Idempotency-Key",
        )
    }
}

/// HTTP status of each business rejection.
pub fn status_of(r: &Rejection) -> StatusCode {
    match r {
        Rejection::NotFound { .. } => StatusCode::NOT_FOUND,
        // A code in the path (lookup, void) answers like an unknown resource; a code in a
        // sale's tenders is a bad field of that sale.
        Rejection::VoucherInvalid { field } if field == "code" => StatusCode::NOT_FOUND,
        Rejection::AlreadyExists { .. }
        | Rejection::NotRefundable { .. }
        | Rejection::NotVoidable { .. }
        | Rejection::PeriodClosed { .. }
        | Rejection::VoucherExchanged { .. }
        | Rejection::VoucherNotExchangeable { .. }
        | Rejection::NoPolicy { .. }
        | Rejection::ArrearsOutstanding { .. } => StatusCode::CONFLICT,
        Rejection::Forbidden => StatusCode::FORBIDDEN,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> ApiError {
        let mut e = ApiError::new(status_of(&r), r.code(), r.to_string());
        e.problem.field = r.field().map(str::to_owned);
        if let Rejection::ImportFailed { errors } = r {
            e.problem.errors = Some(errors);
        }
        e
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        if let Some(cause) = e.unavailable() {
            // Outside hongxin and passing (a database restarting, a full disk): the same
            // request with the same Idempotency-Key can be sent again and posts at most once.
            tracing::error!(error = %e, code = cause.code(), "store unavailable");
            let mut api = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                cause.code(),
                match cause {
                    crate::domain::Unavailable::StorageFull => {
                        "the ledger's storage is full; nothing was posted. Retry later with the same Idempotency-Key"
                    }
                    _ => "the ledger's database is unavailable. Retry later with the same Idempotency-Key: what was posted is replayed, never posted twice",
                },
            );
            api.retry_after = Some(1);
            return api;
        }
        tracing::error!(error = %e, "store failure");
        ApiError::internal()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                headers.insert(header::RETRY_AFTER, v);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::PROBLEM_CODES;
    use std::path::Path;

    /// The arguments of each call of `name(` in `source`, split at top-level commas.
    fn calls<'a>(source: &'a str, name: &str) -> Vec<Vec<&'a str>> {
        let mut out = Vec::new();
        for (at, _) in source.match_indices(name) {
            let args = &source[at + name.len()..];
            let (mut depth, mut start, mut parts, mut quoted) = (0usize, 0usize, Vec::new(), false);
            for (i, c) in args.char_indices() {
                match c {
                    '"' => quoted = !quoted,
                    _ if quoted => {}
                    '(' | '[' | '{' => depth += 1,
                    ')' | ']' | '}' if depth == 0 => {
                        parts.push(args[start..i].trim());
                        break;
                    }
                    ')' | ']' | '}' => depth -= 1,
                    ',' if depth == 0 => {
                        parts.push(args[start..i].trim());
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            out.push(parts);
        }
        out
    }

    fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// A string literal argument that is a code: `"not_found"`.
    fn literal(arg: &str) -> Option<&str> {
        let inner = arg.strip_prefix('"')?.strip_suffix('"')?;
        inner
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_')
            .then_some(inner)
    }

    #[test]
    fn every_code_the_sources_can_answer_with_is_listed() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let mut found = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).expect("read source");
            for args in calls(&text, "ApiError::new(") {
                found.extend(args.get(1).and_then(|a| literal(a)).map(str::to_owned));
            }
            for args in calls(&text, "ApiError::bad_request(") {
                found.extend(args.first().and_then(|a| literal(a)).map(str::to_owned));
            }
        }
        // Rejection::code: the match arms of its body.
        let domain = std::fs::read_to_string(src.join("domain/mod.rs")).expect("domain");
        let body = domain
            .split("pub fn code(&self) -> &'static str {")
            .nth(1)
            .and_then(|b| b.split("\n    }\n").next())
            .expect("Rejection::code");
        for arm in body.lines().filter_map(|l| l.split("=> ").nth(1)) {
            found.extend(literal(arm.trim_end_matches(',')).map(str::to_owned));
        }
        for must in [
            "invalid_amount",
            "forbidden",
            "csrf_failed",
            "sign_in_failed",
        ] {
            assert!(
                found.iter().any(|f| f == must),
                "the scan missed {must}: {found:?}"
            );
        }
        let mut missing: Vec<&String> = found
            .iter()
            .filter(|c| !PROBLEM_CODES.contains(&c.as_str()))
            .collect();
        missing.sort();
        missing.dedup();
        assert!(
            missing.is_empty(),
            "problem codes answered by the server but not in PROBLEM_CODES: {missing:?}"
        );
        for code in PROBLEM_CODES {
            assert!(
                found.iter().any(|f| f == code),
                "PROBLEM_CODES lists {code:?}, which nothing answers"
            );
        }
    }
}
