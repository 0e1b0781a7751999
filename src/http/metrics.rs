//! Prometheus metrics: requests and latency per route, entries posted, write batch sizes and
//! rejections by code.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteOnly {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    pub task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    pub code: String,
}

type HistogramFamily = Family<RouteOnly, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~4 s
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RouteLabels, Counter>,
    pub latency: HistogramFamily,
    pub entries_posted: Counter,
    pub rejections: Family<CodeLabels, Counter>,
    /// Housekeeping runs by outcome: `ran`, `skipped` (another process holds the lease),
    /// `failed`.
    pub housekeeping_runs: Family<OutcomeLabels, Counter>,
    /// What housekeeping did, by task: `vouchers_expired`, `vouchers_broken`, `idempotency_pruned`,
    /// `sessions_pruned`.
    pub housekeeping_items: Family<TaskLabels, Counter>,
    /// Failed authentications by kind (bearer, session, staff_sign_in, pairing, resident_link,
    /// resident_pin, resident_proof).
    pub auth_failures: Family<KindLabels, Counter>,
    /// Requests refused with 429 because their address or target failed too often.
    pub auth_throttled: Counter,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("hongxin");
        let requests = Family::<RouteLabels, Counter>::default();
        let latency = HistogramFamily::new_with_constructor(latency_histogram);
        let entries_posted = Counter::default();
        let rejections = Family::<CodeLabels, Counter>::default();
        let housekeeping_runs = Family::<OutcomeLabels, Counter>::default();
        let housekeeping_items = Family::<TaskLabels, Counter>::default();
        registry.register(
            "housekeeping_runs",
            "Housekeeping runs by outcome (ran, skipped: another process holds the lease, failed)",
            housekeeping_runs.clone(),
        );
        registry.register(
            "housekeeping_items",
            "Vouchers expired and records pruned by housekeeping, by task",
            housekeeping_items.clone(),
        );
        let auth_failures = Family::<KindLabels, Counter>::default();
        let auth_throttled = Counter::default();
        registry.register(
            "auth_failures",
            "Failed authentications by kind",
            auth_failures.clone(),
        );
        registry.register(
            "auth_throttled",
            "Requests refused (429) after too many failed authentications",
            auth_throttled.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register(
            "entries_posted",
            "Journal entries posted through the API",
            entries_posted.clone(),
        );
        registry.register(
            "rejections",
            "Business rejections by code",
            rejections.clone(),
        );
        Arc::new(Metrics {
            registry,
            requests,
            latency,
            entries_posted,
            rejections,
            housekeeping_runs,
            housekeeping_items,
            auth_failures,
            auth_throttled,
        })
    }

    pub fn housekeeping_run(&self, outcome: &str) {
        self.housekeeping_runs
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn housekeeping_items(&self, task: &str, n: u64) {
        self.housekeeping_items
            .get_or_create(&TaskLabels { task: task.into() })
            .inc_by(n);
    }

    pub fn reject(&self, code: &str) {
        self.rejections
            .get_or_create(&CodeLabels { code: code.into() })
            .inc();
    }

    pub fn auth_failed(&self, kind: &'static str) {
        self.auth_failures
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
    }

    /// The text exposition, with the store's write-path figures appended.
    pub fn render(&self, batches: u64, commands: u64, largest: u64) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode_registry(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out.push_str(&format!(
            "# HELP hongxin_write_batches Write transactions committed (group commit).\n\
             # TYPE hongxin_write_batches counter\nhongxin_write_batches_total {batches}\n\
             # HELP hongxin_write_commands Commands carried by those transactions; divide by batches for the mean batch size.\n\
             # TYPE hongxin_write_commands counter\nhongxin_write_commands_total {commands}\n\
             # HELP hongxin_write_batch_largest Largest batch committed so far.\n\
             # TYPE hongxin_write_batch_largest gauge\nhongxin_write_batch_largest {largest}\n\
             # EOF\n"
        ));
        out
    }
}

/// Counts and times every request by its route template (not its raw path, which would
/// explode the label set).
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    // Known methods only: an invented one must not add a series (nor may a raw path, above).
    let method = match *req.method() {
        axum::http::Method::GET => "GET",
        axum::http::Method::HEAD => "HEAD",
        axum::http::Method::POST => "POST",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::PATCH => "PATCH",
        axum::http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
    .to_string();
    let start = Instant::now();
    let response = next.run(req).await;
    let elapsed = start.elapsed().as_secs_f64();
    state
        .metrics
        .latency
        .get_or_create(&RouteOnly {
            route: route.clone(),
        })
        .observe(elapsed);
    state
        .metrics
        .requests
        .get_or_create(&RouteLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}
