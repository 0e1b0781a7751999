//! `hongxin statement`: a company's statement for a month (对账单) as JSON, CSV or XLSX, to
//! standard output or a file. XLSX is binary, so it is written to `--output` only.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::cli::{open_existing, CliError};
use crate::config::Config;
use crate::fees::{month_bounds, statement, xlsx};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Csv,
    Xlsx,
}

#[derive(Args)]
pub struct StatementArgs {
    /// The company's code
    #[arg(long, value_name = "CODE")]
    pub company: String,
    /// The month, YYYY-MM
    #[arg(long, value_name = "YYYY-MM")]
    pub month: String,
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// Write to this file instead of standard output (required for xlsx)
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub async fn run(config: &Config, args: StatementArgs) -> anyhow::Result<()> {
    if args.format == Format::Xlsx && args.output.is_none() {
        return Err(CliError::Usage(
            "an XLSX statement is binary: name the file with --output statement.xlsx".into(),
        )
        .into());
    }
    if let Err(e) = month_bounds("month", &args.month) {
        return Err(CliError::Usage(e.to_string()).into());
    }
    let app = open_existing(config).await?;
    let Some(s) = app.store.statement(&args.company, &args.month).await? else {
        return Err(CliError::Failed(format!("no company {}", args.company)).into());
    };
    let bytes = match args.format {
        Format::Json => {
            let mut b = serde_json::to_vec_pretty(&s)?;
            b.push(b'\n');
            b
        }
        Format::Csv => statement::to_csv(&s)?,
        Format::Xlsx => xlsx::to_xlsx(&s)?,
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, &bytes)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
            eprintln!(
                "wrote the {} {} statement to {} ({} households, closing {}, ties out: {})",
                s.company,
                s.month,
                path.display(),
                s.households.len(),
                s.totals.closing,
                if s.ties_out { "yes" } else { "NO" }
            );
        }
        None => std::io::stdout().write_all(&bytes)?,
    }
    if !s.ties_out {
        return Err(CliError::Failed("the statement does not tie out".into()).into());
    }
    Ok(())
}
