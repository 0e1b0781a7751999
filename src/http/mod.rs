//! HTTP API v1 (SPEC §9) on axum: the router, shared state, the idempotent write helper,
//! and serving with graceful shutdown. Handlers parse input into domain commands, run one
//! command through the store's write path and render its receipt; they hold no business rules.

pub(crate) mod admin;
mod alliance;
mod coop;
pub mod error;
pub mod extract;
mod fees;
mod households;
pub mod limits;
pub mod metrics;
mod money;
mod move_out;
mod office;
mod ops;
mod reports;
pub mod resident;
mod resident_view;
mod till;
mod vouchers;

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::app::App;
use crate::domain::{Command, Receipt};
use crate::store::{Envelope, Idempotency};
use error::ApiError;
use extract::Principal;
use limits::{Limits, RateConfig};
use metrics::Metrics;

/// Settings of the HTTP layer, each with an explicit bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// How long idempotency keys are remembered.
    pub idempotency_retention: Duration,
    /// How long a resident's session lasts.
    pub resident_session: Duration,
    /// How long a staff member's web session (till, office, cooperative pages) lasts.
    pub staff_session: Duration,
    pub rates: RateConfig,
    /// Origin printed in residents' signed links, e.g. `https://hongxin.example.org`.
    pub public_url: String,
    /// Time between housekeeping runs (voucher expiry, idempotency and session pruning).
    pub housekeeping_every: Duration,
    /// A connection that has not sent a request's whole head within this is closed.
    pub header_read_timeout: Duration,
    /// A request (its body read and its answer made) that takes longer is answered 408.
    pub request_timeout: Duration,
    /// Open connections at most; further ones wait in the listen queue until one closes.
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body_limit: 64 * 1024,
            idempotency_retention: Duration::from_secs(7 * 24 * 3600),
            resident_session: Duration::from_secs(30 * 60),
            staff_session: Duration::from_secs(12 * 3600),
            rates: RateConfig::default(),
            public_url: "http://127.0.0.1:8080".into(),
            housekeeping_every: Duration::from_secs(3600),
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub app: App,
    pub config: Arc<HttpConfig>,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<Limits>,
    /// (token, Idempotency-Key) pairs being worked on now: a duplicate is 409.
    in_flight: Arc<Mutex<HashSet<(i64, String)>>>,
}

impl AppState {
    /// Refuses (429) an address or target that has failed to authenticate too often lately.
    pub(crate) fn auth_allowed(
        &self,
        ip: std::net::IpAddr,
        target: Option<&str>,
    ) -> Result<(), ApiError> {
        self.limits.auth_allowed(ip, target).inspect_err(|_| {
            self.metrics.auth_throttled.inc();
        })
    }

    /// Counts a failed authentication of this kind against the address and target.
    pub(crate) fn auth_failed(
        &self,
        ip: std::net::IpAddr,
        target: Option<&str>,
        kind: &'static str,
    ) {
        self.limits.auth_failed(ip, target);
        self.metrics.auth_failed(kind);
    }

