//! `hongxin credit refund`: the cooperative's accountant pays a household's paid credit back
//! from the operator's shell — the whole wallet, or a part of it (issue 14's partial cash-out).
//! The unused bonus goes with it in proportion (`domain::credit::cash_out_parts`), as on the
//! cooperative's page.

use clap::{Args, Subcommand};

use crate::cli::fees::{parse_amount, parse_method};
use crate::cli::{accepted, open_existing};
use crate::config::Config;
use crate::domain::{Command, PayMethod, Receipt, RefundCredit};
use crate::money::Amount;

#[derive(Subcommand)]
pub enum CreditCommand {
    /// Pay a household's paid credit back (all of it, or --amount of it); the bonus is forfeited
    /// in proportion
    Refund(RefundArgs),
}

#[derive(Args)]
pub struct RefundArgs {
    /// The household's code
    #[arg(long, value_name = "CODE")]
    pub household: String,
    /// The cooperative whose wallet it is
    #[arg(long, value_name = "CODE")]
    pub cooperative: String,
    /// How the money is handed back: cash, wechat, alipay or bank
    #[arg(long, value_parser = parse_method)]
    pub method: PayMethod,
    /// Paid credit to hand back, in yuan (default: all of it)
    #[arg(long, value_parser = parse_amount)]
    pub amount: Option<Amount>,
}

pub async fn run(config: &Config, command: CreditCommand) -> anyhow::Result<()> {
    let app = open_existing(config).await?;
    match command {
        CreditCommand::Refund(args) => {
            let household = args.household.clone();
            let command = Command::RefundCredit(RefundCredit {
                household: args.household,
                cooperative: args.cooperative,
                method: args.method,
                amount: args.amount,
            });
            let r = match accepted(app.run(command).await)? {
                Receipt::CreditRefund(r) => r,
                other => anyhow::bail!("unexpected receipt for a credit refund: {other:?}"),
            };
            println!(
                "refunded {} to {household} by {} (entry {}); bonus forfeited {}",
                r.refunded,
                r.method.as_str(),
                r.entry,
                r.forfeited
            );
            if let Some(left) = r.left {
                println!(
                    "wallet left: paid {}, bonus {}, total {}",
                    left.paid, left.bonus, left.total
                );
            }
        }
    }
    Ok(())
}
