//! The web pages served by `hongxin serve` itself, for the people of SPEC §2 who do not use
//! curl: the till (`/till`), the resident's page (`/resident`, and `/r/{household}` that the
//! household card's signed link opens), the property company's office (`/office`), the
//! cooperative's accountant (`/coop`) and the alliance's board (`/alliance`).
//!
//! Each page is a small HTML document with its own script; the scripts talk to the same
//! `/v1` API as every other client, authenticated by the session cookie of [`session`]. Chinese
//! is the default language, English a switch away (`common.js`). Pages and assets are compiled
//! into the binary, so there is nothing to deploy beside it, and every response carries a strict
//! Content-Security-Policy: scripts, styles and connections from this origin only, no inline
//! script or style, no framing.

pub mod session;

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::http::AppState;

/// Compiled-in files: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "common.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/common.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/style.css"),
    ),
    (
        "index.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/index.js"),
    ),
    (
        "office-desk.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/office-desk.js"),
    ),
    (
        "office-receipt.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/office-receipt.js"),
    ),
    (
        "till.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/till.js"),
    ),
    (
        "coop_credit.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/coop_credit.js"),
    ),
    (
        "resident.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/resident.js"),
    ),
    (
        "office.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/office.js"),
    ),
    (
        "office-master.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/office-master.js"),
    ),
    (
        "coop.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/coop.js"),
    ),
    (
        "alliance.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/alliance.js"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_bytes!("assets/icon.svg"),
    ),
];

/// Pages: path and document.
const PAGES: &[(&str, &str)] = &[
    ("index", include_str!("assets/index.html")),
    ("till", include_str!("assets/till.html")),
    ("resident", include_str!("assets/resident.html")),
    ("office", include_str!("assets/office.html")),
    ("coop", include_str!("assets/coop.html")),
    ("alliance", include_str!("assets/alliance.html")),
];

/// A digest of every asset: asset URLs carry it (`?v=`), so a browser may keep them for a year
/// and still fetches new ones after an upgrade.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut h = Sha256::new();
    for (name, _, bytes) in ASSETS {
        h.update(name.as_bytes());
        h.update(bytes);
    }
    hex::encode(&h.finalize()[..6])
});

/// The pages with `{{v}}` replaced by [`VERSION`].
static RENDERED: LazyLock<Vec<(&'static str, String)>> = LazyLock::new(|| {
    PAGES
        .iter()
        .map(|(name, html)| (*name, html.replace("{{v}}", &VERSION)))
        .collect()
});

/// What the pages may load and do. No inline script or style at all; `data:` images for QR
/// codes and charts drawn in the page.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
    manifest-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { page("index") }))
        .route("/till", get(|| async { page("till") }))
        .route("/resident", get(|| async { page("resident") }))
        // The household card's signed link; the page signs in and drops the secret from the
        // address bar and history at once.
        .route("/r/{household}", get(|| async { page("resident") }))
        .route("/office", get(|| async { page("office") }))
        .route("/coop", get(|| async { page("coop") }))
        .route("/alliance", get(|| async { page("alliance") }))
        .route("/assets/{name}", get(asset))
        .merge(session::routes())
        .layer(axum::middleware::map_response(security_headers))
}

/// For working on the pages: with `HONGXIN_WEB_DIR` set (e.g. to `src/web/assets`), pages and
/// assets are read from that directory on every request instead of the compiled-in copies, so
/// an edit shows on reload without a rebuild. Unset in production.
fn dev_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("HONGXIN_WEB_DIR").map(std::path::PathBuf::from)
}

fn page(name: &str) -> Response {
    if let Some(dir) = dev_dir() {
        if let Ok(html) = std::fs::read_to_string(dir.join(format!("{name}.html"))) {
            return (
                [
                    (CONTENT_TYPE, "text/html; charset=utf-8"),
                    (CACHE_CONTROL, "no-store"),
                ],
                html.replace("{{v}}", "dev"),
            )
                .into_response();
        }
    }
    match RENDERED.iter().find(|(n, _)| *n == name) {
        Some((_, html)) => (
            [
                (CONTENT_TYPE, "text/html; charset=utf-8"),
                (CACHE_CONTROL, "no-store"),
            ],
            html.clone(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn asset(Path(name): Path<String>) -> Response {
    if let (Some(dir), Some((_, content_type, _))) =
        (dev_dir(), ASSETS.iter().find(|(n, _, _)| *n == name))
    {
        if let Ok(bytes) = std::fs::read(dir.join(&name)) {
            return (
                [(CONTENT_TYPE, *content_type), (CACHE_CONTROL, "no-store")],
                bytes,
            )
                .into_response();
        }
    }
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, bytes)) => (
            [
                (CONTENT_TYPE, *content_type),
                (CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            *bytes,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such asset",
        )
            .into_response(),
    }
}

/// Headers on every page, asset and session answer.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        // The resident's link carries a secret: never send it on as a referrer.
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cross-origin-opener-policy", "same-origin"),
        (
            "permissions-policy",
            "camera=(self), microphone=(), geolocation=()",
        ),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_loads_only_compiled_in_assets() {
        for (name, html) in RENDERED.iter() {
            assert!(!html.contains("{{v}}"), "{name}: version not filled in");
            for part in html.split("/assets/").skip(1) {
                let file = part.split(['?', '"']).next().unwrap_or("");
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == file),
                    "{name} loads /assets/{file}, which is not compiled in"
                );
            }
            assert!(
                !html.contains("<script>") && !html.contains(" style="),
                "{name}: inline script or style would be refused by the CSP"
            );
        }
    }
}