    pub fn new(app: App, config: HttpConfig) -> AppState {
        AppState {
            app,
            limits: Arc::new(Limits::new(&config.rates)),
            config: Arc::new(config),
            metrics: Metrics::new(),
            in_flight: Arc::new(Mutex::new(HashSet::new())),
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hongxin 红心 API",
        description = "Ledger for 居民购物50元换55元 (pay 50, get 55 of shopping credit) and 合作社盈利用物业 (cooperative profit toward property fees). Amounts are strings in yuan with at most two decimals. Errors are application/problem+json with a stable `code`. Every POST that moves money needs an Idempotency-Key header."
    ),
    // The schemas of input limits (crate::openapi), all of them: those named only by query
    // parameters are not collected from the routes.
    components(schemas(
        error::Problem,
        crate::openapi::Code,
        crate::openapi::Month,
        crate::openapi::Quantity,
        crate::openapi::Area,
        crate::openapi::RequestAmount,
        crate::openapi::Price,
        crate::openapi::Text10,
        crate::openapi::Text30,
        crate::openapi::Text50,
        crate::openapi::Text100,
        crate::openapi::Text200,
        crate::openapi::Format,
        crate::openapi::TillFormat,
        crate::openapi::Lang,
        crate::openapi::AllianceTable
    )),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The router and the OpenAPI document, built from the same handler list so they cannot drift.
pub fn router(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let (api_router, mut api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(money::routes())
        .merge(vouchers::routes())
        .merge(households::routes())
        .merge(move_out::routes())
        .merge(fees::routes())
        .merge(admin::routes())
        .merge(resident::routes())
        .merge(resident_view::routes())
        .merge(ops::routes())
        .merge(reports::routes())
        .merge(till::routes())
        .merge(office::routes())
        .merge(coop::routes())
        .merge(alliance::routes())
        .split_for_parts();
    api.openapi = utoipa::openapi::OpenApiVersion::Version31;
    let doc = api.clone();
    let doc_json = Arc::new(
        serde_json::to_value(&doc)
            .map(problems_documented)
            .and_then(|v| serde_json::to_vec(&v))
            .unwrap_or_default(),
    );
    let router = api_router
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let body = doc_json.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        body.as_ref().clone(),
                    )
                }
            }),
        )
        .merge(crate::web::routes())
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this path does not take that method",
            )
        })
        .layer(axum::middleware::from_fn(api_headers))
        .layer(axum::middleware::from_fn_with_state(
            state.config.request_timeout,
            request_deadline,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), RequestIds::default()))
        .with_state(state);
    (router, doc)
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The served document says what the server sends on refusal: every error body is
/// `application/problem+json` (not `application/json`), and any status an operation does not
/// list (401 without a valid token, 403, 408, 413, 415, 429 …) is its `default` response, a
/// problem.
fn problems_documented(mut doc: serde_json::Value) -> serde_json::Value {
    use serde_json::{json, Value};
    let problem_ref = "#/components/schemas/Problem";
    // Bodies whose every field has a default may be left out altogether (OptionalJson).
    let all_optional: Vec<String> = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .map(|schemas| {
            schemas
                .iter()
                .filter(|(_, s)| {
                    s.get("type") == Some(&json!("object"))
                        && s.get("required")
                            .is_none_or(|r| r.as_array().is_some_and(Vec::is_empty))
                })
                .map(|(name, _)| format!("#/components/schemas/{name}"))
                .collect()
        })
        .unwrap_or_default();
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return doc;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            if !matches!(
                method.as_str(),
                "get" | "post" | "put" | "delete" | "patch" | "head"
            ) {
                continue;
            }
            if let Some(body) = operation.get_mut("requestBody") {
                let optional = body
                    .pointer("/content/application~1json/schema/$ref")
                    .and_then(Value::as_str)
                    .is_some_and(|r| all_optional.iter().any(|o| o == r));
                if optional {
                    body["required"] = json!(false);
                }
            }
            // The limits the server enforces on parameters: an Idempotency-Key is 1–255 visible
            // ASCII characters; a numeric path id is positive.
            if let Some(params) = operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
            {
                for p in params.iter_mut() {
                    let name = p.get("name").and_then(Value::as_str).unwrap_or("");
                    let place = p.get("in").and_then(Value::as_str).unwrap_or("");
                    if place == "header" && name.eq_ignore_ascii_case("idempotency-key") {
                        p["schema"] = json!({
                            "type": "string", "minLength": 1, "maxLength": 255,
                            "pattern": "^[!-~]+$"
                        });
                    } else if place == "path"
                        && p.pointer("/schema/type").and_then(Value::as_str) == Some("integer")
                    {
                        p["schema"]["minimum"] = json!(1);
                    }
                }
            }
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            for response in responses.values_mut() {
                let Some(content) = response.get_mut("content").and_then(Value::as_object_mut)
                else {
                    continue;
                };
                let is_problem = content
                    .get("application/json")
                    .and_then(|c| c.pointer("/schema/$ref"))
                    .and_then(Value::as_str)
                    == Some(problem_ref);
                if is_problem {
                    if let Some(c) = content.remove("application/json") {
                        content.insert("application/problem+json".into(), c);
                    }
                }
            }
            responses.entry("default").or_insert_with(|| {
                json!({
                    "description": "a refusal: application/problem+json with a stable `code`",
                    "content": { "application/problem+json": { "schema": { "$ref": problem_ref } } }
                })
            });
        }
    }
    doc
}

/// A request that has not been answered within the configured time (a body sent byte by byte, a
/// report too large) is answered 408 and its work dropped; a write already handed to the engine
/// still completes, and its Idempotency-Key replays it.
async fn request_deadline(
    axum::extract::State(limit): axum::extract::State<Duration>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("the request took longer than {} s", limit.as_secs()),
        )
        .into_response(),
    }
}

