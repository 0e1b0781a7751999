//! `hongxin close-month`: closes a month for a cooperative (合作社盈利用物业) — its profit, less
//! losses carried, times the policy's share, plus the reserve carried in, allocated toward
//! residents' property fees — or, with `--dry-run`, shows what a close would do and posts nothing.

use clap::Args;

use crate::cli::{accepted, open_existing};
use crate::config::Config;
use crate::domain::{CloseMonth, CloseReceipt, Command, Receipt};

#[derive(Args)]
pub struct CloseMonthArgs {
    /// The cooperative's code
    #[arg(long, value_name = "CODE")]
    pub cooperative: String,
    /// The month closed, YYYY-MM; it must have ended
    #[arg(long, value_name = "YYYY-MM")]
    pub month: String,
    /// Compute and print; post nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// The close as lines for a person: the profit worked out, the pool, where it went.
pub fn render(r: &CloseReceipt) -> String {
    let what = if r.dry_run {
        "dry run: nothing posted"
    } else {
        match r.entry {
            Some(_) => "closed",
            None => "closed, nothing to post",
        }
    };
    let mut out = format!(
        "{} {} {what} ({}, basis {})\n",
        r.cooperative, r.month, r.policy, r.basis
    );
    for (label, value) in [
        ("sales", r.sales),
        ("cogs", r.cogs),
        ("promotion", r.promotion),
        ("expenses", r.expenses),
        ("profit", r.profit),
        ("loss carried in", r.loss_carried_in),
        ("loss carried out", r.loss_carried_out),
        ("distributed", r.distributed),
        ("reserve in", r.reserve_in),
        ("pool", r.pool),
        ("allocated", r.allocated),
        ("reserve", r.reserve),
    ] {
        out.push_str(&format!("{label:<18}{:>16}\n", value.to_string()));
    }
    out.push_str(&format!("households        {:>16}\n", r.households));
    for c in &r.companies {
        out.push_str(&format!(
            "company {:<10}{:>16}  ({} {})\n",
            c.company,
            c.amount.to_string(),
            c.households,
            if c.households == 1 {
                "household"
            } else {
                "households"
            }
        ));
    }
    if let Some(entry) = r.entry {
        out.push_str(&format!("entry             {entry:>16}\n"));
    }
    out
}

pub async fn run(config: &Config, args: CloseMonthArgs) -> anyhow::Result<()> {
    let app = open_existing(config).await?;
    let command = Command::CloseMonth(CloseMonth {
        cooperative: args.cooperative,
        month: args.month,
        dry_run: args.dry_run,
        estimate: false,
    });
    let r = match accepted(app.run(command).await)? {
        Receipt::MonthClose(r) => r,
        other => anyhow::bail!("unexpected receipt for a month close: {other:?}"),
    };
    print!("{}", render(&r));
    Ok(())
}
