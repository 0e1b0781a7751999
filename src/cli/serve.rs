//! `hongxin serve`: the HTTP API on `--listen`, with graceful shutdown on Ctrl-C or SIGTERM
//! (requests in flight are finished, then the process exits).

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::net::TcpListener;

use super::demo::DemoArgs;
use crate::app::{redact_url, App};
use crate::config::{Config, ServeFile};
use crate::http::limits::RateConfig;
use crate::http::{serve, AppState, HttpConfig};

/// `serve`'s options. Each is taken from the command line, else its `HONGXIN_*` environment
/// variable, else the `[serve]` table of the configuration file, else its default: see
/// [`ServeFile`] and [`ServeArgs::resolve`].
#[derive(Args, Clone, Debug, Default)]
pub struct ServeArgs {
    /// Replace the (SQLite) database with fresh demo data first and print its tokens
    #[arg(long)]
    pub demo: bool,

    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "HONGXIN_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,

    /// Origin printed in residents' signed links [default: http://<listen>]
    #[arg(long, env = "HONGXIN_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// Largest request body accepted, in bytes [default: 65536]
    #[arg(long, env = "HONGXIN_BODY_LIMIT", value_name = "BYTES")]
    pub body_limit: Option<usize>,

    /// How long Idempotency-Keys are remembered, in days [default: 7]
    #[arg(long, env = "HONGXIN_IDEMPOTENCY_DAYS", value_name = "DAYS")]
    pub idempotency_days: Option<u64>,

    /// How long a resident's sign-in lasts, in minutes [default: 30]
    #[arg(long, env = "HONGXIN_RESIDENT_SESSION_MINUTES", value_name = "MIN")]
    pub resident_session_minutes: Option<u64>,

    /// How long a staff member's sign-in on the web pages lasts, in hours [default: 12]
    #[arg(long, env = "HONGXIN_STAFF_SESSION_HOURS", value_name = "HOURS")]
    pub staff_session_hours: Option<u64>,

    /// Voucher lookups and redemptions allowed per token per minute [default: 120]
    #[arg(long, env = "HONGXIN_VOUCHER_RATE", value_name = "N")]
    pub voucher_rate: Option<u32>,

    /// Resident sign-in attempts allowed per household per minute [default: 10]
    #[arg(long, env = "HONGXIN_RESIDENT_RATE", value_name = "N")]
    pub resident_rate: Option<u32>,

    /// Failed authentications allowed per client address per minute (a third of it per
    /// household) before the address is answered 429 until the minute is out [default: 30]
    #[arg(long, env = "HONGXIN_AUTH_FAILURE_RATE", value_name = "N")]
    pub auth_failure_rate: Option<u32>,

    /// Seconds a connection may take to send a request's head before it is closed [default: 10]
    #[arg(long, env = "HONGXIN_HEADER_TIMEOUT", value_name = "SECONDS")]
    pub header_timeout: Option<u64>,

    /// Seconds a request may take, its body included, before it is answered 408 [default: 60]
    #[arg(long, env = "HONGXIN_REQUEST_TIMEOUT", value_name = "SECONDS")]
    pub request_timeout: Option<u64>,

    /// Open connections at most; more wait until one closes [default: 1024]
    #[arg(long, env = "HONGXIN_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,

    /// Seconds between housekeeping runs (voucher expiry, idempotency and session pruning)
    /// [default: 3600]
    #[arg(long, env = "HONGXIN_HOUSEKEEPING_SECONDS", value_name = "SECONDS")]
    pub housekeeping_seconds: Option<u64>,
}

/// `serve`'s settings after precedence: what the server runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeSettings {
    pub listen: String,
    pub http: HttpConfig,
}