/// Every answer is `nosniff`; the API's answers (`/v1`, `/web` sign-in) are never cached; and a
/// refusal made by the framework's own extractors (a path parameter that is not UTF-8, a query
/// that does not parse) becomes problem+json like every other error.
async fn api_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
    let api = {
        let path = req.uri().path();
        path.starts_with("/v1/") || path.starts_with("/web/")
    };
    let mut response = next.run(req).await;
    let status = response.status();
    let plain = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if status.is_client_error() && plain {
        let bytes = axum::body::to_bytes(std::mem::take(response.body_mut()), 4096)
            .await
            .unwrap_or_default();
        let detail = String::from_utf8_lossy(&bytes).into_owned();
        let code = if status == StatusCode::BAD_REQUEST {
            "bad_request"
        } else {
            "invalid_input"
        };
        response = ApiError::new(status, code, detail).into_response();
    }
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if api {
        headers
            .entry(CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
    }
    response
}

/// Request ids: the process start time and a counter, unique per process and cheap.
#[derive(Clone, Default)]
struct RequestIds {
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n}", std::process::id()))
            .ok()
            .map(RequestId::new)
    }
}

/// Serves until `shutdown` resolves, then finishes the requests in flight. Each connection must
/// send a request's head within `header_read_timeout`; at most `max_connections` are open at
/// once (the rest wait in the kernel's listen queue); a request runs `request_timeout` at most.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::Service;

    let housekeeping = tokio::spawn(housekeeping(state.clone()));
    let config = state.config.clone();
    let (router, _) = router(state);
    let slots = Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            router.clone().call(req.map(axum::body::Body::new))
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    housekeeping.abort();
    Ok(())
}

/// Runs [`housekeep_once`] every `housekeeping_every`, from start-up on.
async fn housekeeping(state: AppState) {
    let mut tick = tokio::time::interval(state.config.housekeeping_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lease = None;
    loop {
        tick.tick().await;
        housekeep_once(&state, &mut lease).await;
    }
}

/// What one housekeeping run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Housekeeping {
    pub vouchers_expired: u64,
    /// Expired vouchers whose breakage was recognised (the policy's `breakage_after_months`).
    pub vouchers_broken: u64,
    pub idempotency_pruned: u64,
    pub sessions_pruned: u64,
}

/// Bounds the commands one run sends per task; each command handles a bounded batch.
const HOUSEKEEPING_ROUNDS: usize = 1_000;

/// One housekeeping run: this process's idle rate-limit keys, then — only while this process
/// holds the database's housekeeping [`Lease`](crate::store::Lease), so that of several
/// PostgreSQL processes one does it — vouchers past their validity expired (per the policy that
/// issued them), idempotency keys past retention and residents' expired sessions forgotten.
/// `None` when another process holds the lease or the run failed; both are logged and counted
/// in /metrics (`hongxin_housekeeping_runs_total{outcome}`, `hongxin_housekeeping_items_total{task}`).
pub async fn housekeep_once(
    state: &AppState,
    lease: &mut Option<crate::store::Lease>,
) -> Option<Housekeeping> {
    state.limits.prune();
    let held = match lease {
        Some(l) => l.still_held().await,
        None => false,
    };
    if !held {
        *lease = match state.app.store.try_housekeeping_lease().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "housekeeping: taking the lease failed");
                state.metrics.housekeeping_run("failed");
                return None;
            }
        };
    }
    if lease.is_none() {
        tracing::debug!("housekeeping: another process holds the lease");
        state.metrics.housekeeping_run("skipped");
        return None;
    }
    match housekeeping_tasks(state).await {
        Ok(done) => {
            tracing::info!(
                vouchers_expired = done.vouchers_expired,
                vouchers_broken = done.vouchers_broken,
                idempotency_pruned = done.idempotency_pruned,
                sessions_pruned = done.sessions_pruned,
                "housekeeping done"
            );
            state.metrics.housekeeping_run("ran");
            state
                .metrics
                .housekeeping_items("vouchers_expired", done.vouchers_expired);
            state
                .metrics
                .housekeeping_items("vouchers_broken", done.vouchers_broken);
            state
                .metrics
                .housekeeping_items("idempotency_pruned", done.idempotency_pruned);
            state
                .metrics
                .housekeeping_items("sessions_pruned", done.sessions_pruned);
            Some(done)
        }
        Err(e) => {
            tracing::warn!(error = %e, "housekeeping failed; it runs again at the next interval");
            state.metrics.housekeeping_run("failed");
            None
        }
    }
}

