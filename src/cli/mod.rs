//! The `hongxin` command line: one file per subcommand, this one for what they share — the
//! argument tree, settings and logging, and how outcomes become exit statuses.
//!
//! Exit status 0 is success, 1 a refusal by the ledger or a failed check, 2 a wrong use of the
//! command line (clap's own convention). Answers go to standard output, so scripts can capture
//! them; notes, progress and errors go to standard error.

pub mod backup;
pub mod close_month;
pub mod compound;
pub mod credit;
pub mod demo;
pub mod export;
pub mod fees;
pub mod household;
pub mod import;
pub mod init;
pub mod keys;
pub mod report;
pub mod serve;
pub mod statement;
pub mod token;
pub mod verify;
pub mod vouchers;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tracing_subscriber::EnvFilter;

use crate::app::{sqlite_path, App};
use crate::config::{Config, GlobalOptions};
use crate::domain::{Receipt, Rejection, StoreError};

#[derive(Parser)]
#[command(
    name = "hongxin",
    version,
    about = "红心 hongxin: the ledger of the Red Heart Property Alliance's two policies — \
             居民购物50元换55元 (residents pay 50 yuan, shop for 55 at the cooperative) and \
             cooperative profit toward property fees",
    after_help = "Every command takes --database, --policies, --key-file, --today and --config, \
                  or the HONGXIN_* environment variables of the same names. \
                  Logging: HONGXIN_LOG or RUST_LOG (default warn)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOptions,
    #[command(subcommand)]
    pub command: CliCommand,
}

#[derive(Subcommand)]
pub enum CliCommand {
    /// First run: create the database and the key file, check the policies, print the first admin token
    Init(init::InitArgs),
    /// Serve the HTTP API for tills, back offices and residents' phones
    Serve(serve::ServeArgs),
    /// An online, consistent copy of an SQLite database (the key file is kept apart)
    Backup(backup::BackupArgs),
    /// Put a backup in place of a missing SQLite database, once its chain verifies
    Restore(backup::RestoreArgs),
    /// Build a demo database: companies, compounds, a cooperative, households and weeks of history
    Demo(demo::DemoArgs),
    /// Recompute the hash chain and every balance; exit 1 at the first mismatch
    Verify(verify::VerifyArgs),
    /// Create or revoke bearer tokens for tills, offices and residents
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Import households or catalogue items from CSV: every row or none
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// List, rotate and retire the voucher signing keys
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Voucher housekeeping
    #[command(subcommand)]
    Vouchers(vouchers::VouchersCommand),
    /// Property fees: bill a month, record a resident's payment
    #[command(subcommand)]
    Fees(fees::FeesCommand),
    /// Shopping credit: pay a household's paid credit back (whole or in part)
    #[command(subcommand)]
    Credit(credit::CreditCommand),
    /// Close a month: the cooperative's profit allocated toward residents' property fees
    CloseMonth(close_month::CloseMonthArgs),
    /// A company's statement for a month as JSON, CSV or XLSX
    Statement(statement::StatementArgs),
    /// Export the whole journal for other tools (Beancount)
    #[command(subcommand)]
    Export(export::ExportCommand),
    /// Cooperative reports: the daily till report, the prepaid liability and custody deposit
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Compounds: the day a company took one over, eligibility, company and name from a date
    #[command(subcommand)]
    Compound(compound::CompoundCommand),
    /// Households: a change of occupant (move-out), floor area from a billing month, name
    #[command(subcommand)]
    Household(household::HouseholdCommand),
}

/// Outcomes that are not plain failures, each with its exit status.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A wrong use of the command line: exit status 2.
    #[error("{0}")]
    Usage(String),
    /// The ledger refused the command: `error: <message> (<code>)`, exit status 1.
    #[error("{} ({})", .0, .0.code())]
    Rejected(Rejection),
    /// A check failed and its details are already printed: exit status 1.
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Rejected(_) | CliError::Failed(_) => 1,
        }
    }
}

/// The binary's whole life: parse, configure, run, turn the outcome into an exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.global) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config.log);
    tracing::debug!(?config, "starting");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<CliError>() {
            Some(cli_error) => {
                eprintln!("error: {cli_error}");
                ExitCode::from(cli_error.exit_code())
            }
            None => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

pub async fn run(command: CliCommand, config: Config) -> anyhow::Result<()> {
    match command {
        CliCommand::Init(args) => init::run(&config, args).await,
        CliCommand::Serve(args) => serve::run(&config, args).await,
        CliCommand::Backup(args) => backup::backup(&config, args).await,
        CliCommand::Restore(args) => backup::restore(&config, args).await,
        CliCommand::Demo(args) => demo::run(&config, args).await,
        CliCommand::Verify(args) => verify::run(&config, args).await,
        CliCommand::Token(t) => token::run(&config, t).await,
        CliCommand::Import(i) => import::run(&config, i).await,
        CliCommand::Keys(k) => keys::run(&config, k),
        CliCommand::Vouchers(v) => vouchers::run(&config, v).await,
        CliCommand::Fees(f) => fees::run(&config, f).await,
        CliCommand::Credit(c) => credit::run(&config, c).await,
        CliCommand::CloseMonth(args) => close_month::run(&config, args).await,
        CliCommand::Statement(args) => statement::run(&config, args).await,
        CliCommand::Export(e) => export::run(&config, e).await,
        CliCommand::Report(r) => report::run(&config, r).await,
        CliCommand::Compound(c) => compound::run(&config, c).await,
        CliCommand::Household(h) => household::run(&config, h).await,
    }
}

/// Logs to standard error, so they never mix with answers on standard output.
fn init_logging(default: &str) {
    let directives = std::env::var("HONGXIN_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.to_string());
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|e| {
        eprintln!("warning: log filter {directives:?} is not valid ({e}); using warn");
        EnvFilter::new("warn")
    });
    // A second initialisation (tests calling `run` twice) is harmless; keep the first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Opens an existing database. Only `demo` (and the server) create one, so a mistyped
/// `--database` is an error rather than a new empty ledger.
pub(crate) async fn open_existing(config: &Config) -> anyhow::Result<App> {
    if let Some(path) = sqlite_path(&config.settings.database) {
        if !path.exists() {
            anyhow::bail!(
                "no database at {}: check --database, or build one with hongxin demo",
                path.display()
            );
        }
    }
    App::open(&config.settings).await
}

/// The receipt of an accepted command; a refusal becomes [`CliError::Rejected`].
pub(crate) fn accepted(
    result: Result<Result<Receipt, Rejection>, StoreError>,
) -> anyhow::Result<Receipt> {
    match result? {
        Ok(receipt) => Ok(receipt),
        Err(rejection) => Err(CliError::Rejected(rejection).into()),
    }
}

/// A progress bar on standard error, drawn only when a person is watching a terminal, so logs
/// and CI output stay clean.
pub(crate) fn progress_bar(len: u64, what: &str) -> ProgressBar {
    styled_bar(
        len,
        format!("{{spinner}} {what} [{{bar:40}}] {{pos}}/{{len}} {{msg}} ({{elapsed}})"),
    )
}

/// [`progress_bar`] counting bytes, for reading files.
pub(crate) fn byte_progress_bar(len: u64, what: &str) -> ProgressBar {
    styled_bar(
        len,
        format!("{{spinner}} {what} [{{bar:40}}] {{bytes}}/{{total_bytes}} {{msg}}"),
    )
}

fn styled_bar(len: u64, template: String) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_argument_tree_is_consistent() {
        Cli::command().debug_assert();
    }
}