impl ServeArgs {
    /// Command line (and, through clap, the environment) first, then the file, then defaults.
    pub fn resolve(&self, file: &ServeFile) -> ServeSettings {
        let listen = self
            .listen
            .clone()
            .or_else(|| file.listen.clone())
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let defaults = HttpConfig::default();
        let rates = RateConfig::default();
        let idempotency_days = self.idempotency_days.or(file.idempotency_days).unwrap_or(7);
        let resident_minutes = self
            .resident_session_minutes
            .or(file.resident_session_minutes)
            .unwrap_or(30);
        let staff_hours = self
            .staff_session_hours
            .or(file.staff_session_hours)
            .unwrap_or(12);
        let voucher_rate = self
            .voucher_rate
            .or(file.voucher_rate)
            .unwrap_or(rates.voucher_per_token);
        let resident_rate = self
            .resident_rate
            .or(file.resident_rate)
            .unwrap_or(rates.resident_per_household);
        let auth_failure_rate = self
            .auth_failure_rate
            .or(file.auth_failure_rate)
            .unwrap_or(rates.failed_auth_per_address);
        let header_timeout = self
            .header_timeout
            .or(file.header_timeout)
            .unwrap_or(defaults.header_read_timeout.as_secs());
        let request_timeout = self
            .request_timeout
            .or(file.request_timeout)
            .unwrap_or(defaults.request_timeout.as_secs());
        let max_connections = self
            .max_connections
            .or(file.max_connections)
            .unwrap_or(defaults.max_connections);
        let housekeeping = self
            .housekeeping_seconds
            .or(file.housekeeping_seconds)
            .unwrap_or(defaults.housekeeping_every.as_secs());
        let http = HttpConfig {
            body_limit: self
                .body_limit
                .or(file.body_limit)
                .unwrap_or(defaults.body_limit),
            idempotency_retention: Duration::from_secs(idempotency_days.max(1) * 24 * 3600),
            resident_session: Duration::from_secs(resident_minutes.clamp(1, 24 * 60) * 60),
            staff_session: Duration::from_secs(staff_hours.clamp(1, 7 * 24) * 3600),
            rates: RateConfig {
                voucher_per_token: voucher_rate,
                voucher_per_address: voucher_rate.saturating_mul(2),
                resident_per_household: resident_rate,
                resident_per_address: resident_rate.saturating_mul(3),
                failed_auth_per_address: auth_failure_rate,
                failed_auth_per_target: auth_failure_rate.div_ceil(3).max(1),
                ..RateConfig::default()
            },
            public_url: self
                .public_url
                .clone()
                .or_else(|| file.public_url.clone())
                .unwrap_or_else(|| format!("http://{listen}")),
            housekeeping_every: Duration::from_secs(housekeeping.clamp(1, 24 * 3600)),
            header_read_timeout: Duration::from_secs(header_timeout.clamp(1, 600)),
            request_timeout: Duration::from_secs(request_timeout.clamp(1, 3600)),
            max_connections: max_connections.clamp(1, 1_000_000),
        };
        ServeSettings { listen, http }
    }
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

pub async fn run(config: &Config, args: ServeArgs) -> anyhow::Result<()> {
    if args.demo {
        super::demo::run(
            config,
            DemoArgs {
                households: 2400,
                months: 2,
                weeks: None,
                seed: 2026,
                force: true,
            },
        )
        .await?;
    }
    let settings = args.resolve(&config.serve);
    let app = App::open(&config.settings).await?;
    let listener = TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let head = app.store.head().await?;
    tracing::info!(%addr, database = %redact_url(&config.settings.database), head = head.seq, "serving");
    let shutdown = shutdown_signal();
    eprintln!(
        "hongxin serving http://{addr} (database {}, journal at entry {}); Ctrl-C to stop",
        redact_url(&config.settings.database),
        head.seq
    );
    let state = AppState::new(app, settings.http);
    serve(state, listener, shutdown).await?;
    eprintln!("hongxin stopped");
    Ok(())
}

/// Ctrl-C, or SIGTERM from a service manager. The handlers are installed here, before the
/// server says it is serving, so that a signal sent the moment it does is not lost (a process
/// started with SIGTERM ignored, as under some supervisors, would otherwise never stop).
#[cfg(unix)]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate()).ok();
    let int = signal(SignalKind::interrupt()).ok();
    async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = wait(term) => {},
            _ = wait(int) => {},
        }
    }
}

#[cfg(not(unix))]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