async fn housekeeping_tasks(state: &AppState) -> Result<Housekeeping, String> {
    let mut done = Housekeeping::default();
    for _ in 0..HOUSEKEEPING_ROUNDS {
        match state.app.run(Command::ExpireVouchers).await {
            Ok(Ok(Receipt::Expired(r))) if r.vouchers > 0 || r.broken > 0 => {
                done.vouchers_expired += r.vouchers;
                done.vouchers_broken += r.broken;
            }
            Ok(Ok(_)) => break,
            Ok(Err(rejection)) => return Err(format!("expiring vouchers: {rejection}")),
            Err(e) => return Err(format!("expiring vouchers: {e}")),
        }
    }
    let retention = chrono::Duration::from_std(state.config.idempotency_retention)
        .unwrap_or(chrono::Duration::days(7));
    let before = chrono::Utc::now() - retention;
    done.idempotency_pruned = pruned(state, Command::PruneIdempotency { before }).await?;
    let now = chrono::Utc::now();
    for _ in 0..HOUSEKEEPING_ROUNDS {
        let n = pruned(state, Command::PruneExpiredSessions { before: now }).await?;
        done.sessions_pruned += n;
        if n < u64::from(crate::domain::PRUNE_SESSIONS_BATCH) {
            break;
        }
    }
    Ok(done)
}

/// How many records a pruning command removed.
async fn pruned(state: &AppState, command: Command) -> Result<u64, String> {
    let what = format!("{command:?}");
    match state.app.run(command).await {
        Ok(Ok(Receipt::Imported(i))) => Ok(i.updated),
        Ok(Ok(other)) => Err(format!("{what}: unexpected receipt {other:?}")),
        Ok(Err(rejection)) => Err(format!("{what}: {rejection}")),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// The receipt of a command as the client sees it (its variant's fields).
fn receipt_body(r: &Receipt) -> serde_json::Value {
    let v = match r {
        Receipt::Created(x) => serde_json::to_value(x),
        Receipt::Imported(x) => serde_json::to_value(x),
        Receipt::TopUp(x) => serde_json::to_value(x),
        Receipt::Sale(x) => serde_json::to_value(x),
        Receipt::SaleRefund(x) => serde_json::to_value(x),
        Receipt::CreditRefund(x) => serde_json::to_value(x),
        Receipt::TopUpVoid(x) => serde_json::to_value(x),
        Receipt::Expired(x) => serde_json::to_value(x),
        Receipt::Exchanged(x) => serde_json::to_value(x),
        Receipt::Posted(x) => serde_json::to_value(x),
        Receipt::Bills(x) => serde_json::to_value(x),
        Receipt::FeePayment(x) => serde_json::to_value(x),
        Receipt::MonthClose(x) => serde_json::to_value(x),
        Receipt::Settlement(x) => serde_json::to_value(x),
        Receipt::MoveOut(x) => serde_json::to_value(x),
        Receipt::MasterChanged(x) => serde_json::to_value(x),
    };
    v.unwrap_or(serde_json::Value::Null)
}

fn posts_entry(r: &Receipt) -> bool {
    match r {
        Receipt::TopUp(_)
        | Receipt::Sale(_)
        | Receipt::SaleRefund(_)
        | Receipt::TopUpVoid(_)
        | Receipt::Posted(_)
        | Receipt::FeePayment(_)
        | Receipt::Settlement(_)
        | Receipt::MoveOut(_) => true,
        Receipt::Bills(b) => b.entry.is_some(),
        Receipt::MonthClose(c) => c.entry.is_some(),
        Receipt::CreditRefund(c) => c.entry != 0,
        _ => false,
    }
}

/// Keeps an Idempotency-Key marked in flight until the request is answered.
struct InFlight {
    set: Arc<Mutex<HashSet<(i64, String)>>>,
    key: (i64, String),
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.key);
        }
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()));
    match key {
        Some(k) => Ok(Some(k.to_string())),
        None => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_idempotency_key",
            "Idempotency-Key must be 1–255 visible ASCII characters",
        )
        .with_field("Idempotency-Key")),
    }
}

