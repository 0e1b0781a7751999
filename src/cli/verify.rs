//! `hongxin verify`: recomputes the hash chain and every account balance from the postings
//! (SPEC §4), recomputes every month close from its stored inputs, and reports the first
//! mismatch, naming the entry, account or close.

use clap::Args;

use crate::cli::{open_existing, CliError};
use crate::config::Config;
use crate::ledger::ExpectedHead;

#[derive(Args)]
pub struct VerifyArgs {
    /// A head published earlier (a company statement prints it): fail unless entry SEQ is
    /// still in the chain with hash HASH, so a journal cut short is caught
    #[arg(long, value_name = "SEQ:HASH")]
    pub expect_head: Option<ExpectedHead>,
}

pub async fn run(config: &Config, args: VerifyArgs) -> anyhow::Result<()> {
    let app = open_existing(config).await?;
    let report = app.verify_expecting(args.expect_head.as_ref()).await?;
    println!("entries   {}", report.entries);
    println!("postings  {}", report.postings);
    println!("accounts  {}", report.accounts);
    println!("head      {} {}", report.head_seq, report.head_hash);
    println!("closes    {} month closes recomputed", report.close_runs);
    match report.first_problem {
        None => {
            println!(
                "ok: the chain, every balance, every stored figure and every month close check out"
            );
            Ok(())
        }
        // The statistics above stop at the entry that failed; the problem names it.
        Some(problem) => Err(CliError::Failed(format!("verification failed: {problem}")).into()),
    }
}
