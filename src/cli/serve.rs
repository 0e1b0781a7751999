//! `hongxin serve`: the HTTP API on `--listen`, with graceful shutdown on Ctrl-C or SIGTERM
//! (requests in flight are finished, then the process exits).

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::net::TcpListener;

use super::demo::DemoArgs;
use crate::app::{redact_url, App};
use crate::config::Config;
use crate::http::limits::RateConfig;
use crate::http::{serve, AppState, HttpConfig};

#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    /// Replace the (SQLite) database with fresh demo data first and print its tokens
    #[arg(long)]
    pub demo: bool,

    /// Address to listen on
    #[arg(
        long,
        env = "HONGXIN_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub listen: String,

    /// Origin printed in residents' signed links [default: http://<listen>]
    #[arg(long, env = "HONGXIN_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// Largest request body accepted, in bytes
    #[arg(long, env = "HONGXIN_BODY_LIMIT", default_value_t = 64 * 1024, value_name = "BYTES")]
    pub body_limit: usize,

    /// How long Idempotency-Keys are remembered, in days
    #[arg(
        long,
        env = "HONGXIN_IDEMPOTENCY_DAYS",
        default_value_t = 7,
        value_name = "DAYS"
    )]
    pub idempotency_days: u64,

    /// How long a resident's sign-in lasts, in minutes
    #[arg(
        long,
        env = "HONGXIN_RESIDENT_SESSION_MINUTES",
        default_value_t = 30,
        value_name = "MIN"
    )]
    pub resident_session_minutes: u64,

    /// How long a staff member's sign-in on the web pages lasts, in hours
    #[arg(
        long,
        env = "HONGXIN_STAFF_SESSION_HOURS",
        default_value_t = 12,
        value_name = "HOURS"
    )]
    pub staff_session_hours: u64,

    /// Voucher lookups and redemptions allowed per token per minute
    #[arg(long, env = "HONGXIN_VOUCHER_RATE", default_value_t = RateConfig::default().voucher_per_token)]
    pub voucher_rate: u32,

    /// Resident sign-in attempts allowed per household per minute
    #[arg(long, env = "HONGXIN_RESIDENT_RATE", default_value_t = RateConfig::default().resident_per_household)]
    pub resident_rate: u32,

    /// Failed authentications allowed per client address per minute (a third of it per
    /// household) before the address is answered 429 until the minute is out
    #[arg(long, env = "HONGXIN_AUTH_FAILURE_RATE", default_value_t = RateConfig::default().failed_auth_per_address)]
    pub auth_failure_rate: u32,

    /// Seconds a connection may take to send a request's head before it is closed
    #[arg(
        long,
        env = "HONGXIN_HEADER_TIMEOUT",
        default_value_t = 10,
        value_name = "SECONDS"
    )]
    pub header_timeout: u64,

    /// Seconds a request may take, its body included, before it is answered 408
    #[arg(
        long,
        env = "HONGXIN_REQUEST_TIMEOUT",
        default_value_t = 60,
        value_name = "SECONDS"
    )]
    pub request_timeout: u64,

    /// Open connections at most; more wait until one closes
    #[arg(
        long,
        env = "HONGXIN_MAX_CONNECTIONS",
        default_value_t = 1024,
        value_name = "N"
    )]
    pub max_connections: usize,
}

impl ServeArgs {
    pub fn http_config(&self) -> HttpConfig {
        HttpConfig {
            body_limit: self.body_limit,
            idempotency_retention: Duration::from_secs(self.idempotency_days.max(1) * 24 * 3600),
            resident_session: Duration::from_secs(
                self.resident_session_minutes.clamp(1, 24 * 60) * 60,
            ),
            staff_session: Duration::from_secs(self.staff_session_hours.clamp(1, 7 * 24) * 3600),
            rates: RateConfig {
                voucher_per_token: self.voucher_rate,
                voucher_per_address: self.voucher_rate.saturating_mul(2),
                resident_per_household: self.resident_rate,
                resident_per_address: self.resident_rate.saturating_mul(3),
                failed_auth_per_address: self.auth_failure_rate,
                failed_auth_per_target: self.auth_failure_rate.div_ceil(3).max(1),
                ..RateConfig::default()
            },
            public_url: self
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", self.listen)),
            header_read_timeout: Duration::from_secs(self.header_timeout.clamp(1, 600)),
            request_timeout: Duration::from_secs(self.request_timeout.clamp(1, 3600)),
            max_connections: self.max_connections.clamp(1, 1_000_000),
        }
    }
}

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
    let app = App::open(&config.settings).await?;
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let head = app.store.head().await?;
    tracing::info!(%addr, database = %redact_url(&config.settings.database), head = head.seq, "serving");
    eprintln!(
        "hongxin serving http://{addr} (database {}, journal at entry {}); Ctrl-C to stop",
        redact_url(&config.settings.database),
        head.seq
    );
    let state = AppState::new(app, args.http_config());
    serve(state, listener, shutdown_signal()).await?;
    eprintln!("hongxin stopped");
    Ok(())
}

/// Ctrl-C, or SIGTERM from a service manager.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