/// The body as canonical JSON, for the idempotency fingerprint: object keys sorted, no
/// insignificant whitespace, strings and numbers as `serde_json` writes them. The same request
/// sent with its keys in another order, or pretty-printed, is the same request. A body that is
/// not JSON (the command was parsed from something else) is taken as it is.
fn canonical_body(raw: &[u8]) -> Vec<u8> {
    fn write(v: &serde_json::Value, out: &mut Vec<u8>) {
        use serde_json::Value;
        match v {
            Value::Object(map) => {
                // Sorted here, whatever order the map keeps (serde_json's `preserve_order`).
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                out.push(b'{');
                for (i, (k, v)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(&Value::String(k.clone()), out);
                    out.push(b':');
                    write(v, out);
                }
                out.push(b'}');
            }
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(item, out);
                }
                out.push(b']');
            }
            scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
        }
    }
    match serde_json::from_slice::<serde_json::Value>(raw) {
        Ok(v) => {
            let mut out = Vec::with_capacity(raw.len());
            write(&v, &mut out);
            out
        }
        Err(_) => raw.to_vec(),
    }
}

/// Whether the request must carry an Idempotency-Key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    Required,
    Optional,
}

/// Runs one command for a caller: the idempotency key first (replay, reuse, in flight), then
/// the store's write path, then the receipt rendered with `status` or the rejection.
pub(crate) async fn submit(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    (route, raw): (&str, &[u8]),
    command: Command,
    status: StatusCode,
    key_rule: Key,
) -> Result<Response, ApiError> {
    let key = idempotency_key(headers)?;
    if key.is_none() && key_rule == Key::Required {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "idempotency_key_required",
            "this request moves money: send an Idempotency-Key header, made once per attempt",
        )
        .with_field("Idempotency-Key"));
    }
    let _guard = match &key {
        Some(k) => {
            let entry = (principal.id(), k.clone());
            let mut set = state.in_flight.lock().map_err(|_| ApiError::internal())?;
            if !set.insert(entry.clone()) {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_in_flight",
                    "a request with this Idempotency-Key is still being processed",
                ));
            }
            Some(InFlight {
                set: state.in_flight.clone(),
                key: entry,
            })
        }
        None => None,
    };
    let idempotency = key.map(|key| {
        let digest = |body: &[u8]| {
            let mut h = Sha256::new();
            h.update(route.as_bytes());
            h.update([0]);
            h.update(body);
            hex::encode(h.finalize())
        };
        Idempotency {
            scope: principal.id().to_string(),
            key,
            fingerprint: digest(&canonical_body(raw)),
            raw_fingerprint: Some(digest(raw)),
        }
    });
    let outcome = state
        .app
        .execute(Envelope {
            actor: Some(principal.id()),
            idempotency,
            command,
        })
        .await?;
    let mut response = match outcome.result {
        Ok(receipt) => {
            if posts_entry(&receipt) && !outcome.replayed {
                state.metrics.entries_posted.inc();
            }
            (status, axum::Json(receipt_body(&receipt))).into_response()
        }
        Err(rejection) => {
            state.metrics.reject(rejection.code());
            ApiError::from(rejection).into_response()
        }
    };
    if outcome.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// A running server for tests and tools: bound address and a handle to stop it.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Binds `listen` (use port 0 for any free port) and serves in the background.
    pub async fn start(state: AppState, listen: &str) -> std::io::Result<Running> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(state, listener, async move {
            let _ = stopped.await;
        }));
        Ok(Running {
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// Stops accepting, lets requests in flight finish, and waits.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.map_err(std::io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use super::canonical_body;

    #[test]
    fn the_fingerprint_body_ignores_key_order_and_whitespace() {
        let a = br#"{"household":"H1","paid":"100.00","method":"cash","tenders":[{"type":"cash","amount":"1"}]}"#;
        let b = b"{ \"tenders\" : [ {\"amount\":\"1\", \"type\":\"cash\"} ],\n  \"method\":\"cash\",\"paid\":\"100.00\",\"household\":\"H1\" }";
        assert_eq!(canonical_body(a), canonical_body(b));
        assert_eq!(
            String::from_utf8(canonical_body(b)).unwrap(),
            r#"{"household":"H1","method":"cash","paid":"100.00","tenders":[{"amount":"1","type":"cash"}]}"#
        );
        // A different value, or the same values in another array order, is another request.
        let c = br#"{"household":"H1","paid":"150.00","method":"cash","tenders":[{"type":"cash","amount":"1"}]}"#;
        assert_ne!(canonical_body(a), canonical_body(c));
        assert_ne!(canonical_body(b"[1,2]"), canonical_body(b"[2,1]"));
        // Escapes are normalised too: "\u0048" is "H".
        assert_eq!(
            canonical_body(br#"{"h":"\u0048"}"#),
            canonical_body(br#"{"h":"H"}"#)
        );
        assert_eq!(canonical_body(b"not json"), b"not json".to_vec());
    }
}
