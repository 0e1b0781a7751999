//! `hongxin export beancount`: the whole journal in Beancount syntax (SPEC §7), to standard
//! output or a file, and with `--balances` a CSV of every account's balance as hongxin keeps it,
//! so `bean-check` and a balance comparison can vouch for the export.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::cli::{open_existing, progress_bar};
use crate::config::Config;
use crate::export::beancount;

#[derive(Subcommand)]
pub enum ExportCommand {
    /// The whole journal as a Beancount ledger that bean-check accepts
    Beancount(BeancountArgs),
}

#[derive(Args)]
pub struct BeancountArgs {
    /// Write the ledger here instead of standard output
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also write a CSV of account, hongxin_account, type, balance (normal side) here
    #[arg(long, value_name = "FILE")]
    pub balances: Option<PathBuf>,
}

/// A file written beside its final name and renamed into place once complete, so a failed
/// export never leaves a truncated ledger where a good one is expected.
struct Staged {
    path: PathBuf,
    temp: PathBuf,
    writer: BufWriter<File>,
}

impl Staged {
    fn create(path: &Path) -> anyhow::Result<Staged> {
        let mut name = path
            .file_name()
            .with_context(|| format!("{} is not a file name", path.display()))?
            .to_os_string();
        name.push(".partial");
        let temp = path.with_file_name(name);
        let file = File::create(&temp).with_context(|| format!("creating {}", temp.display()))?;
        Ok(Staged {
            path: path.to_path_buf(),
            temp,
            writer: BufWriter::new(file),
        })
    }

    fn finish(mut self) -> anyhow::Result<()> {
        self.writer.flush()?;
        self.writer.get_ref().sync_all()?;
        std::fs::rename(&self.temp, &self.path)
            .with_context(|| format!("renaming {} into place", self.temp.display()))
    }
}

pub async fn run(config: &Config, command: ExportCommand) -> anyhow::Result<()> {
    match command {
        ExportCommand::Beancount(args) => beancount_export(config, args).await,
    }
}

async fn beancount_export(config: &Config, args: BeancountArgs) -> anyhow::Result<()> {
    let app = open_existing(config).await?;
    let head = app.store.head().await?;
    let bar = progress_bar(head.seq.max(0) as u64, "exporting entries");
    let progress = |seq: i64| bar.set_position(seq.max(0) as u64);
    let mut balances = args.balances.as_deref().map(Staged::create).transpose()?;
    let balances_writer = balances.as_mut().map(|b| &mut b.writer as &mut dyn Write);
    let summary = match &args.output {
        Some(path) => {
            let mut out = Staged::create(path)?;
            let summary = beancount::export(
                app.store.as_ref(),
                &mut out.writer,
                balances_writer,
                &progress,
            )
            .await?;
            out.finish()?;
            summary
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            beancount::export(app.store.as_ref(), &mut out, balances_writer, &progress).await?
        }
    };
    if let Some(b) = balances {
        b.finish()?;
    }
    bar.finish_and_clear();
    eprintln!(
        "exported {} entries ({} postings) on {} accounts, up to entry {} {}",
        summary.entries, summary.postings, summary.accounts, summary.head_seq, summary.head_hash
    );
    if summary.moved_accounts > 0 {
        eprintln!(
            "warning: entries were posted during the export; the balances of {} accounts are \
             newer than the exported journal",
            summary.moved_accounts
        );
    }
    Ok(())
}
